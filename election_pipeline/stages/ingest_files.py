"""Ingest stage: files in the drop folder -> the DuckDB raw store, in one write path.

Files are taken in name order and in groups (up to :data:`GROUP_MAX_BYTES` of input or
:data:`GROUP_MAX_FILES` files; a single large file is a group of its own). For each group:

1. every file is hashed (SHA-256). Content the file ledger knows is not counted again;
2. the lines are staged in temporary tables: DuckDB reads each UTF-8 ``.csv`` itself; zip
   members, block dumps and files that are not plain UTF-8 are read by the Python reader
   (``ingest/export_files.py``, ``ingest/block_dump.py``), whose lines DuckDB classifies a
   few hundred thousand at a time as they come (``line_sql.ApartClassifier``), so that a
   file of millions of lines is never staged whole;
3. DuckDB classifies every line it can (``analytics/line_sql.py``); the Python parser reads the
   rest and gives the reason of every rejected line;
4. in **one DuckDB transaction**, new transactions go to ``raw_transactions`` (the first
   copy of an id), rollback lines to ``raw_rollbacks``, copies of a known id with different content to ``raw_conflicts``,
   rejected lines to ``raw_rejected``, and each file's job and ledger entry to ``file_jobs``
   and ``file_ledger``, all under one change-log number (``seq``).

A file read by the Python reader that holds more than :data:`PART_MAX_LINES` lines (a block
dump or a whole-voting archive of millions of transactions) is written in **parts**: every
:data:`PART_MAX_LINES` lines (at a block's end, for a block dump) what was read is classified
and committed under a ``seq`` of its own and listed in ``ingest_parts``; the file's job and
ledger entry come with its last part. The memory of the ingest then follows the part, not the
file. A part whose file was never recorded (the run stopped in between) is removed, rows and
all, before anything reads the store again (``analytics/ingest_parts.py``): a file is counted
whole or not at all. Such a file is always a group of its own (a group of several files that
reaches the limit is written a file at a time).

Then the files are moved to ``processed/`` (or ``quarantine/``). Nothing is deleted. A run
killed anywhere leaves either the whole group committed (its files are then finished on the
next run: every file of a committed group has a job naming where it goes) or nothing of it.

A ``.csv`` is hashed first and read by DuckDB later; one that left the drop folder or changed
in between (its size or modification time differ) is not counted under a hash of other content:
its job says what happened, it gets no ledger entry, and it is not moved (a changed file is
read again on the next run).

The ingest writes DuckDB only. The operational database is filled from it by the publish
step (:mod:`election_pipeline.stages.publish`), driven by ``seq``.

A problem in one file affects that file alone: a file that cannot be read, whose lines are
all bad, or that makes anything unexpected happen gets a ``failed`` job with the reason and is
quarantined; the other files of its group are written without it.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from election_pipeline.analytics import change_log, ingest_parts, line_sql, raw_store
from election_pipeline.analytics.duck_frames import registered
from election_pipeline.db.models import utcnow
from election_pipeline.db.models.base import new_uuid
from election_pipeline.ingest.block_dump import DumpBlock, DumpProblem, DumpTransaction, is_block_dump_name
from election_pipeline.ingest.export_files import (
    NOT_AN_INPUT,
    FileRefused,
    contract_id_from_name,
    file_digest,
    is_candidate,
    iter_input,
    unread_entries,
)
from election_pipeline.ingest.export_line import LineError, ParsedTransaction, parse_line
from election_pipeline.vocabulary import FileJobStatus

log = logging.getLogger(__name__)
#: Lines (or characters) the Python reader stages before DuckDB classifies them and lets
#: their text go (a file of millions of lines then never has all its text staged at once).
CLASSIFY_EVERY_LINES = 200_000
CLASSIFY_EVERY_CHARS = 64 * 1024**2
#: A file read line by line by the Python reader (an archive, a file that is not plain
#: UTF-8) reports its progress in the run's log at most this often, in seconds.
PROGRESS_EVERY_SECONDS = 30.0

#: A file read by the Python reader is written in parts of this many lines (block-dump
#: transactions) at most, each committed as it is read (see the module docstring).
PART_MAX_LINES = 500_000

#: Input bytes written in one DuckDB transaction at most (a larger file is a group of its own).
GROUP_MAX_BYTES = 256 * 1024**2
GROUP_MAX_FILES = 1_000
#: DuckDB's write-ahead log is folded into the file when it reaches this size during the ingest
#: (DuckDB's default is 16 MB: a checkpoint every group or two, each rewriting the indexes).
CHECKPOINT_THRESHOLD = "256MB"
#: Files up to this size are read by DuckDB itself (``read_text``); larger ones are streamed.
TEXT_READ_MAX_BYTES = 256 * 1024**2
#: The part of a rejected line kept in ``rejected_rows.raw_line`` (with its length and SHA-256).
REJECTED_LINE_MAX_CHARS = 65_536
#: Kept in the raw store and ``transactions.raw_data``: fee fields are not used in any figure.
FEE_MAX_CHARS = 64

#: Errors of the store itself (locks, disk, memory): the run fails and is retried; a file is
#: never blamed for them.
STORE_ERRORS: tuple[type[BaseException], ...] = (
    duckdb.IOException,
    duckdb.OutOfMemoryException,
    duckdb.InterruptException,
    duckdb.FatalException,
    duckdb.TransactionException,
    MemoryError,
)


#: Why a contract's lines are not counted by this ingest (None: they are).
Admit = Callable[[str], str | None]


@dataclass
class FileOutcome:
    """What happened to one file."""

    filename: str
    status: str  # completed | failed | duplicate | recovered
    job_id: str | None = None
    transactions: int = 0
    new_transactions: int = 0
    rollbacks: int = 0
    rejected_lines: int = 0
    reason: str = ""
    stored_path: str = ""


@dataclass
class IngestSummary:
    outcomes: list[FileOutcome] = field(default_factory=list)
    #: Entries of the drop folder that are not read (folders, FIFOs), reported for the first time.
    noticed: list[tuple[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(1 for o in self.outcomes if o.status == status)

    @property
    def transactions(self) -> int:
        return sum(o.transactions for o in self.outcomes)

    @property
    def new_transactions(self) -> int:
        return sum(o.new_transactions for o in self.outcomes)

    @property
    def rejected_lines(self) -> int:
        return sum(o.rejected_lines for o in self.outcomes)


@dataclass
class DropFolders:
    input_dir: Path
    processed_dir: Path
    quarantine_dir: Path

    @classmethod
    def of(cls, input_dir: str | Path, processed_dir: str | Path, quarantine_dir: str | Path) -> DropFolders:
        return cls(Path(input_dir), Path(processed_dir), Path(quarantine_dir))


def ready_files(input_dir: Path, settle_seconds: float, now: float | None = None) -> list[Path]:
    """Files of the drop folder that are complete: not ``*.tmp``/``*.part``/hidden, and not
    modified during the last ``settle_seconds`` (a copy still in progress keeps changing).
    Symbolic links are included (the ingest refuses them without following them)."""
    if not input_dir.is_dir():
        return []
    now = time.time() if now is None else now
    out = []
    for path in sorted(input_dir.iterdir()):
        if not is_candidate(path):
            continue
        try:
            mtime = path.lstat().st_mtime
        except OSError:
            continue  # gone meanwhile
        if now - mtime >= settle_seconds:
            out.append(path)
    return out


def _destination(folder: Path, path: Path, content_hash: str) -> Path:
    """A free name for ``path`` in ``folder`` (its own name, else tagged with its hash)."""
    target = folder / path.name
    if not target.exists() and not target.is_symlink():
        return target
    stem, suffix = path.name.split(".", 1) if "." in path.name else (path.name, "")
    suffix = f".{suffix}" if suffix else ""
    tag0 = content_hash[:12] if content_hash else new_uuid()[:12]
    for n in range(0, 10_000):
        tag = tag0 if n == 0 else f"{tag0}-{n}"
        target = folder / f"{stem}.{tag}{suffix}"
        if not target.exists() and not target.is_symlink():
            return target
    raise RuntimeError(f"cannot find a free name for {path.name} in {folder}")


def _move(path: Path, target: Path) -> None:
    """Move ``path`` (a symbolic link itself, never its target) to ``target``."""
    try:
        os.rename(path, target)
        return
    except FileNotFoundError:
        if not target.parent.is_dir() and (path.exists() or path.is_symlink()):
            target.parent.mkdir(parents=True, exist_ok=True)
    except OSError:
        pass
    try:
        os.rename(path, target)
    except OSError:
        shutil.move(str(path), str(target))


# --------------------------------------------------------------------------------------
# One file of a group
# --------------------------------------------------------------------------------------


@dataclass
class _Unit:
    """One stream of lines: a ``.csv`` file or one ``.csv`` member of an archive."""

    unit_id: int
    source: str
    contract_id: str
    #: Transactions of a block dump staged under this unit (each gets a number of its own).
    staged: int = 0


@dataclass
class _DumpTally:
    """What the block dump (or the block-dump members) of a file held."""

    blocks: int = 0
    transactions: int = 0
    lowest: int | None = None
    highest: int | None = None
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, block: DumpBlock) -> None:
        self.blocks += 1
        self.transactions += block.transactions
        self.skipped.update(block.skipped)
        self.lowest = block.height if self.lowest is None else min(self.lowest, block.height)
        self.highest = block.height if self.highest is None else max(self.highest, block.height)

    def note(self) -> str:
        heights = f" (heights {self.lowest:,}-{self.highest:,})" if self.blocks else ""
        text = f"block dump: {self.blocks:,} blocks{heights}, {self.transactions:,} contract transactions"
        if self.skipped:
            kinds = ", ".join(f"type {kind}: {n:,}" for kind, n in sorted(self.skipped.items()))
            text += f", {self.skipped.total():,} other transactions skipped ({kinds})"
        return text


@dataclass
class _File:
    index: int
    path: Path
    sha256: str = ""
    size: int = 0
    mtime_ns: int = 0
    text: bool = False  # DuckDB reads it itself
    duck_path: str = ""  # the absolute path DuckDB is given
    refused: str | None = None
    refused_unread: str | None = None  # refused before any line was read (kept when read again)
    duplicate_of: dict[str, Any] | None = None  # the ledger entry of the same content
    # Gone from the drop folder (or changed) before it could be read: it gets a job, but no
    # ledger entry (its content was never judged) and it is not moved.
    vanished: bool = False
    vanished_unread: bool = False
    unjudged_unread: bool = False  # refused before reading for a reason that is not its content
    # Refused for a reason that is not its content (an unexpected error, too little memory):
    # no ledger entry, so the same content dropped again is read again.
    unjudged: bool = False
    job_id: str = field(default_factory=new_uuid)
    started: datetime = field(default_factory=utcnow)
    notes: list[str] = field(default_factory=list)
    units: list[_Unit] = field(default_factory=list)
    rejected: list[tuple[str, int, str, str]] = field(default_factory=list)  # source, line, reason, raw
    _rejected_at: dict[tuple[str, int], int] = field(default_factory=dict, repr=False)
    first_reason: str = ""
    transactions: int = 0
    rollbacks: int = 0
    new_transactions: int = 0
    target: Path | None = None
    dump: _DumpTally | None = None  # what a block dump held
    #: Lines (transactions of a block dump) of contracts this workspace does not count, by
    #: contract, with why (another election's constituency: see ``workspaces.Scope.refusal``);
    #: None until there is one (a group holds up to a thousand files).
    foreign: dict[str, tuple[int, str]] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    def reject(self, source: str, line_number: int, reason: str, raw: str) -> None:
        if not self.first_reason:
            self.first_reason = f"{source} line {line_number}: {reason}"
        # A block line of a dump may hold several bad transactions: one rejected row for the
        # line, with every reason.
        if (source, line_number) in self._rejected_at:
            at = self._rejected_at[(source, line_number)]
            _, _, first, kept = self.rejected[at]
            self.rejected[at] = (source, line_number, f"{first}; {reason}", f"{kept}\n{raw}")
            return
        self._rejected_at[(source, line_number)] = len(self.rejected)
        self.rejected.append((source, line_number, reason, raw))

    def clear_rejected(self) -> None:
        self.rejected.clear()
        self._rejected_at.clear()

    @property
    def failed(self) -> bool:
        return self.refused is not None

    def outcome(self) -> FileOutcome:
        stored = str(self.target) if self.target else ""
        if self.duplicate_of is not None:
            return FileOutcome(self.name, "duplicate", self.job_id, reason=self.refused or "", stored_path=stored)
        if self.failed:
            return FileOutcome(
                self.name, "failed", self.job_id, 0, 0, 0, len(self.rejected), self.refused or "", stored
            )
        return FileOutcome(
            self.name,
            "completed",
            self.job_id,
            self.transactions,
            self.new_transactions,
            self.rollbacks,
            len(self.rejected),
            "",
            stored,
        )


class _Progress:
    """Progress of a file read by the Python reader, in the run's log at most every
    :data:`PROGRESS_EVERY_SECONDS`: lines (or blocks and transactions of a block dump) and rate."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.started = self.last = time.monotonic()
        self.lines = 0

    def add(self, lines: int, f: _File, source: str, members: int) -> None:
        self.lines += lines
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_SECONDS:
            return
        self.last = now
        rate = self.lines / max(now - self.started, 1e-9)
        if f.dump is not None:
            log.info(
                "File %s: %s blocks, %s transactions read so far (now %s, block height %s), %.0f transactions/s",
                self.name,
                f"{f.dump.blocks:,}",
                f"{self.lines:,}",
                source,
                f"{f.dump.highest:,}" if f.dump.highest is not None else "-",
                rate,
            )
        else:
            log.info(
                "File %s: %s lines read so far (%d member(s), now %s), %.0f lines/s",
                self.name,
                f"{self.lines:,}",
                members,
                source,
                rate,
            )


