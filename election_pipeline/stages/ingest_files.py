"""Ingest stage: files in the drop folder -> DuckDB raw store + operational database.

For each ready file, in name order:

1. Its SHA-256 is looked up in the file ledger. Content seen before is not counted again.
2. A ``FileProcessingJob`` is opened (``processing``).
3. Lines are parsed in batches. Good lines go to DuckDB (``raw_transactions``/``raw_rollbacks``)
   and to the operational ``transactions`` table (without ballot blobs); bad lines become
   ``rejected_rows`` with file, line number, reason and raw text.
4. DuckDB commits, then the operational database commits the job, the ledger entry and
   the rows together. Every write is keyed, so a run killed anywhere and run again ends
   with exactly the figures of one clean run.
5. The file is moved to ``processed/`` (or ``quarantine/`` when it failed). Nothing is deleted.

At national scale (thousands of hourly files landing at once) the pipeline asks
:func:`ingest_folder` to group small files: worker processes parse the next files while
the current group is written, and each group of about ``batch_size`` lines is committed
once in each store, with the same per-file jobs, ledger entries and figures as above.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import multiprocessing
import os
import shutil
import signal
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Engine, select, update

from election_pipeline.analytics import change_log, raw_store
from election_pipeline.db.bulk import JsonText, chunks, insert_ignore, update_by_key
from election_pipeline.db.models import (
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    RejectedRow,
    Transaction,
    utcnow,
)
from election_pipeline.db.models.base import new_ordered_uuid, new_uuid
from election_pipeline.ingest.export_files import FileRefused, file_sha256, is_candidate, iter_export_lines
from election_pipeline.ingest.export_line import LineError, parse_line

log = logging.getLogger(__name__)


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
    modified during the last ``settle_seconds`` (a copy still in progress keeps changing)."""
    if not input_dir.is_dir():
        return []
    now = time.time() if now is None else now
    out = []
    for path in sorted(input_dir.iterdir()):
        if is_candidate(path) and now - path.stat().st_mtime >= settle_seconds:
            out.append(path)
    return out


