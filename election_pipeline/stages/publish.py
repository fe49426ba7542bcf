"""Publish step: the DuckDB raw store -> the operational database, one way.

The ingest writes DuckDB only, every row under the change-log number (``seq``) of the group
that wrote it. Publishing copies what was written after the last published number:

* :func:`publish_file_records`: constituencies first seen in the exports (recorded as
  unknown contracts; only those with a transaction of their own), file jobs, the file ledger
  and rejected lines. Small; runs right after the ingest, in the ``raw_transactions`` step.
* :func:`publish_transactions`: one ``transactions`` row per stored transaction (``COPY`` on
  PostgreSQL, one ``executemany`` per chunk on SQLite), and the ``is_rolled_back`` /
  ``in_conflict`` flags set by later rollback lines and conflicting copies. Large; it runs as
  its own asset, after the alerts.

Each reader keeps its mark (``change_marks``: ``publish:files``, ``publish:transactions``)
and moves it only once everything up to it is committed in the operational database. Every
write is keyed (inserts skip existing keys, flag updates are idempotent), so a kill at any
point followed by a re-run publishes the same rows once.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import duckdb
from sqlalchemy import Connection, Engine, select, update

from election_pipeline.analytics import change_log
from election_pipeline.db.bulk import JsonText, chunks, insert_ignore
from election_pipeline.db.models import (
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    RejectedRow,
    Transaction,
    utcnow,
)
from election_pipeline.db.models.base import new_ordered_uuid

log = logging.getLogger(__name__)

FILES_MARK = "publish:files"
TRANSACTIONS_MARK = "publish:transactions"
#: Transactions written to the operational database per commit.
TRANSACTIONS_CHUNK = 50_000


@dataclass
class PublishSummary:
    constituencies: int = 0
    jobs: int = 0
    rejected_rows: int = 0
    transactions: int = 0
    rolled_back: int = 0
    in_conflict: int = 0
    seq: int = 0


def _range(duck: duckdb.DuckDBPyConnection, mark_name: str) -> tuple[int, int]:
    """(last published seq, last seq): rows with ``mark < seq <= upto`` are to publish (after
    the change log caught up: the rows of an ingest stopped between two parts of a large file
    are never published)."""
    change_log.ensure_change_log(duck)
    mark = change_log.mark_of(duck, mark_name) or 0
    return mark, change_log.catch_up(duck)


def _dicts(duck: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    result = duck.execute(sql, params)
    names = [d[0] for d in result.description]
    return [dict(zip(names, row, strict=True)) for row in result.fetchall()]


def _unknown_constituency(cid: str, now: Any, workspace: str | None = None) -> dict[str, Any]:
    return {
        "id": cid,
        "election_id": None,
        "workspace": workspace,
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


def _ensure_constituencies(conn: Connection, ids: set[str], workspace: str | None = None) -> int:
    """Record the contracts the reference data does not know as unknown constituencies, of no
    election, counted by ``workspace`` (an election's, when they arrived in its own drop
    folder; None: the shared one)."""
    if not ids:
        return 0
    existing: set[str] = set()
    for part in chunks(sorted(ids), 500):
        existing |= set(conn.execute(select(Constituency.id).where(Constituency.id.in_(list(part)))).scalars())
    missing = sorted(ids - existing)
    if missing:
        log.warning("Contracts not in the reference data, recorded as unknown: %s", ", ".join(missing))
        now = utcnow()
        rows = [_unknown_constituency(c, now, workspace) for c in missing]
        insert_ignore(conn, Constituency.__table__, rows, ["id"])
    return len(missing)


def publish_file_records(
    duck: duckdb.DuckDBPyConnection, engine: Engine, election: str | None = None
) -> PublishSummary:
    """Publish constituencies, file jobs, ledger entries and rejected lines written since the
    last publish (see the module docstring); unknown contracts are recorded as constituencies
    of no election counted by ``election``'s workspace (None: the shared one)."""
    mark, upto = _range(duck, FILES_MARK)
    summary = PublishSummary(seq=upto)
    if upto <= mark:
        return summary
    window = [mark, upto]
    contracts = {
        r[0]
        for r in duck.execute(
            "SELECT DISTINCT constituency_id FROM raw_transactions WHERE seq > ? AND seq <= ?", window
        ).fetchall()
    }
    jobs = _dicts(
        duck, "SELECT * EXCLUDE (seq, moved) FROM file_jobs WHERE seq > ? AND seq <= ? ORDER BY started_at", window
    )
    ledger = _dicts(duck, "SELECT * EXCLUDE (seq) FROM file_ledger WHERE seq > ? AND seq <= ?", window)
    rejected = _dicts(duck, "SELECT * EXCLUDE (seq) FROM raw_rejected WHERE seq > ? AND seq <= ?", window)
    with engine.begin() as conn:
        summary.constituencies = _ensure_constituencies(conn, contracts, election)
        insert_ignore(conn, FileProcessingJob.__table__, jobs, ["id"])
        insert_ignore(conn, FileLedgerEntry.__table__, ledger, ["content_hash"])
        for part in chunks(rejected):
            insert_ignore(conn, RejectedRow.__table__, list(part), ["file_hash", "source", "line_number"])
    summary.jobs, summary.rejected_rows = len(jobs), len(rejected)
    change_log.set_mark(duck, FILES_MARK, upto)
    return summary