_DUMP_BLOCK_COLUMNS = ["file_index", "source", "line_number", "height", "digest", "transactions", "skipped"]


def _inspect(f: _File, admit: Admit | None = None) -> None:
    """Hash the file and decide how it is read; a file that cannot be read is refused, and so
    is a ``.csv`` of a contract this workspace does not count (``admit``)."""
    try:
        digest = file_digest(f.path)
    except FileRefused as err:
        f.refused = err.reason
        f.vanished = isinstance(err, FileNotFoundError)
        return
    f.sha256, f.size, f.mtime_ns = digest.sha256, digest.size, digest.mtime_ns
    if f.size == 0:
        f.refused = f"{f.name} is empty: it holds no transaction line"
        return
    suffix = f.path.suffix.lower()
    if suffix not in (".csv", ".zip") and not is_block_dump_name(f.name):
        f.refused = f"{f.name} is {NOT_AN_INPUT}"
        return
    if suffix == ".csv":
        try:
            contract = contract_id_from_name(f.name)
        except FileRefused as err:
            f.refused = err.reason
            return
        refusal = admit(contract) if admit is not None else None
        if refusal:
            f.refused = f"{f.name} is not counted here: {refusal}; drop it into that election's drop folder"
            f.unjudged = True  # not a verdict on its content: the same file is read where it belongs
            return
    # A NUL byte in the first 8 KiB marks a binary file: the Python reader refuses it.
    f.duck_path = os.path.abspath(f.path)
    f.text = (
        suffix == ".csv"
        and digest.utf8_text
        and f.size <= TEXT_READ_MAX_BYTES
        and line_sql.readable_by_duckdb(f.duck_path)
    )