def _destination(folder: Path, path: Path, content_hash: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / path.name
    if not target.exists():
        return target
    stem, suffix = path.name.split(".", 1) if "." in path.name else (path.name, "")
    suffix = f".{suffix}" if suffix else ""
    for n in range(0, 10_000):
        tag = content_hash[:12] if n == 0 else f"{content_hash[:12]}-{n}"
        target = folder / f"{stem}.{tag}{suffix}"
        if not target.exists():
            return target
    raise RuntimeError(f"cannot find a free name for {path.name} in {folder}")


def _move(path: Path, target: Path) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.move(str(path), str(target))


class _FileWriter:
    """Accumulates one file's rows and flushes them in batches."""

    def __init__(self, duck: duckdb.DuckDBPyConnection, ops, filename: str, file_hash: str, job_id: str) -> None:
        self.duck = duck
        self.ops = ops
        self.filename = filename
        self.file_hash = file_hash
        self.job_id = job_id
        self.tx_rows: list[tuple] = []
        self.rollback_rows: list[tuple] = []
        self.op_rows: list[dict[str, Any]] = []
        self.rejected: list[dict[str, Any]] = []
        self.known_constituencies: set[str] = set()
        # What the flushed rows touched, for the change log (see analytics.change_log).
        self.flushed_constituencies: set[str] = set()
        self.flushed_rollback_ids: list[str] = []
        self.transactions = 0
        self.new_transactions = 0
        self.inserted = 0  # rows this attempt added to the DuckDB store
        self.rollbacks = 0
        self.rejected_count = 0
        self.first_reason = ""
        self.started = utcnow()

    def add_line(self, source: str, contract_id: str, line_number: int, text: str | None, raw: str) -> None:
        if text is None:
            self._reject(source, line_number, "the line is not valid UTF-8", raw)
            return
        try:
            tx = parse_line(text)
        except LineError as err:
            self._reject(source, line_number, err.reason, raw)
            return
        if tx.is_rollback:
            self.rollbacks += 1
            self.rollback_rows.append(raw_store.rollback_row(tx, contract_id, source, line_number, self.file_hash))
            return
        self.transactions += 1
        self.tx_rows.append(raw_store.tx_row(tx, contract_id, source, line_number, self.file_hash))
        now = self.started  # one instant per file: the time its reading started
        self.op_rows.append(
            {
                "id": new_ordered_uuid(),
                "tx_id": tx.tx_id,
                "constituency_id": contract_id,
                "block_height": None,
                "timestamp": tx.timestamp,
                "type": tx.operation,
                "sender": tx.sender or None,
                "is_rejected": tx.rejected,
                "is_rolled_back": False,
                "bulletins": tx.bulletins,
                "source_file": source,
                # Serialised here (in the parse worker when there is one): text crosses
                # processes far more cheaply than nested objects.
                "raw_data": JsonText.of(tx.raw_data),
                "operation_data": JsonText.of(
                    {
                        "operation": tx.operation,
                        "rejected": tx.rejected,
                        "bulletins": tx.bulletins,
                        "voters_added": tx.voters_added,
                        "line_number": line_number,
                    }
                ),
                "created_at": now,
                "updated_at": now,
            }
        )

    def _reject(self, source: str, line_number: int, reason: str, raw: str) -> None:
        self.rejected_count += 1
        if not self.first_reason:
            self.first_reason = f"{source} line {line_number}: {reason}"
        self.rejected.append(
            {
                "id": new_uuid(),
                "file_hash": self.file_hash,
                "filename": self.filename,
                "source": source,
                "line_number": line_number,
                "reason": reason,
                "raw_line": raw,
                "job_id": self.job_id,
                "created_at": utcnow(),
            }
        )

    def pending(self) -> int:
        return len(self.tx_rows) + len(self.rollback_rows) + len(self.rejected)

    def flush(self) -> None:
        if self.op_rows:
            self._ensure_constituencies({r["constituency_id"] for r in self.op_rows})
        self.inserted += raw_store.insert_transactions(self.duck, self.tx_rows)
        raw_store.insert_rollbacks(self.duck, self.rollback_rows)
        self.flushed_constituencies.update(r[1] for r in self.tx_rows)
        self.flushed_constituencies.update(r[1] for r in self.rollback_rows)
        self.flushed_rollback_ids.extend(r[0] for r in self.rollback_rows)
        insert_ignore(self.ops, Transaction.__table__, self.op_rows, ["tx_id"])
        insert_ignore(self.ops, RejectedRow.__table__, self.rejected, ["file_hash", "source", "line_number"])
        self.tx_rows, self.rollback_rows, self.op_rows, self.rejected = [], [], [], []

    def _ensure_constituencies(self, ids: set[str]) -> None:
        missing = ids - self.known_constituencies
        if not missing:
            return
        existing = set(self.ops.execute(select(Constituency.id).where(Constituency.id.in_(missing))).scalars())
        now = utcnow()
        rows: list[dict[str, Any]] = [
            {
                "id": cid,
                "election_id": None,
                "name": f"Unknown contract {cid}",
                "region": "",
                "type": "unknown",
                "registered_voters": 0,
                "registered_voters_source": "none",
                "status": "unknown",
                "in_reference": False,
                "last_update_time": now,
                "bulletins_issued": 0,
                "votes_cast": 0,
                "revote_count": 0,
                "transaction_count": 0,
                "rejected_count": 0,
                "participation_rate": 0.0,
                "anomaly_score": 0.0,
                "created_at": now,
                "updated_at": now,
            }
            for cid in sorted(missing - existing)
        ]
        if rows:
            log.warning(
                "Contracts not in the reference data, recorded as unknown: %s", ", ".join(r["id"] for r in rows)
            )
        insert_ignore(self.ops, Constituency.__table__, rows, ["id"])
        self.known_constituencies |= missing


def _rollback_quietly(duck: duckdb.DuckDBPyConnection) -> None:
    with contextlib.suppress(duckdb.Error):  # already committed or rolled back
        duck.rollback()


def _open_job(engine: Engine, path: Path, file_hash: str) -> tuple[str, bool]:
    """The job of this file content: a ``processing`` one left by a crashed run (resumed:
    True), or a new one."""
    with engine.begin() as conn:
        existing = conn.execute(
            select(FileProcessingJob.id).where(
                FileProcessingJob.file_hash == file_hash, FileProcessingJob.status == "processing"
            )
        ).scalar()
        if existing:
            return existing, True
        job_id = new_uuid()
        conn.execute(
            FileProcessingJob.__table__.insert().values(
                id=job_id,
                filename=path.name,
                status="processing",
                details="reading",
                transactions_processed=0,
                rejected_lines=0,
                file_hash=file_hash,
                started_at=utcnow(),
            )
        )
        return job_id, False


def _completed_details(writer: _FileWriter, notes: list[str]) -> str:
    """What the job of a completed file says about it."""
    parts = [
        f"{writer.transactions} transaction lines read",
        f"{writer.new_transactions} new",
        f"{writer.transactions - writer.new_transactions} already known (earlier files or repeated lines)",
    ]
    if writer.rollbacks:
        parts.append(f"{writer.rollbacks} rollback lines")
    if writer.rejected_count:
        parts.append(f"{writer.rejected_count} rejected lines (first: {writer.first_reason})")
    parts.extend(notes)
    return "; ".join(parts)


def _finish(
    conn,
    job_id: str,
    file_hash: str,
    path: Path,
    status: str,
    details: str,
    target: Path,
    transactions: int,
    rejected: int,
) -> None:
    now = utcnow()
    conn.execute(
        update(FileProcessingJob.__table__)
        .where(FileProcessingJob.id == job_id)
        .values(
            status=status,
            details=details,
            transactions_processed=transactions,
            rejected_lines=rejected,
            stored_path=str(target),
            completed_at=now,
        )
    )
    insert_ignore(
        conn,
        FileLedgerEntry.__table__,
        [
            {
                "content_hash": file_hash,
                "filename": path.name,
                "status": status,
                "job_id": job_id,
                "size_bytes": path.stat().st_size,
                "stored_path": str(target),
                "recorded_at": now,
            }
        ],
        ["content_hash"],
    )


def ingest_file(
    path: Path,
    *,
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    folders: DropFolders,
    batch_size: int,
    zip_max_total_bytes: int,
    zip_max_ratio: int,
) -> FileOutcome:
    """Process one file completely (see the module docstring). Never raises for bad input."""
    file_hash = file_sha256(path)
    with engine.connect() as conn:
        ledger = (
            conn.execute(select(FileLedgerEntry).where(FileLedgerEntry.content_hash == file_hash)).mappings().first()
        )
    if ledger is not None:
        return _handle_known(path, dict(ledger), engine, folders, file_hash)

    job_id, resumed = _open_job(engine, path, file_hash)
    notes: list[str] = []
    refused: str | None = None
    duck.begin()
    try:
        with engine.begin() as ops:
            writer = _FileWriter(duck, ops, path.name, file_hash, job_id)
            try:
                for line in iter_export_lines(
                    path, max_total_bytes=zip_max_total_bytes, max_ratio=zip_max_ratio, notes=notes
                ):
                    writer.add_line(line.source, line.contract_id, line.line_number, line.text, line.raw)
                    if writer.pending() >= batch_size:
                        writer.flush()
                writer.flush()
            except FileRefused as err:
                refused = err.reason
            except (OSError, EOFError) as err:  # unreadable or truncated file
                refused = f"{path.name} could not be read: {err}"

            all_lines_bad = refused is None and writer.transactions + writer.rollbacks == 0
            if all_lines_bad:
                refused = (
                    f"{path.name} is empty: it holds no transaction line"
                    if writer.rejected_count == 0
                    else f"none of the {writer.rejected_count} lines of {path.name} could be read "
                    f"(first problem: {writer.first_reason})"
                )
            if refused is not None:
                duck.rollback()
                ops.rollback()
            else:
                # Attributed by content hash, so a re-run after a crash reports the same figure:
                # the count recorded with the rows when an earlier attempt committed DuckDB, else
                # what this attempt inserted (a resumed job of an older version: counted by hash).
                recorded = raw_store.recorded_file(duck, file_hash)
                if recorded is not None:
                    writer.new_transactions = recorded
                elif resumed:
                    writer.new_transactions = raw_store.count_from_file(duck, file_hash)
                else:
                    writer.new_transactions = writer.inserted
                raw_store.record_file(duck, file_hash, writer.new_transactions)
                change_log.record_ingested(
                    duck, [file_hash], writer.flushed_constituencies, writer.flushed_rollback_ids
                )
                duck.commit()
                target = _destination(folders.processed_dir, path, file_hash)
                _finish(
                    ops,
                    job_id,
                    file_hash,
                    path,
                    "completed",
                    _completed_details(writer, notes),
                    target,
                    writer.transactions,
                    writer.rejected_count,
                )

    except BaseException:
        # A database error or an interruption: leave no half-open DuckDB transaction behind.
        _rollback_quietly(duck)
        raise

    if refused is not None:
        target = _destination(folders.quarantine_dir, path, file_hash)
        with engine.begin() as ops:
            if all_lines_bad and writer.rejected_count:
                # Keep each bad line's reason: it explains why the whole file failed.
                rows = _all_rejections(path, file_hash, job_id, zip_max_total_bytes, zip_max_ratio)
                insert_ignore(ops, RejectedRow.__table__, rows, ["file_hash", "source", "line_number"])
            _finish(ops, job_id, file_hash, path, "failed", refused, target, 0, writer.rejected_count)
        _move(path, target)
        log.error("File %s failed and was moved to %s: %s", path.name, target, refused)
        return FileOutcome(path.name, "failed", job_id, 0, 0, 0, writer.rejected_count, refused, str(target))

    _move(path, target)
    log.info(
        "File %s: %d transactions (%d new), %d rollbacks, %d rejected lines -> %s",
        path.name,
        writer.transactions,
        writer.new_transactions,
        writer.rollbacks,
        writer.rejected_count,
        target,
    )
    return FileOutcome(
        path.name,
        "completed",
        job_id,
        writer.transactions,
        writer.new_transactions,
        writer.rollbacks,
        writer.rejected_count,
        "",
        str(target),
    )


def _all_rejections(path: Path, file_hash: str, job_id: str, max_total: int, max_ratio: int) -> list[dict[str, Any]]:
    """Re-read a file whose every line was bad, to store each line's reason (small by nature)."""
    out: list[dict[str, Any]] = []
    try:
        for line in iter_export_lines(path, max_total_bytes=max_total, max_ratio=max_ratio):
            if line.text is None:
                reason = "the line is not valid UTF-8"
            else:
                try:
                    parse_line(line.text)
                    continue
                except LineError as err:
                    reason = err.reason
            out.append(
                {
                    "id": new_uuid(),
                    "file_hash": file_hash,
                    "filename": path.name,
                    "source": line.source,
                    "line_number": line.line_number,
                    "reason": reason,
                    "raw_line": line.raw,
                    "job_id": job_id,
                    "created_at": utcnow(),
                }
            )
    except FileRefused:
        pass
    return out


def _handle_known(
    path: Path, ledger: dict[str, Any], engine: Engine, folders: DropFolders, file_hash: str
) -> FileOutcome:
    stored = Path(ledger["stored_path"]) if ledger["stored_path"] else None
    if stored is not None and not stored.exists() and ledger["filename"] == path.name:
        # A run stopped after recording this file but before moving it: finish the move.
        _move(path, stored)
        log.info("File %s was already counted; finished moving it to %s", path.name, stored)
        return FileOutcome(path.name, "recovered", ledger["job_id"], stored_path=str(stored))
    failed = ledger["status"] == "failed"
    folder = folders.quarantine_dir if failed else folders.processed_dir
    target = _destination(folder, path, file_hash)
    reason = (
        f"same content as {ledger['filename']} (SHA-256 {file_hash[:12]}...), already "
        f"{'refused' if failed else 'counted'} on {ledger['recorded_at']:%Y-%m-%d %H:%M} UTC; nothing counted again"
    )
    now = utcnow()
    with engine.begin() as conn:
        job_id = new_uuid()
        conn.execute(
            FileProcessingJob.__table__.insert().values(
                id=job_id,
                filename=path.name,
                status="failed" if failed else "completed",
                details=reason,
                transactions_processed=0,
                rejected_lines=0,
                file_hash=file_hash,
                stored_path=str(target),
                started_at=now,
                completed_at=now,
            )
        )
    _move(path, target)
    log.warning("File %s is a duplicate: %s", path.name, reason)
    return FileOutcome(path.name, "duplicate", job_id, reason=reason, stored_path=str(target))


def sync_rollbacks(duck: duckdb.DuckDBPyConnection, engine: Engine) -> int:
    """Flag, in the operational database, every transaction a rollback line cancels."""
    ids = raw_store.rolled_back_tx_ids(duck)
    changed = 0
    with engine.begin() as conn:
        for part in chunks(ids, 500):
            result = conn.execute(
                update(Transaction.__table__)
                .where(Transaction.tx_id.in_(list(part)), Transaction.is_rolled_back.is_(False))
                .values(is_rolled_back=True, updated_at=utcnow())
            )
            changed += result.rowcount or 0
    return changed


#: Files up to this size are read whole and written together with the next small files:
#: one commit of each store per group of about ``batch_size`` lines instead of one per file
#: (at the top of the hour, thousands of small files land at once). Larger files and zip
#: archives are streamed alone by :func:`ingest_file`.
GROUP_MAX_FILE_BYTES = 8 * 1024**2
GROUP_MAX_FILES = 1_000


@dataclass
class _ParsedFile:
    """A small file read and parsed whole, waiting to be written with its group."""

    path: Path
    file_hash: str
    writer: _FileWriter
    notes: list[str]
    size: int
    job_id: str = ""
    resumed: bool = False
    target: Path | None = None


def _groupable(path: Path) -> bool:
    return path.suffix.lower() == ".csv" and path.stat().st_size <= GROUP_MAX_FILE_BYTES


def _parse_whole(path: Path, file_hash: str, zip_max_total_bytes: int, zip_max_ratio: int) -> _ParsedFile | None:
    """Parse every line of a small file; None when the file must be refused (it then goes
    through :func:`ingest_file`, which records why)."""
    notes: list[str] = []
    writer = _FileWriter(None, None, path.name, file_hash, "")  # type: ignore[arg-type]
    try:
        for line in iter_export_lines(path, max_total_bytes=zip_max_total_bytes, max_ratio=zip_max_ratio, notes=notes):
            writer.add_line(line.source, line.contract_id, line.line_number, line.text, line.raw)
    except (FileRefused, OSError, EOFError):
        return None
    if writer.transactions + writer.rollbacks == 0:
        return None
    return _ParsedFile(path, file_hash, writer, notes, path.stat().st_size)


def _prepare(path: Path, zip_max_total_bytes: int, zip_max_ratio: int) -> tuple[str, Any]:
    """Hash and parse one file ahead of time (in a worker process when there are many).
    Returns ``("missing", None)`` (taken by a concurrent run), ``("alone", None)`` (a zip or
    a large file, streamed by :func:`ingest_file`), ``("refused", hash)``, or
    ``("parsed", _ParsedFile)``."""
    try:
        if not path.exists():
            return "missing", None
        if not _groupable(path):
            return "alone", None
        file_hash = file_sha256(path)
        parsed = _parse_whole(path, file_hash, zip_max_total_bytes, zip_max_ratio)
    except FileNotFoundError:
        return "missing", None
    return ("refused", file_hash) if parsed is None else ("parsed", parsed)


#: Parse ahead in worker processes when a run has at least this many files (and the machine
#: more than one core): parsing a file and writing the previous group then overlap.
PARALLEL_MIN_FILES = 32
_PREFETCH = 8
#: Input bytes parsed ahead at most (beyond the first ``_PREFETCH`` files).
PREFETCH_BYTES = 96 * 1024**2


def _die_with_parent(parent: int) -> None:
    """Worker initialiser: end this worker when the run process is gone (``kill -9`` included)."""
    with contextlib.suppress(OSError, AttributeError):  # Linux: SIGKILL when the parent dies
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)

    def watch() -> None:  # other systems: look every second
        while os.getppid() == parent:
            time.sleep(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _prepared(files: list[Path], zip_max_total_bytes: int, zip_max_ratio: int) -> Iterator[tuple[Path, str, Any]]:
    """``(path, kind, value)`` of :func:`_prepare` for each file, in order. With many files,
    worker processes parse ahead: at least ``_PREFETCH`` files and up to ``PREFETCH_BYTES`` of
    input are in flight, enough to keep them busy while a whole group is written, and bounded,
    so memory stays flat however many files wait."""
    workers = min(3, (os.cpu_count() or 1) - 1)
    if len(files) < PARALLEL_MIN_FILES or workers < 1:
        for path in files:
            yield (path, *_prepare(path, zip_max_total_bytes, zip_max_ratio))
        return

    def size(path: Path) -> int:
        try:
            return path.stat().st_size
        except OSError:
            return 0

    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_die_with_parent, initargs=(os.getpid(),)
    ) as pool:
        window: deque = deque()
        in_flight = 0
        pending = iter(files)
        nxt: Path | None = next(pending, None)
        while nxt is not None or window:
            while nxt is not None and (len(window) < _PREFETCH or in_flight < PREFETCH_BYTES):
                nbytes = size(nxt)
                window.append((nxt, nbytes, pool.submit(_prepare, nxt, zip_max_total_bytes, zip_max_ratio)))
                in_flight += nbytes
                nxt = next(pending, None)
            path, nbytes, future = window.popleft()
            in_flight -= nbytes
            yield (path, *future.result())


