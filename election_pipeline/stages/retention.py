"""Retention stage: the data retention policy (docs/data-model.md#retention), applied to both stores.

| data | kept | then |
|---|---|---|
| transactions (operational ``transactions`` and the DuckDB raw store) | until ``transactions_days`` (30) after the end of the constituency's election | removed; the constituency's published figures are frozen |
| hourly statistics | ``hourly_days`` (365) after their hour | removed, for constituencies whose transactions are already removed |
| file processing jobs (and the rejected lines they recorded) | ``file_jobs_days`` (90) after the job ended | removed; the file ledger keeps the content hash, so a file dropped again is still not counted twice |
| alerts, elections, constituencies, the file ledger | forever | |

A constituency with no election (a contract the reference data does not know) ends with
its last transaction. When its transactions go, a constituency is *retired*: the DuckDB
store keeps its hourly figures and totals (``retired_hourly``, ``retired_totals``), so the
hourly table, the constituency figures and the alerts do not change, and the data-quality
checks leave it out of their store-against-store comparisons. Anything younger than a
cut-off is never touched (the cut-off itself is kept: only strictly older data goes).

Every removal from the DuckDB store is written to its change log (in the same transaction),
so the stored figures and the checks look at the constituencies concerned again.

Every step is keyed and idempotent: a second run removes nothing more, and a run stopped
half-way is finished by the next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import duckdb
from sqlalchemy import Engine, delete, func, select, update

from election_pipeline.analytics import change_log, raw_store
from election_pipeline.analytics.counting_sql import LIVE_HOURLY_SQL, LIVE_TOTALS_SQL
from election_pipeline.db.bulk import chunks
from election_pipeline.db.models import (
    Constituency,
    Election,
    FileLedgerEntry,
    FileProcessingJob,
    HourlyStats,
    RejectedRow,
    Transaction,
    utcnow,
)
from election_pipeline.vocabulary import FileJobStatus

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RetentionPolicy:
    """How long each kind of data is kept, in days (``ELECTION_RETAIN_*`` settings)."""

    transactions_days: int = 30
    hourly_days: int = 365
    file_jobs_days: int = 90

    def __post_init__(self) -> None:
        for name in ("transactions_days", "hourly_days", "file_jobs_days"):
            if getattr(self, name) < 0:
                raise ValueError(f"retention period {name} must not be negative, got {getattr(self, name)}")


@dataclass
class RetentionReport:
    """What one application of the policy removed (and why some old data was kept)."""

    now: datetime
    cutoffs: dict[str, datetime]
    removed: dict[str, int] = field(default_factory=dict)
    retired_constituencies: list[str] = field(default_factory=list)
    kept: dict[str, int] = field(default_factory=dict)

    @property
    def total_removed(self) -> int:
        return sum(self.removed.values())

    def lines(self) -> list[str]:
        out = [f"{name}: {n} removed" for name, n in self.removed.items()]
        if self.retired_constituencies:
            out.append(f"constituencies retired (figures frozen): {', '.join(self.retired_constituencies)}")
        out += [f"kept on purpose: {name}: {n}" for name, n in self.kept.items() if n]
        return out


def constituencies_due(duck: duckdb.DuckDBPyConnection, engine: Engine, cutoff: datetime) -> list[str]:
    """Constituencies whose election ended before ``cutoff`` (no election: whose last
    transaction is before it), and which still hold transactions in either store."""
    with engine.connect() as conn:
        by_election = set(
            conn.execute(
                select(Constituency.id)
                .join(Election, Election.id == Constituency.election_id)
                .where(Election.end_date < cutoff)
            ).scalars()
        )
        no_election = set(conn.execute(select(Constituency.id).where(Constituency.election_id.is_(None))).scalars())
        ops_holding = set(conn.execute(select(Transaction.constituency_id).distinct()).scalars())
    last_seen = dict(duck.execute("SELECT constituency_id, max(ts) FROM raw_transactions GROUP BY 1").fetchall())
    unknown_done = {c for c in no_election if c in last_seen and last_seen[c] < cutoff}
    # An unknown contract whose raw rows are gone already but whose operational rows stayed
    # (a run stopped half-way): its end is its last operational transaction.
    with engine.connect() as conn:
        ops_last = (
            dict(
                conn.execute(
                    select(Transaction.constituency_id, func.max(Transaction.timestamp))
                    .where(Transaction.constituency_id.in_(no_election - set(last_seen)))
                    .group_by(Transaction.constituency_id)
                )
                .tuples()
                .all()
            )
            if no_election - set(last_seen)
            else {}
        )
    unknown_done |= {c for c, ts in ops_last.items() if ts < cutoff}
    holding = set(last_seen) | ops_holding
    return sorted((by_election | unknown_done) & holding)


def _retire_in_duckdb(duck: duckdb.DuckDBPyConnection, ids: list[str], now: datetime) -> int:
    """Freeze the figures of ``ids`` and remove their raw rows; returns raw rows removed."""
    if not ids:
        return 0
    with raw_store.transaction(duck):
        duck.execute("CREATE OR REPLACE TEMP TABLE _retiring (constituency_id VARCHAR PRIMARY KEY)")
        duck.executemany("INSERT INTO _retiring VALUES (?)", [(c,) for c in ids])
        already = "(SELECT constituency_id FROM retired_constituencies)"
        source = (
            "(SELECT * FROM standing_transactions WHERE constituency_id IN (SELECT constituency_id FROM _retiring) "
            f"AND constituency_id NOT IN {already})"
        )
        duck.execute(f"INSERT INTO retired_hourly {LIVE_HOURLY_SQL.format(source=source)}")
        duck.execute(f"INSERT INTO retired_totals {LIVE_TOTALS_SQL.format(source=source)}")
        counts = dict(
            duck.execute(
                "SELECT constituency_id, count(*) FROM raw_transactions "
                "WHERE constituency_id IN (SELECT constituency_id FROM _retiring) GROUP BY 1"
            ).fetchall()
        )
        duck.executemany(
            "INSERT INTO retired_constituencies VALUES (?, ?, ?) ON CONFLICT (constituency_id) DO UPDATE "
            "SET transactions_removed = retired_constituencies.transactions_removed + excluded.transactions_removed",
            [(c, now, int(counts.get(c, 0))) for c in ids],
        )
        # Constituencies whose figures change: the retired ones, and those of transactions
        # that a rollback line of a retired contract cancelled (they stand again).
        touched = set(ids) | {
            r[0]
            for r in duck.execute(
                "SELECT t.constituency_id FROM raw_transactions t JOIN raw_rollbacks r USING (tx_id) "
                "WHERE r.constituency_id IN (SELECT constituency_id FROM _retiring)"
            ).fetchall()
        }
        duck.execute(
            "DELETE FROM raw_rollbacks WHERE tx_id IN (SELECT tx_id FROM raw_transactions "
            "WHERE constituency_id IN (SELECT constituency_id FROM _retiring)) "
            "OR constituency_id IN (SELECT constituency_id FROM _retiring)"
        )
        duck.execute("DELETE FROM raw_transactions WHERE constituency_id IN (SELECT constituency_id FROM _retiring)")
        duck.execute("DROP TABLE _retiring")
        change_log.record_changes(duck, touched, "retention")
    return int(sum(counts.values()))


def apply_retention(
    duck: duckdb.DuckDBPyConnection, engine: Engine, policy: RetentionPolicy | None = None, now: datetime | None = None
) -> RetentionReport:
    """Apply ``policy`` as of ``now`` (naive UTC; default: the current time)."""
    policy = policy or RetentionPolicy()
    now = now or utcnow()
    tx_cutoff = now - timedelta(days=policy.transactions_days)
    hourly_cutoff = now - timedelta(days=policy.hourly_days)
    jobs_cutoff = now - timedelta(days=policy.file_jobs_days)
    report = RetentionReport(
        now=now,
        cutoffs={
            "elections_ended_before": tx_cutoff,
            "hours_before": hourly_cutoff,
            "file_jobs_ended_before": jobs_cutoff,
        },
    )

    # 1. Transactions of finished elections: DuckDB first (figures frozen), then the
    #    operational rows. A stop in between is finished by the next run.
    due = constituencies_due(duck, engine, tx_cutoff)
    report.removed["raw_transactions (DuckDB)"] = _retire_in_duckdb(duck, due, now)
    removed_tx = 0
    with engine.begin() as conn:
        for part in chunks(due, 200):
            removed_tx += (
                conn.execute(delete(Transaction.__table__).where(Transaction.constituency_id.in_(list(part)))).rowcount
                or 0
            )
    report.removed["transactions"] = removed_tx
    report.retired_constituencies = due

    # 2. Hourly statistics older than a year, of constituencies already retired (the hours of
    #    a constituency whose transactions are still kept would be recomputed from them).
    retired = {r[0] for r in duck.execute("SELECT constituency_id FROM retired_constituencies").fetchall()}
    with engine.begin() as conn:
        old_hours = HourlyStats.hour < hourly_cutoff
        report.kept["hourly rows older than the period, constituency still holding transactions"] = int(
            conn.execute(
                select(func.count()).where(old_hours, HourlyStats.constituency_id.not_in(sorted(retired)))
            ).scalar_one()
            if retired
            else conn.execute(select(func.count()).where(old_hours)).scalar_one()
        )
        removed_hours = 0
        for part in chunks(sorted(retired), 200):
            removed_hours += (
                conn.execute(
                    delete(HourlyStats.__table__).where(old_hours, HourlyStats.constituency_id.in_(list(part)))
                ).rowcount
                or 0
            )
        report.removed["hourly_stats"] = removed_hours
    with raw_store.transaction(duck):
        change_log.record_changes(
            duck,
            [
                r[0]
                for r in duck.execute(
                    "SELECT DISTINCT constituency_id FROM retired_hourly WHERE hour < ?", [hourly_cutoff]
                ).fetchall()
            ],
            "retention",
        )
        duck.execute("DELETE FROM retired_hourly WHERE hour < ?", [hourly_cutoff])

    # 3. File processing jobs (finished ones) and the rejected lines they recorded.
    ended = func.coalesce(FileProcessingJob.completed_at, FileProcessingJob.started_at)
    with engine.begin() as conn:
        old_jobs = list(
            conn.execute(
                select(FileProcessingJob.id).where(
                    FileProcessingJob.status != FileJobStatus.PROCESSING, ended < jobs_cutoff
                )
            ).scalars()
        )
        removed_rejected = removed_jobs = 0
        for part in chunks(old_jobs, 500):
            ids = list(part)
            conn.execute(update(FileLedgerEntry.__table__).where(FileLedgerEntry.job_id.in_(ids)).values(job_id=None))
            removed_rejected += (
                conn.execute(delete(RejectedRow.__table__).where(RejectedRow.job_id.in_(ids))).rowcount or 0
            )
            removed_jobs += (
                conn.execute(delete(FileProcessingJob.__table__).where(FileProcessingJob.id.in_(ids))).rowcount or 0
            )
        report.kept["unfinished file jobs older than the period"] = int(
            conn.execute(
                select(func.count()).where(FileProcessingJob.status == FileJobStatus.PROCESSING, ended < jobs_cutoff)
            ).scalar_one()
        )
    report.removed["file_processing_jobs"] = removed_jobs
    report.removed["rejected_rows"] = removed_rejected

    for line in report.lines():
        log.info("Retention: %s", line)
    return report