def _read_again_problem(f: _File) -> str | None:
    """Why the file DuckDB read may not be the one that was hashed (it left the drop folder, or
    it changed, since), or None. Such a file is not counted; it is read again on the next run."""
    try:
        st = f.path.lstat()
    except FileNotFoundError:
        return f"{f.name} cannot be read: No such file or directory (it left the drop folder before it was read)"
    except OSError as err:
        return f"{f.name} cannot be read: {err.strerror or err}"
    if st.st_size != f.size or st.st_mtime_ns != f.mtime_ns:
        return (
            f"{f.name} changed while it was being read ({f.size} bytes when hashed, {st.st_size} now); "
            "nothing of it was counted: it is left in the drop folder and read again on the next run"
        )
    return None


def _truncated(raw: str) -> tuple[str, int, str]:
    """A rejected line as stored: its first characters, its length in bytes and its SHA-256."""
    data = raw.encode("utf-8", errors="surrogateescape")
    return raw[:REJECTED_LINE_MAX_CHARS], len(data), hashlib.sha256(data).hexdigest()


def _classified_row(unit_id: int, line_number: int, tx: ParsedTransaction) -> tuple:
    fail_key = next(
        (str(e.get("key")) for e in tx.raw_data.get("diff", []) if str(e.get("key", "")).startswith("FAIL")),
        None,
    )
    return (
        unit_id,
        line_number,
        tx.tx_id,
        tx.tx_type,
        tx.version,
        tx.ts_ms,
        tx.sender,
        str(tx.raw_data.get("fee", "")),
        str(tx.raw_data.get("feeAssetId", "")),
        tx.operation,
        tx.rejected,
        fail_key,
        tx.is_rollback,
        tx.bulletins,
        tx.voters_added,
    )


# --------------------------------------------------------------------------------------
# A group of files, in one DuckDB transaction
# --------------------------------------------------------------------------------------


class _GroupTooLarge(Exception):
    """A group of several files reached :data:`PART_MAX_LINES`: it is written a file at a time
    (only a file alone is written in parts)."""


