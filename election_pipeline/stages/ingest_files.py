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
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
from sqlalchemy import Engine, select, update

from election_pipeline.analytics import raw_store
from election_pipeline.db.bulk import chunks, insert_ignore
from election_pipeline.db.models import (
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    RejectedRow,
    Transaction,
    utcnow,
)
from election_pipeline.db.models.base import new_uuid
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
    def of(cls, input_dir: str | Path, processed_dir: str | Path, quarantine_dir: str | Path) -> "DropFolders":
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
        self.transactions = 0
        self.new_transactions = 0
        self.rollbacks = 0
        self.rejected_count = 0
        self.first_reason = ""

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
        now = utcnow()
        self.op_rows.append(
            {
                "id": new_uuid(),
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
                "raw_data": tx.raw_data,
                "operation_data": {
                    "operation": tx.operation,
                    "rejected": tx.rejected,
                    "bulletins": tx.bulletins,
                    "voters_added": tx.voters_added,
                    "line_number": line_number,
                },
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
        raw_store.insert_transactions(self.duck, self.tx_rows)
        raw_store.insert_rollbacks(self.duck, self.rollback_rows)
        insert_ignore(self.ops, Transaction.__table__, self.op_rows, ["tx_id"])
        insert_ignore(
            self.ops, RejectedRow.__table__, self.rejected, ["file_hash", "source", "line_number"]
        )
        self.tx_rows, self.rollback_rows, self.op_rows, self.rejected = [], [], [], []

    def _ensure_constituencies(self, ids: set[str]) -> None:
        missing = ids - self.known_constituencies
        if not missing:
            return
        existing = set(
            self.ops.execute(select(Constituency.id).where(Constituency.id.in_(missing))).scalars()
        )
        now = utcnow()
        rows = [
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
            log.warning("Contracts not in the reference data, recorded as unknown: %s", ", ".join(r["id"] for r in rows))
        insert_ignore(self.ops, Constituency.__table__, rows, ["id"])
        self.known_constituencies |= missing


def _rollback_quietly(duck: duckdb.DuckDBPyConnection) -> None:
    try:
        duck.rollback()
    except duckdb.Error:
        pass  # already committed or rolled back


def _open_job(engine: Engine, path: Path, file_hash: str) -> str:
    """The job of this file content: a ``processing`` one left by a crashed run, or a new one."""
    with engine.begin() as conn:
        existing = conn.execute(
            select(FileProcessingJob.id).where(
                FileProcessingJob.file_hash == file_hash, FileProcessingJob.status == "processing"
            )
        ).scalar()
        if existing:
            return existing
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
        return job_id


def _finish(conn, job_id: str, file_hash: str, path: Path, status: str, details: str, target: Path,
            transactions: int, rejected: int) -> None:
    now = utcnow()
    conn.execute(
        update(FileProcessingJob.__table__)
        .where(FileProcessingJob.id == job_id)
        .values(status=status, details=details, transactions_processed=transactions,
                rejected_lines=rejected, stored_path=str(target), completed_at=now)
    )
    insert_ignore(
        conn,
        FileLedgerEntry.__table__,
        [{"content_hash": file_hash, "filename": path.name, "status": status, "job_id": job_id,
          "size_bytes": path.stat().st_size, "stored_path": str(target), "recorded_at": now}],
        ["content_hash"],
    )


def ingest_file(
    path: Path,
    *,
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    folders: DropFolders,
    batch_size: int = 20_000,
    zip_max_total_bytes: int = 4 * 1024**3,
    zip_max_ratio: int = 200,
) -> FileOutcome:
    """Process one file completely (see the module docstring). Never raises for bad input."""
    file_hash = file_sha256(path)
    with engine.connect() as conn:
        ledger = conn.execute(
            select(FileLedgerEntry).where(FileLedgerEntry.content_hash == file_hash)
        ).mappings().first()
    if ledger is not None:
        return _handle_known(path, dict(ledger), engine, folders, file_hash)

    job_id = _open_job(engine, path, file_hash)
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
                # Attributed by content hash, so a re-run after a crash reports the same figure.
                writer.new_transactions = raw_store.count_from_file(duck, file_hash)
                duck.commit()
                target = _destination(folders.processed_dir, path, file_hash)
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
                _finish(ops, job_id, file_hash, path, "completed", "; ".join(parts), target,
                        writer.transactions, writer.rejected_count)

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
        path.name, writer.transactions, writer.new_transactions, writer.rollbacks, writer.rejected_count, target,
    )
    return FileOutcome(path.name, "completed", job_id, writer.transactions, writer.new_transactions,
                       writer.rollbacks, writer.rejected_count, "", str(target))


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
            out.append({"id": new_uuid(), "file_hash": file_hash, "filename": path.name, "source": line.source,
                        "line_number": line.line_number, "reason": reason, "raw_line": line.raw,
                        "job_id": job_id, "created_at": utcnow()})
    except FileRefused:
        pass
    return out


def _handle_known(path: Path, ledger: dict[str, Any], engine: Engine, folders: DropFolders, file_hash: str) -> FileOutcome:
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
                id=job_id, filename=path.name, status="failed" if failed else "completed",
                details=reason, transactions_processed=0, rejected_lines=0, file_hash=file_hash,
                stored_path=str(target), started_at=now, completed_at=now,
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


def ingest_folder(
    files: list[Path],
    *,
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    folders: DropFolders,
    batch_size: int = 20_000,
    zip_max_total_bytes: int = 4 * 1024**3,
    zip_max_ratio: int = 200,
    progress: Callable[[str], None] | None = None,
) -> IngestSummary:
    """Ingest ``files`` one after the other, then flag rolled-back transactions."""
    summary = IngestSummary()
    total = len(files)
    for n, path in enumerate(files, start=1):
        if not path.exists():  # taken by a concurrent run
            continue
        outcome = ingest_file(
            path, duck=duck, engine=engine, folders=folders, batch_size=batch_size,
            zip_max_total_bytes=zip_max_total_bytes, zip_max_ratio=zip_max_ratio,
        )
        summary.outcomes.append(outcome)
        if progress and (n == total or n % 25 == 0 or outcome.status == "failed"):
            progress(f"[{n}/{total}] {outcome.filename}: {outcome.status}"
                     + (f" ({outcome.reason})" if outcome.reason else ""))
    sync_rollbacks(duck, engine)
    return summary