def _open_jobs(engine: Engine, group: list[_ParsedFile]) -> None:
    """:func:`_open_job` for a whole group, in one transaction."""
    hashes = [p.file_hash for p in group]
    with engine.begin() as conn:
        existing = dict(
            conn.execute(
                select(FileProcessingJob.file_hash, FileProcessingJob.id).where(
                    FileProcessingJob.file_hash.in_(hashes), FileProcessingJob.status == "processing"
                )
            )
            .tuples()
            .all()
        )
        rows = []
        for p in group:
            if p.file_hash in existing:
                p.job_id, p.resumed = existing[p.file_hash], True
            else:
                p.job_id = new_uuid()
                rows.append(
                    {
                        "id": p.job_id,
                        "filename": p.path.name,
                        "status": "processing",
                        "details": "reading",
                        "transactions_processed": 0,
                        "rejected_lines": 0,
                        "file_hash": p.file_hash,
                        "stored_path": None,
                        "completed_at": None,
                        "started_at": utcnow(),
                    }
                )
        if rows:
            conn.execute(FileProcessingJob.__table__.insert(), rows)
    for p in group:
        for r in p.writer.rejected:
            r["job_id"] = p.job_id


def _write_group(
    group: list[_ParsedFile], duck: duckdb.DuckDBPyConnection, engine: Engine, folders: DropFolders
) -> list[FileOutcome]:
    """Write a group of parsed small files exactly as :func:`ingest_file` writes one: jobs
    opened, DuckDB committed (rows and per-file counts), then the operational database
    (rows, rejected lines, jobs, ledger) in one transaction, then the files moved."""
    if not group:
        return []
    _open_jobs(engine, group)
    duck.begin()
    try:
        inserted = raw_store.insert_transactions_by_file(duck, [r for p in group for r in p.writer.tx_rows])
        raw_store.insert_rollbacks(duck, [r for p in group for r in p.writer.rollback_rows])
        recorded = raw_store.recorded_files(duck, [p.file_hash for p in group])
        for p in group:
            if p.file_hash in recorded:
                p.writer.new_transactions = recorded[p.file_hash]
            elif p.resumed:
                p.writer.new_transactions = raw_store.count_from_file(duck, p.file_hash)
            else:
                p.writer.new_transactions = inserted.get(p.file_hash, 0)
        raw_store.record_files(duck, {p.file_hash: p.writer.new_transactions for p in group})
        change_log.record_ingested(
            duck,
            [p.file_hash for p in group],
            {r[1] for p in group for r in p.writer.tx_rows + p.writer.rollback_rows},
            [r[0] for p in group for r in p.writer.rollback_rows],
        )
        duck.commit()
    except BaseException:
        _rollback_quietly(duck)
        raise
    now = utcnow()
    with engine.begin() as ops:
        writer = _FileWriter(duck, ops, "", "", "")
        op_rows = [r for p in group for r in p.writer.op_rows]
        if op_rows:
            writer._ensure_constituencies({r["constituency_id"] for r in op_rows})
        insert_ignore(ops, Transaction.__table__, op_rows, ["tx_id"])
        insert_ignore(
            ops,
            RejectedRow.__table__,
            [r for p in group for r in p.writer.rejected],
            ["file_hash", "source", "line_number"],
        )
        jobs, ledger = [], []
        for p in group:
            p.target = _destination(folders.processed_dir, p.path, p.file_hash)
            jobs.append(
                {
                    "id": p.job_id,
                    "status": "completed",
                    "details": _completed_details(p.writer, p.notes),
                    "transactions_processed": p.writer.transactions,
                    "rejected_lines": p.writer.rejected_count,
                    "stored_path": str(p.target),
                    "completed_at": now,
                }
            )
            ledger.append(
                {
                    "content_hash": p.file_hash,
                    "filename": p.path.name,
                    "status": "completed",
                    "job_id": p.job_id,
                    "size_bytes": p.size,
                    "stored_path": str(p.target),
                    "recorded_at": now,
                }
            )
        update_by_key(
            ops,
            FileProcessingJob.__table__,
            jobs,
            ["id"],
            ["status", "details", "transactions_processed", "rejected_lines", "stored_path", "completed_at"],
        )
        insert_ignore(ops, FileLedgerEntry.__table__, ledger, ["content_hash"])
    outcomes = []
    for p in group:
        assert p.target is not None  # set for every file of the group above
        _move(p.path, p.target)
        w = p.writer
        log.info(
            "File %s: %d transactions (%d new), %d rollbacks, %d rejected lines -> %s",
            p.path.name,
            w.transactions,
            w.new_transactions,
            w.rollbacks,
            w.rejected_count,
            p.target,
        )
        outcomes.append(
            FileOutcome(
                p.path.name,
                "completed",
                p.job_id,
                w.transactions,
                w.new_transactions,
                w.rollbacks,
                w.rejected_count,
                "",
                str(p.target),
            )
        )
    return outcomes