class _Group:
    """Stages, classifies and writes the lines of a group of files (inside the caller's
    DuckDB transaction); a file alone that is larger than :data:`PART_MAX_LINES` lines has its
    earlier parts committed as it is read."""

    def __init__(self, duck: duckdb.DuckDBPyConnection, files: list[_File], seq: int, limits: dict[str, Any]) -> None:
        self.duck = duck
        self.files = files
        self.seq = seq
        self.limits = limits
        self.units: dict[int, tuple[_File, _Unit]] = {}
        self._next_unit = 0
        self.blocks: list[tuple] = []  # block-dump blocks not yet staged
        self.apart: line_sql.ApartClassifier | None = None  # classifies the Python reader's lines
        self.part_seqs: list[int] = []  # the parts committed so far (a large file alone)
        self.part_lines = 0  # lines staged since the last part

    def _unit(self, f: _File, source: str, contract_id: str) -> _Unit:
        unit = _Unit(self._next_unit, source, contract_id)
        self._next_unit += 1
        f.units.append(unit)
        self.units[unit.unit_id] = (f, unit)
        return unit

    # ---- staging ---------------------------------------------------------------------

    def _create_stage(self) -> None:
        line_sql.create_stage(self.duck)
        self.duck.execute(
            "CREATE OR REPLACE TEMP TABLE _dump_blocks (file_index INTEGER, source VARCHAR, line_number INTEGER, "
            "height BIGINT, digest VARCHAR, transactions INTEGER, skipped INTEGER)"
        )

    def stage(self) -> None:
        self._create_stage()
        text_files = [f for f in self.files if f.text and not f.failed]
        for f in text_files:
            self._unit(f, f.name, contract_id_from_name(f.name))
        if text_files:
            line_sql.stage_text_files(self.duck, [(f.units[0].unit_id, f.duck_path) for f in text_files])
        for f in self.files:
            if not f.text and not f.failed:
                self._stage_with_python(f)

    def _stage_with_python(self, f: _File) -> None:
        """Lines of a zip archive, of a block dump or of a file that is not plain UTF-8, read by
        the Python reader."""
        batch: list[tuple[int, int, str]] = []
        positions: list[tuple[int, int, int, int, int]] = []
        by_source: dict[tuple[str, str], _Unit] = {}
        progress = _Progress(f.name)
        admit: Admit | None = self.limits.get("admit")

        def stage_batch(source: str) -> None:
            nonlocal batch, positions
            self._stage_batch(batch, positions)
            progress.add(len(batch), f, source, len(by_source))
            batch, positions = [], []

        try:
            for item in iter_input(
                f.path,
                max_total_bytes=self.limits["zip_max_total_bytes"],
                max_ratio=self.limits["zip_max_ratio"],
                notes=f.notes,
            ):
                if isinstance(item, DumpBlock):
                    f.dump = f.dump or _DumpTally()
                    f.dump.add(item)
                    self.blocks.append(
                        (
                            f.index,
                            item.source,
                            item.line_number,
                            item.height,
                            item.digest,
                            item.transactions,
                            item.skipped.total(),
                        )
                    )
                    if len(self.blocks) >= self.limits["batch_size"]:
                        self._stage_blocks()
                    if self.part_lines >= PART_MAX_LINES:  # at a block's end: a part
                        stage_batch(item.source)
                        self._write_part(f)
                    continue
                if isinstance(item, DumpProblem):
                    f.reject(item.source, item.line_number, item.reason, item.raw)
                    continue
                refusal = admit(item.contract_id) if admit is not None else None
                if refusal:
                    f.foreign = f.foreign or {}
                    lines, _ = f.foreign.get(item.contract_id, (0, refusal))
                    f.foreign[item.contract_id] = (lines + 1, refusal)
                    continue
                key = (item.source, item.contract_id)
                unit = by_source.get(key)
                if unit is None:
                    unit = by_source[key] = self._unit(f, item.source, item.contract_id)
                if isinstance(item, DumpTransaction):
                    unit.staged += 1
                    batch.append((unit.unit_id, unit.staged, item.text))
                    positions.append((unit.unit_id, unit.staged, item.line_number, item.height, item.index))
                elif item.text is None:
                    f.reject(item.source, item.line_number, "the line is not valid UTF-8", item.raw)
                    continue
                else:
                    batch.append((unit.unit_id, item.line_number, item.text))
                self.part_lines += 1
                if self.part_lines >= PART_MAX_LINES and not isinstance(item, DumpTransaction):  # a line's end
                    stage_batch(item.source)
                    self._write_part(f)
                elif len(batch) >= self.limits["batch_size"]:
                    stage_batch(item.source)
            self._stage_batch(batch, positions)
            if self.apart is not None:
                self.apart.flush(self.duck)
            self._stage_blocks()
            if f.dump is not None:
                f.notes.insert(0, f.dump.note())
        except FileRefused as err:
            self._drop_file(f, err.reason)
            f.vanished = isinstance(err, FileNotFoundError)
        except STORE_ERRORS:
            raise
        except _GroupTooLarge:
            raise
        except Exception as err:  # anything else unexpected: this file fails, not the run
            self._drop_file(f, f"{f.name} could not be read: {type(err).__name__}: {str(err)[:300]}")

    def _stage_batch(self, batch: list[tuple[int, int, str]], positions: list[tuple[int, int, int, int, int]]) -> None:
        line_sql.stage_dump_lines(self.duck, positions)
        # A line over SQL_LINE_MAX_CHARS (the addVotersList of a large constituency: megabytes)
        # is parsed at once and never staged: a few hundred of them would fill DuckDB's memory.
        long = [r for r in batch if len(r[2]) > line_sql.SQL_LINE_MAX_CHARS]
        if long:
            self._parse(long)
            batch = [r for r in batch if len(r[2]) <= line_sql.SQL_LINE_MAX_CHARS]
        if self.apart is None:
            self.apart = line_sql.ApartClassifier(self.duck)
        self.apart.add(batch)
        if self.apart.staged >= CLASSIFY_EVERY_LINES or self.apart.staged_chars >= CLASSIFY_EVERY_CHARS:
            self.apart.flush(self.duck)

    def _write_part(self, f: _File) -> None:
        """Classify and commit what was staged so far, as a part of ``f`` (alone in its group),
        and start the next part on an empty stage."""
        if len(self.files) > 1:
            raise _GroupTooLarge(f"{f.name} holds more than {PART_MAX_LINES:,} lines: it is written alone, in parts")
        if self.apart is not None:
            self.apart.flush(self.duck)
        self._stage_blocks()
        line_sql.classify(self.duck)
        self._parse_left()
        d = self.duck
        with raw_store.transaction(d):
            self.seq = change_log.next_seq(d)
            changed = self.write()
            change_log.record_ingested(d, [], changed, seq=self.seq)
            ingest_parts.record(d, self.seq, f.sha256, f.name, self.part_lines)
        self.part_seqs.append(self.seq)
        log.info(
            "File %s: part %d committed (%s lines; %s transactions, %s new so far)",
            f.name,
            len(self.part_seqs),
            f"{self.part_lines:,}",
            f"{f.transactions:,}",
            f"{f.new_transactions:,}",
        )
        self.part_lines = 0
        self._create_stage()

    def discard_parts(self) -> None:
        """Remove the rows of the parts committed so far (their file is refused, or its last
        part could not be written)."""
        if not self.part_seqs:
            return
        with raw_store.transaction(self.duck):
            touched = ingest_parts.discard(self.duck, self.part_seqs)
            change_log.record_changes(self.duck, touched, "parts of a refused file removed")
        log.info("Removed the %d part(s) of this group committed so far", len(self.part_seqs))
        self.part_seqs = []

    def _stage_blocks(self) -> None:
        if self.blocks:
            _insert_frame(self.duck, "_dump_blocks", self.blocks, _DUMP_BLOCK_COLUMNS, or_ignore=False)
            self.blocks = []

    def _drop_file(self, f: _File, reason: str) -> None:
        """Refuse ``f``: nothing of it is written but its job (and its ledger entry)."""
        f.refused = reason
        f.clear_rejected()
        f.dump = None
        self.discard_parts()  # a file alone in its group: every part is its own
        if self.apart is not None:
            self.apart.forget()  # lines of this file not yet classified (the others are flushed)
        line_sql.drop_files(self.duck, [u.unit_id for u in f.units])
        self.blocks = [b for b in self.blocks if b[0] != f.index]
        self.duck.execute("DELETE FROM _dump_blocks WHERE file_index = ?", [f.index])

    # ---- classifying -----------------------------------------------------------------

    def classify(self) -> None:
        if self.apart is not None:
            self.apart.close()
            self.apart = None
        line_sql.classify(self.duck)
        for f in self.files:
            problem = _read_again_problem(f) if f.sha256 and not f.failed else None
            if problem:
                self._drop_file(f, problem)
                f.vanished = True
        self._parse_left()
        for f in self.files:
            if f.failed or f.transactions + f.rollbacks or (f.dump is not None and f.dump.blocks):
                continue  # a block dump may hold blocks without contract transactions
            rejected = list(f.rejected)
            reason = (
                f"{f.name} is empty: it holds no transaction line"
                if not rejected and not f.foreign
                else f"{f.name} holds no line this workspace counts: {_foreign_note(f)}"
                if not rejected
                else f"none of the {len(rejected)} lines of {f.name} could be read (first problem: {f.first_reason})"
            )
            self._drop_file(f, reason)
            f.rejected = rejected  # every bad line is kept: it explains why the whole file failed
            f.unjudged = f.unjudged or (bool(f.foreign) and not rejected)  # it is read where it belongs

    def _parse_left(self) -> None:
        """The Python parser reads the staged lines DuckDB left; the files' counts grow by the
        classified lines."""
        self._parse(line_sql.unclassified(self.duck))
        counts = self.duck.execute(
            "SELECT file_id, count(*) FILTER (WHERE NOT is_rollback), count(*) FILTER (WHERE is_rollback) "
            "FROM _classified GROUP BY 1"
        ).fetchall()
        for unit_id, transactions, rollbacks in counts:
            f, _ = self.units[unit_id]
            f.transactions += int(transactions)
            f.rollbacks += int(rollbacks)

    def _parse(self, rows: list[tuple[int, int, str]]) -> None:
        """The Python parser reads ``rows`` (``(unit, line number, text)``): the accepted lines
        join ``_classified``, the others are rejected with their reason."""
        accepted: list[tuple] = []
        refused: list[tuple[int, int, str, str]] = []
        for unit_id, line_number, text in rows:
            if not text.strip():
                continue  # blank (whitespace other than spaces and tabs)
            try:
                tx = parse_line(text)
            except LineError as err:
                refused.append((unit_id, line_number, err.reason, text.replace("\x00", "\\x00")))
                continue
            accepted.append(_classified_row(unit_id, line_number, tx))
        self._reject_lines(refused)
        line_sql.add_classified(self.duck, accepted)

    def _reject_lines(self, refused: list[tuple[int, int, str, str]]) -> None:
        """Keep the lines the parser rejected; a block-dump transaction is named by its block
        line, height and place in the block."""
        dumped = [(u, n) for u, n, _, _ in refused if self.units[u][1].staged]
        where = line_sql.dump_positions(self.duck, dumped)
        for unit_id, line_number, reason, text in refused:
            f, unit = self.units[unit_id]
            position = where.get((unit_id, line_number))
            if position is None:
                f.reject(unit.source, line_number, reason, text)
            else:
                block_line, height, index = position
                f.reject(unit.source, block_line, f"block {height}, transaction {index}: {reason}", text)

    # ---- writing ---------------------------------------------------------------------

    def write(self) -> set[str]:
        """Write the classified lines; returns the constituencies whose figures change."""
        units = [
            (u.unit_id, f.index, u.source, u.contract_id, f.sha256) for f, u in self.units.values() if not f.failed
        ]
        frame = pd.DataFrame(units, columns=["unit_id", "file_index", "source", "contract_id", "file_hash"])
        files = pd.DataFrame(
            [(f.index, f.sha256) for f in self.files if not f.failed and f.dump is not None],
            columns=["file_index", "file_hash"],
        )
        with registered(self.duck, "_units_frame", frame), registered(self.duck, "_dump_files", files):
            return self._write_rows()

    def _write_rows(self) -> set[str]:
        d = self.duck
        seq = self.seq
        d.execute("CREATE OR REPLACE TEMP TABLE _units AS SELECT * FROM _units_frame")
        d.execute(
            f"""
            CREATE OR REPLACE TEMP TABLE _incoming AS
            SELECT c.tx_id, u.contract_id AS constituency_id, c.tx_type, c.version,
                   make_timestamp(c.ts_ms * 1000) AS ts, c.operation, c.sender, c.rejected, c.bulletins,
                   c.voters_added, u.source, coalesce(b.block_line, c.line_number) AS line_number,
                   b.block_height, u.file_hash, u.file_index, c.is_rollback,
                   left(c.fee, {FEE_MAX_CHARS}) AS fee, left(c.fee_asset, {FEE_MAX_CHARS}) AS fee_asset,
                   left(c.fail_key, 200) AS fail_key,
                   row_number() OVER (PARTITION BY c.tx_id, c.is_rollback
                                      ORDER BY u.file_index, c.file_id, c.line_number) AS nth
            FROM _classified c JOIN _units u ON u.unit_id = c.file_id
            LEFT JOIN _dump_lines b ON b.file_id = c.file_id AND b.line_number = c.line_number
            """
        )
        d.execute(
            """
            CREATE OR REPLACE TEMP TABLE _stored AS
            SELECT tx_id, constituency_id, tx_type, version, ts, operation, sender, rejected, bulletins, voters_added
            FROM raw_transactions
            WHERE tx_key IN (SELECT md5_number(tx_id) FROM _incoming WHERE NOT is_rollback)
              AND tx_id IN (SELECT tx_id FROM _incoming WHERE NOT is_rollback)
            """
        )
        d.execute(
            "CREATE OR REPLACE TEMP TABLE _new AS SELECT * FROM _incoming "
            "WHERE NOT is_rollback AND nth = 1 AND tx_id NOT IN (SELECT tx_id FROM _stored)"
        )
        d.execute(
            """
            INSERT INTO raw_transactions (tx_id, constituency_id, tx_type, version, ts, operation, sender, rejected,
                                          bulletins, voters_added, source, line_number, file_hash, tx_key, seq,
                                          fee, fee_asset, fail_key, block_height)
            SELECT tx_id, constituency_id, tx_type, version, ts, operation, sender, rejected, bulletins,
                   voters_added, source, line_number, file_hash, md5_number(tx_id), ?, fee, fee_asset, fail_key,
                   block_height
            FROM _new
            """,
            [seq],
        )
        # Every copy that differs from the standing copy of its id (stored before, or the
        # group's first): evidence of two transactions under one id; none of them stands.
        d.execute(
            """
            INSERT OR IGNORE INTO raw_conflicts
            SELECT i.tx_id, i.constituency_id, i.tx_type, i.version, i.ts, i.operation, i.sender, i.rejected,
                   i.bulletins, i.voters_added, i.source, i.line_number, i.file_hash, ?
            FROM _incoming i
            JOIN (SELECT tx_id, constituency_id, tx_type, version, ts, operation, sender, rejected, bulletins,
                         voters_added FROM _stored
                  UNION ALL
                  SELECT tx_id, constituency_id, tx_type, version, ts, operation, sender, rejected, bulletins,
                         voters_added FROM _new) r USING (tx_id)
            WHERE NOT i.is_rollback
              AND row(i.tx_type, i.version, i.ts, i.operation, i.sender, i.rejected, i.bulletins, i.voters_added)
                  IS DISTINCT FROM
                  row(r.tx_type, r.version, r.ts, r.operation, r.sender, r.rejected, r.bulletins, r.voters_added)
            """,
            [seq],
        )
        conflicted = {
            c
            for row in d.execute(
                "SELECT i.constituency_id, s.constituency_id FROM raw_conflicts i "
                "LEFT JOIN (SELECT tx_id, constituency_id FROM _stored UNION ALL "
                "SELECT tx_id, constituency_id FROM _new) s USING (tx_id) WHERE i.seq = ?",
                [seq],
            ).fetchall()
            for c in row
            if c is not None
        }
        d.execute(
            """
            INSERT OR IGNORE INTO raw_rollbacks (tx_id, constituency_id, ts, source, line_number, file_hash, seq)
            SELECT tx_id, constituency_id, ts, source, line_number, file_hash, ? FROM _incoming
            WHERE is_rollback AND nth = 1
            """,
            [seq],
        )
        d.execute(
            """
            INSERT INTO raw_blocks (height, digest, transactions, skipped, source, line_number, file_hash, seq)
            SELECT b.height, b.digest, b.transactions, b.skipped, b.source, b.line_number, u.file_hash, ?
            FROM _dump_blocks b JOIN _dump_files u USING (file_index)
            """,
            [seq],
        )
        new_by_file = dict(d.execute("SELECT file_index, count(*) FROM _new GROUP BY 1").fetchall())
        for f in self.files:
            f.new_transactions += int(new_by_file.get(f.index, 0))  # summed over the parts
        changed = {r[0] for r in d.execute("SELECT DISTINCT constituency_id FROM _new").fetchall()}
        rollback_rows = d.execute("SELECT tx_id, constituency_id FROM _incoming WHERE is_rollback").fetchall()
        changed |= {c for _, c in rollback_rows}
        changed |= change_log.constituencies_of(d, [t for t, _ in rollback_rows])
        return changed | conflicted