_TRANSACTIONS_SQL = """
SELECT t.tx_id, t.constituency_id, t.ts AS timestamp, t.operation AS type, nullif(t.sender, '') AS sender,
       t.rejected AS is_rejected,
       EXISTS (SELECT 1 FROM raw_rollbacks r WHERE r.tx_id = t.tx_id) AS is_rolled_back,
       EXISTS (SELECT 1 FROM raw_conflicts c WHERE c.tx_id = t.tx_id) AS in_conflict,
       t.bulletins, left(t.source, 512) AS source_file, t.block_height,
       CAST(json_object('type', t.tx_type, 'version', t.version, 'ts', epoch_ms(t.ts), 'fee', t.fee,
                        'feeAssetId', t.fee_asset, 'failKey', t.fail_key,
                        'line', json_object('file', t.source, 'number', t.line_number)) AS VARCHAR) AS raw_data,
       CAST(json_object('operation', t.operation, 'rejected', t.rejected, 'bulletins', t.bulletins,
                        'voters_added', t.voters_added, 'line_number', t.line_number) AS VARCHAR) AS operation_data
FROM raw_transactions t
WHERE t.seq > ? AND t.seq <= ?
ORDER BY t.seq, t.file_hash, t.source, t.line_number
"""


def publish_transactions(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    progress: Callable[[str], None] | None = None,
    election: str | None = None,
) -> PublishSummary:
    """Publish the transactions stored since the last publish, then the rollback and conflict
    flags (see the module docstring). Commits every :data:`TRANSACTIONS_CHUNK` rows."""
    mark, upto = _range(duck, TRANSACTIONS_MARK)
    summary = PublishSummary(seq=upto)
    if upto <= mark:
        return summary
    window = [mark, upto]
    contracts = {
        r[0]
        for r in duck.execute(
            "SELECT DISTINCT constituency_id FROM raw_transactions WHERE seq > ? AND seq <= ?", window
        ).fetchall()
    }
    with engine.begin() as conn:
        _ensure_constituencies(conn, contracts, election)
    result = duck.execute(_TRANSACTIONS_SQL, window)
    names = [d[0] for d in result.description]
    while rows := result.fetchmany(TRANSACTIONS_CHUNK):
        now = utcnow()
        batch = []
        for row in rows:
            r = dict(zip(names, row, strict=True))
            r["id"] = new_ordered_uuid()
            r["raw_data"] = JsonText(r["raw_data"])
            r["operation_data"] = JsonText(r["operation_data"])
            r["created_at"] = r["updated_at"] = now
            batch.append(r)
        with engine.begin() as conn:
            insert_ignore(conn, Transaction.__table__, batch, ["tx_id"])
        summary.transactions += len(batch)
        if progress:
            progress(f"transactions published: {summary.transactions:,}")
    summary.rolled_back = _set_flag(
        duck,
        engine,
        "SELECT tx_id FROM raw_rollbacks WHERE seq > ? AND seq <= ?",
        window,
        Transaction.is_rolled_back,
    )
    summary.in_conflict = _set_flag(
        duck,
        engine,
        "SELECT DISTINCT tx_id FROM raw_conflicts WHERE seq > ? AND seq <= ?",
        window,
        Transaction.in_conflict,
    )
    change_log.set_mark(duck, TRANSACTIONS_MARK, upto)
    return summary


def _set_flag(duck: duckdb.DuckDBPyConnection, engine: Engine, sql: str, window: list[int], column: Any) -> int:
    """Set a boolean column of ``transactions`` for the ids the query returns."""
    ids = [r[0] for r in duck.execute(sql, window).fetchall()]
    changed = 0
    with engine.begin() as conn:
        for part in chunks(ids, 500):
            result = conn.execute(
                update(Transaction.__table__)
                .where(Transaction.tx_id.in_(list(part)), column.is_(False))
                .values({column.key: True, "updated_at": utcnow()})
            )
            changed += result.rowcount or 0
    return changed


def publish_all(duck: duckdb.DuckDBPyConnection, engine: Engine) -> tuple[PublishSummary, PublishSummary]:
    """Both publish steps, in order (what a whole run does)."""
    return publish_file_records(duck, engine), publish_transactions(duck, engine)