def ingest_folder(
    files: list[Path],
    *,
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    folders: DropFolders,
    batch_size: int,
    zip_max_total_bytes: int,
    zip_max_ratio: int,
    progress: Callable[[str], None] | None = None,
    group_small_files: bool = False,
) -> IngestSummary:
    """Ingest ``files`` in name order, then flag rolled-back transactions.

    With ``group_small_files`` (what the pipeline does), small ``.csv`` files are parsed
    whole and written in groups of about ``batch_size`` lines, one commit per group; the
    figures, jobs and ledger are exactly those of :func:`ingest_file` run on each file in
    turn, which is what happens without it. A crash loses the uncommitted group; the next
    run redoes it."""
    summary = IngestSummary()
    total = len(files)
    group: list[_ParsedFile] = []
    group_lines = 0
    done = 0

    def report(outcome: FileOutcome) -> None:
        nonlocal done
        done += 1
        summary.outcomes.append(outcome)
        if progress and (done == total or done % 25 == 0 or outcome.status == "failed"):
            progress(
                f"[{done}/{total}] {outcome.filename}: {outcome.status}"
                + (f" ({outcome.reason})" if outcome.reason else "")
            )

    def write_group() -> None:
        nonlocal group, group_lines
        pending, group, group_lines = group, [], 0
        for outcome in _write_group(pending, duck, engine, folders):
            report(outcome)

    def one_by_one(path: Path) -> None:
        write_group()  # keep the name order of jobs and of "first file wins"
        report(
            ingest_file(
                path,
                duck=duck,
                engine=engine,
                folders=folders,
                batch_size=batch_size,
                zip_max_total_bytes=zip_max_total_bytes,
                zip_max_ratio=zip_max_ratio,
            )
        )

    if not group_small_files:
        for path in files:
            if not path.exists():  # taken by a concurrent run
                total -= 1
                continue
            one_by_one(path)
        sync_rollbacks(duck, engine)
        return summary

    for path, kind, value in _prepared(files, zip_max_total_bytes, zip_max_ratio):
        if kind == "missing" or not path.exists():  # taken by a concurrent run
            total -= 1
            continue
        if kind in ("alone", "refused"):
            one_by_one(path)  # streamed alone; a refused file gets its reason recorded and is quarantined
            continue
        parsed: _ParsedFile = value
        if any(p.file_hash == parsed.file_hash for p in group):
            one_by_one(path)  # the same content twice: the ledger will tell, once the first is written
            continue
        with engine.connect() as conn:
            ledger = (
                conn.execute(select(FileLedgerEntry).where(FileLedgerEntry.content_hash == parsed.file_hash))
                .mappings()
                .first()
            )
        if ledger is not None:
            write_group()
            report(_handle_known(path, dict(ledger), engine, folders, parsed.file_hash))
            continue
        group.append(parsed)
        group_lines += parsed.writer.pending()
        if group_lines >= batch_size or len(group) >= GROUP_MAX_FILES:
            write_group()
    write_group()
    sync_rollbacks(duck, engine)
    return summary