def _foreign_note(f: _File) -> str:
    """The lines of other workspaces' contracts a file held, and why they are not counted."""
    foreign = f.foreign or {}
    lines = sum(n for n, _ in foreign.values())
    shown = "; ".join(f"{why} ({n:,} lines)" for _, (n, why) in sorted(foreign.items())[:5])
    more = f"; and {len(foreign) - 5} more contracts" if len(foreign) > 5 else ""
    return f"{lines:,} lines of {len(foreign)} contract(s) not counted by this workspace: {shown}{more}"


def _job_details(f: _File) -> str:
    """What the job of a completed file says about it."""
    parts = [
        f"{f.transactions} transaction lines read",
        f"{f.new_transactions} new",
        f"{f.transactions - f.new_transactions} already known (earlier files or repeated lines)",
    ]
    if f.rollbacks:
        parts.append(f"{f.rollbacks} rollback lines")
    if f.rejected:
        parts.append(f"{len(f.rejected)} rejected lines (first: {f.first_reason})")
    if f.foreign:
        parts.append(_foreign_note(f))
    parts.extend(f.notes)
    return "; ".join(parts)


def _record_files(duck: duckdb.DuckDBPyConnection, files: list[_File], folders: DropFolders, seq: int) -> None:
    """Jobs, ledger entries and rejected lines of ``files`` (inside the group's transaction)."""
    now = utcnow()
    jobs: list[tuple[Any, ...]] = []
    ledger: list[tuple[Any, ...]] = []
    rejected: list[tuple[Any, ...]] = []
    for folder in (folders.processed_dir, folders.quarantine_dir):
        folder.mkdir(parents=True, exist_ok=True)
    for f in files:
        if f.vanished:  # nothing to move, and no verdict on its content
            jobs.append(
                (
                    f.job_id,
                    f.name,
                    FileJobStatus.FAILED,
                    f.refused,
                    0,
                    0,
                    f.sha256 or None,
                    "",
                    f.started,
                    now,
                    seq,
                    None,
                )
            )
            continue
        if f.duplicate_of is not None:
            failed = f.duplicate_of["status"] == FileJobStatus.FAILED
            f.target = _destination(folders.quarantine_dir if failed else folders.processed_dir, f.path, f.sha256)
            status = FileJobStatus.FAILED if failed else FileJobStatus.COMPLETED
            jobs.append(
                (f.job_id, f.name, status, f.refused, 0, 0, f.sha256, str(f.target), f.started, now, seq, False)
            )
            continue
        f.target = _destination(folders.quarantine_dir if f.failed else folders.processed_dir, f.path, f.sha256)
        status = FileJobStatus.FAILED if f.failed else FileJobStatus.COMPLETED
        details = f.refused if f.failed else _job_details(f)
        jobs.append(
            (
                f.job_id,
                f.name,
                status,
                details,
                0 if f.failed else f.transactions,
                len(f.rejected),
                f.sha256 or None,
                str(f.target),
                f.started,
                now,
                seq,
                False,
            )
        )
        if f.sha256 and not f.unjudged:
            ledger.append((f.sha256, f.name, status, f.job_id, f.size, str(f.target), now, seq))
        for source, line_number, reason, raw in f.rejected:
            text, length, digest = _truncated(raw)
            rejected.append(
                (new_uuid(), f.sha256, f.name, source, line_number, reason, text, length, digest, f.job_id, now, seq)
            )
    _insert_frame(
        duck,
        "file_jobs",
        jobs,
        [
            "id",
            "filename",
            "status",
            "details",
            "transactions_processed",
            "rejected_lines",
            "file_hash",
            "stored_path",
            "started_at",
            "completed_at",
            "seq",
            "moved",
        ],
    )
    _insert_frame(
        duck,
        "file_ledger",
        ledger,
        ["content_hash", "filename", "status", "job_id", "size_bytes", "stored_path", "recorded_at", "seq"],
    )
    _insert_frame(
        duck,
        "raw_rejected",
        rejected,
        [
            "id",
            "file_hash",
            "filename",
            "source",
            "line_number",
            "reason",
            "raw_line",
            "line_length",
            "line_sha256",
            "job_id",
            "created_at",
            "seq",
        ],
    )


def _insert_frame(
    duck: duckdb.DuckDBPyConnection, table: str, rows: list[tuple], columns: list[str], *, or_ignore: bool = True
) -> None:
    """Insert ``rows``; with ``or_ignore``, rows whose key the table holds already are skipped
    (``or_ignore=False`` for a table without a key)."""
    if not rows:
        return
    cols = ", ".join(columns)
    verb = "INSERT OR IGNORE" if or_ignore else "INSERT"
    with registered(duck, "_rows_frame", pd.DataFrame(rows, columns=columns)):
        duck.execute(f"{verb} INTO {table} ({cols}) SELECT {cols} FROM _rows_frame")


def _write_group(
    duck: duckdb.DuckDBPyConnection, files: list[_File], folders: DropFolders, limits: dict[str, Any]
) -> None:
    """Stage and classify ``files`` (into temporary tables, before the transaction: rows
    appended inside a transaction stay in memory until it ends, and a large file's staged
    lines would), then write them in one DuckDB transaction, then move them."""
    clock = _Clock()
    if ingest_parts.any_listed(duck):  # parts of an ingest stopped in between: removed first
        change_log.catch_up(duck)
    readable = [f for f in files if f.duplicate_of is None]
    group = _Group(duck, readable, 0, limits)
    try:
        group.stage()
        clock.lap("staged")
        group.classify()
        clock.lap("classified")
        with raw_store.transaction(duck):
            group.seq = seq = change_log.next_seq(duck)
            changed = group.write()
            ingest_parts.finish(duck, group.part_seqs)
            counted = [f for f in readable if not f.failed]
            if group.part_seqs:
                parts = len(group.part_seqs) + (1 if group.part_lines else 0)  # the last may be empty
                for f in counted:
                    f.notes.append(
                        f"written in {parts} parts of at most {PART_MAX_LINES:,} lines, each committed as it was read"
                    )
            raw_counts = [(f.sha256, f.new_transactions) for f in counted]
            _insert_frame(duck, "raw_files", raw_counts, ["file_hash", "new_transactions"])
            change_log.record_ingested(duck, [f.sha256 for f in counted], changed, seq=seq)
            _record_files(duck, files, folders, seq)
            clock.lap("written")
        clock.lap("committed")
    except BaseException:
        group.discard_parts()
        raise
    moved = []
    for f in files:
        if f.target is None:  # gone before it was read
            continue
        try:
            _move(f.path, f.target)
            moved.append(f.job_id)
        except OSError as err:  # its job says where it goes: the next run finishes the move
            log.error("File %s could not be moved to %s: %s", f.name, f.target, err)
    _mark_moved(duck, moved)
    clock.lap("moved")
    log.info(
        "Group %d: %d files, %.1f MB, %d lines counted; %s",
        seq,
        len(files),
        sum(f.size for f in files) / 1e6,
        sum(f.transactions + f.rollbacks for f in files),
        clock.summary(),
    )


class _Clock:
    """Seconds spent in each phase of a group's write (for the run's log)."""

    def __init__(self) -> None:
        self.last = time.perf_counter()
        self.laps: list[tuple[str, float]] = []

    def lap(self, name: str) -> None:
        now = time.perf_counter()
        self.laps.append((name, now - self.last))
        self.last = now

    def summary(self) -> str:
        return ", ".join(f"{name} in {seconds:.2f} s" for name, seconds in self.laps)


def _mark_moved(duck: duckdb.DuckDBPyConnection, job_ids: list[str]) -> None:
    """Record that these jobs' files reached their stored path. Until then (a run stopped
    between the commit and the moves) the next run finishes the move; after it, the same file
    dropped again (taken back from the quarantine, say) is a new arrival."""
    if job_ids:
        with registered(duck, "_moved", pd.DataFrame({"id": job_ids})):
            duck.execute("UPDATE file_jobs SET moved = TRUE WHERE id IN (SELECT id FROM _moved)")


def _write_isolated(
    duck: duckdb.DuckDBPyConnection, files: list[_File], folders: DropFolders, limits: dict[str, Any]
) -> None:
    """:func:`_write_group`; when something unexpected happens, each file is written alone,
    and a file that fails alone is refused with the error as its reason. A group that needs
    more memory than DuckDB may use is written in halves; a single file that does is refused
    (raise ``ELECTION_DUCKDB_MEMORY_LIMIT`` and drop it again)."""
    try:
        _write_group(duck, files, folders, limits)
        return
    except duckdb.OutOfMemoryException as err:
        if len(files) > 1:
            half = len(files) // 2
            log.warning("A group of %d files needs more memory than DuckDB may use; writing it in halves", len(files))
            for part in (files[:half], files[half:]):
                for f in part:
                    _reset(f)
                _write_isolated(duck, part, folders, limits)
            return
        _refuse_alone(
            duck,
            files[0],
            folders,
            limits,
            f"{files[0].name} needs more memory than DuckDB may use (ELECTION_DUCKDB_MEMORY_LIMIT): "
            f"{str(err)[:200]}; raise the limit and drop the file again",
        )
        return
    except STORE_ERRORS:
        raise
    except _GroupTooLarge as err:
        log.info("%s; the %d files of its group are written one at a time", err, len(files))
    except Exception as err:
        if len(files) == 1:
            log.exception("File %s could not be processed", files[0].name)
            reason = f"{files[0].name} could not be processed: {type(err).__name__}: {str(err)[:300]}"
            _refuse_alone(duck, files[0], folders, limits, reason)
            return
        log.warning("A group of %d files failed (%s); writing each file alone", len(files), err)
    for f in files:
        _reset(f)
        _write_isolated(duck, [f], folders, limits)


def _refuse_alone(
    duck: duckdb.DuckDBPyConnection, f: _File, folders: DropFolders, limits: dict[str, Any], reason: str
) -> None:
    """Write ``f`` alone as refused for ``reason``, a reason that is not its content: it is
    quarantined with no ledger entry, so the same content dropped again is read again."""
    _reset(f)
    f.refused = reason
    f.unjudged = True
    _write_group(duck, [f], folders, limits)


def _reset(f: _File) -> None:
    """Forget what an attempt read (the file is read again)."""
    f.refused = f.refused_unread if f.duplicate_of is None else f.refused
    f.vanished = f.vanished_unread
    f.unjudged = f.unjudged_unread
    f.units.clear()
    f.clear_rejected()
    f.notes.clear()
    f.first_reason = ""
    f.transactions = f.rollbacks = f.new_transactions = 0
    f.target = None
    f.dump = None
    f.foreign = None


# --------------------------------------------------------------------------------------
# The folder
# --------------------------------------------------------------------------------------


def _known(duck: duckdb.DuckDBPyConnection, hashes: list[str]) -> dict[str, dict[str, Any]]:
    """Ledger entries of these content hashes."""
    if not hashes:
        return {}
    with registered(duck, "_hashes", pd.DataFrame({"h": hashes})):
        rows = duck.execute(
            "SELECT content_hash, filename, status, job_id, stored_path, recorded_at FROM file_ledger "
            "WHERE content_hash IN (SELECT h FROM _hashes)"
        ).fetchall()
    keys = ["content_hash", "filename", "status", "job_id", "stored_path", "recorded_at"]
    return {r[0]: dict(zip(keys, r, strict=True)) for r in rows}


def _unfinished_moves(duck: duckdb.DuckDBPyConnection, names: list[str]) -> dict[tuple[str, str], tuple[str, str]]:
    """``(file name, content hash or '')`` -> ``(job id, stored path)`` of the latest job of each
    name and content whose file is not at its stored path: a run stopped after recording the
    file (its group committed) and before moving it."""
    if not names:
        return {}
    with registered(duck, "_names", pd.DataFrame({"n": names})):
        rows = duck.execute(
            "SELECT filename, coalesce(file_hash, ''), job_id, stored_path FROM ("
            "  SELECT filename, file_hash, id AS job_id, stored_path, row_number() OVER ("
            "      PARTITION BY filename, file_hash ORDER BY seq DESC, completed_at DESC) AS nth"
            "  FROM file_jobs WHERE filename IN (SELECT n FROM _names) AND coalesce(stored_path, '') <> ''"
            "    AND NOT coalesce(moved, TRUE)"
            ") WHERE nth = 1"
        ).fetchall()
    out: dict[tuple[str, str], tuple[str, str]] = {}
    for name, content_hash, job_id, stored in rows:
        target = Path(stored)
        if not (target.exists() or target.is_symlink()):
            out[(name, content_hash)] = (job_id, stored)
    return out


def _recover(f: _File, unfinished: dict[tuple[str, str], tuple[str, str]]) -> FileOutcome | None:
    """A run stopped after recording this file but before moving it: finish the move (every
    file with a job is known here, also a duplicate or a link the ledger has no entry for)."""
    pending = unfinished.get((f.name, f.sha256))
    if pending is None:
        return None
    job_id, stored = pending
    _move(f.path, Path(stored))
    log.info("File %s was already recorded; finished moving it to %s", f.name, stored)
    return FileOutcome(f.name, "recovered", job_id, stored_path=stored)


def _duplicate_reason(f: _File, entry: dict[str, Any]) -> str:
    failed = entry["status"] == FileJobStatus.FAILED
    when = entry["recorded_at"]
    return (
        f"same content as {entry['filename']} (SHA-256 {f.sha256[:12]}...), already "
        f"{'refused' if failed else 'counted'} on {when:%Y-%m-%d %H:%M} UTC; nothing counted again"
    )


def notice_unread_entries(duck: duckdb.DuckDBPyConnection, input_dir: Path) -> list[tuple[str, str]]:
    """Folders and other entries of the drop folder that are never read, reported (logged and
    returned) the first time they are seen; they are left where they are."""
    entries = unread_entries(input_dir)
    if not entries:
        return []
    seen = {r[0] for r in duck.execute("SELECT name FROM noticed_entries").fetchall()}
    new = [(p.name, reason) for p, reason in entries if p.name not in seen]
    if new:
        now = utcnow()
        _insert_frame(duck, "noticed_entries", [(n, r, now) for n, r in new], ["name", "reason", "noticed_at"])
        for _, reason in new:
            log.warning("%s", reason)
    return new


def _batches(files: list[_File], admit: Admit | None = None) -> Iterator[list[_File]]:
    """Consecutive groups of at most GROUP_MAX_BYTES / GROUP_MAX_FILES; the same content
    twice never in one group (the second copy is then told apart by the ledger). Each file is
    hashed as its group is formed, so that DuckDB reads it soon after, while it is still in the
    operating system's cache."""
    group: list[_File] = []
    size = 0
    hashes: set[str] = set()
    for f in files:
        _inspect(f, admit)
        f.refused_unread, f.vanished_unread = f.refused, f.vanished
        f.unjudged_unread = f.unjudged
        if group and (
            size + f.size > GROUP_MAX_BYTES or len(group) >= GROUP_MAX_FILES or (f.sha256 and f.sha256 in hashes)
        ):
            yield group
            group, size, hashes = [], 0, set()
        group.append(f)
        size += f.size
        if f.sha256:
            hashes.add(f.sha256)
    if group:
        yield group


def ingest_folder(
    files: list[Path],
    *,
    duck: duckdb.DuckDBPyConnection,
    folders: DropFolders,
    batch_size: int,
    zip_max_total_bytes: int,
    zip_max_ratio: int,
    progress: Callable[[str], None] | None = None,
    admit: Admit | None = None,
) -> IngestSummary:
    """Ingest ``files`` in name order into the DuckDB raw store (see the module docstring).
    With ``admit``, the lines of a contract it gives a reason for are not counted (a ``.csv``
    of such a contract is refused whole; the other lines of an archive or dump are read):
    another election's files dropped into an election's workspace.
    Never raises for bad input; raises only when the store itself fails (the step then fails,
    and the next run ends as one clean run would)."""
    summary = IngestSummary()
    summary.noticed = notice_unread_entries(duck, folders.input_dir)
    limits: dict[str, Any] = {
        "batch_size": batch_size,
        "zip_max_total_bytes": zip_max_total_bytes,
        "zip_max_ratio": zip_max_ratio,
        "admit": admit,
    }
    pending = [_File(i, p) for i, p in enumerate(sorted(files, key=lambda p: p.name)) if _present(p)]
    with _few_checkpoints(duck):
        _ingest_batches(duck, pending, folders, limits, summary, progress)
    return summary


@contextlib.contextmanager
def _few_checkpoints(duck: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """While the groups are written, DuckDB checkpoints (folds its write-ahead log into the
    file, rewriting the tables' indexes) only every :data:`CHECKPOINT_THRESHOLD` of log instead
    of every 16 MB, and once at the end."""
    row = duck.execute("SELECT current_setting('checkpoint_threshold')").fetchall()
    before = str(row[0][0]) if row else "16.0 MiB"
    duck.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
    try:
        yield
    finally:
        with contextlib.suppress(duckdb.Error):
            duck.execute(f"SET checkpoint_threshold = '{before}'")
    try:
        duck.execute("CHECKPOINT")
    except duckdb.Error as err:  # the log is folded in at the next checkpoint instead
        log.warning("DuckDB could not checkpoint after the ingest: %s", err)


def _ingest_batches(
    duck: duckdb.DuckDBPyConnection,
    pending: list[_File],
    folders: DropFolders,
    limits: dict[str, Any],
    summary: IngestSummary,
    progress: Callable[[str], None] | None,
) -> None:
    total = len(pending)
    done = 0
    for batch in _batches(pending, limits["admit"]):
        known = _known(duck, sorted({f.sha256 for f in batch if f.sha256}))
        unfinished = _unfinished_moves(duck, sorted({f.name for f in batch}))
        group: list[_File] = []
        for f in batch:
            recovered = _recover(f, unfinished)
            if recovered is not None:
                _mark_moved(duck, [recovered.job_id] if recovered.job_id else [])
                summary.outcomes.append(recovered)
                done += 1
                continue
            entry = known.get(f.sha256) if f.sha256 else None
            if entry is not None:
                f.duplicate_of = entry
                f.refused = f.refused_unread = _duplicate_reason(f, entry)
            group.append(f)
        if not group:
            continue
        _write_isolated(duck, group, folders, limits)
        for f in group:
            outcome = f.outcome()
            summary.outcomes.append(outcome)
            done += 1
            _log_outcome(f, outcome)
            if progress and (done == total or done % 25 == 0 or outcome.status == "failed"):
                progress(
                    f"[{done}/{total}] {outcome.filename}: {outcome.status}"
                    + (f" ({outcome.reason})" if outcome.reason else "")
                )


def _present(path: Path) -> bool:
    """Still in the folder (a concurrent run may have taken it); a link counts, even broken."""
    return path.is_symlink() or path.exists()


def _log_outcome(f: _File, outcome: FileOutcome) -> None:
    if outcome.status == "failed" and not outcome.stored_path:
        log.error("File %s failed and was not moved: %s", f.name, outcome.reason)
    elif outcome.status == "failed":
        log.error("File %s failed and was moved to %s: %s", f.name, outcome.stored_path, outcome.reason)
    elif outcome.status == "duplicate":
        log.warning("File %s is a duplicate: %s", f.name, outcome.reason)
    else:
        log.info(
            "File %s: %d transactions (%d new), %d rollbacks, %d rejected lines -> %s",
            f.name,
            outcome.transactions,
            outcome.new_transactions,
            outcome.rollbacks,
            outcome.rejected_lines,
            outcome.stored_path,
        )
