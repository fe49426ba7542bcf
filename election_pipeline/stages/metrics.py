"""Constituency-metrics stage: totals, participation, detection and the anomaly score.

Writes onto ``constituencies`` the whole-election figures (bulletins issued, distinct
voters, revotes, transactions, rejected transactions, participation = voters / registered
× 100, registered voters and their source, anomaly score) and onto ``hourly_stats`` the
``anomaly_count`` of every hour. Returns the detection findings for the alerts stage.

Detection runs at an instant ``now`` (the current UTC time unless given), reads each
election's window and time zone from the ``elections`` table, and attaches to every
finding up to 20 transaction ids from the raw store as evidence. A transaction id stored
with one content and seen again with another (``raw_conflicts``) is handed to the
``conflicting_transaction`` rule with every copy (:func:`conflicting_copies`), on every run
while it stands.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

import duckdb
import pandas as pd
from sqlalchemy import Engine, func, select, update

from election_pipeline.analytics import raw_store
from election_pipeline.analytics.aggregation import constituency_totals
from election_pipeline.analytics.figure_cache import refresh
from election_pipeline.analytics.raw_store import stored_with_ids
from election_pipeline.db.bulk import update_by_key
from election_pipeline.db.models import Constituency, Election, HourlyStats, utcnow
from election_pipeline.detection import rules
from election_pipeline.detection.conflicts import CONFLICT_COLUMNS
from election_pipeline.detection.context import constituency_windows
from election_pipeline.detection.findings import Finding
from election_pipeline.detection.score import anomaly_counts, anomaly_scores
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.workspaces import EVERYTHING, Scope

from .hourly import compute_hourly, in_scope, load_constituencies, participation, registered_voters

CONSTITUENCY_FIGURES = [
    "bulletins_issued",
    "votes_cast",
    "revote_count",
    "transaction_count",
    "rejected_count",
    "participation_rate",
    "anomaly_score",
    "registered_voters",
    "registered_voters_source",
    "last_update_time",
]


@dataclass
class MetricsSummary:
    frame: pd.DataFrame
    findings: list[Finding] = field(default_factory=list)
    updated: int = 0


def detect(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    totals: pd.DataFrame,
    thresholds: DetectionThresholds,
    *,
    elections: pd.DataFrame | None = None,
    late: pd.DataFrame | None = None,
    conflicts: pd.DataFrame | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Run every rule (:func:`election_pipeline.detection.rules.run_rules`) at ``now``
    (default: the current UTC time). ``constituencies`` needs ``registered`` (see
    :func:`registered_voters`); ``elections`` gives windows and time zones; ``conflicts``
    the copies of conflicting transaction ids (:func:`conflicting_copies`)."""
    return rules.run_rules(
        hourly,
        constituencies,
        totals,
        thresholds,
        elections=elections,
        late=late,
        conflicts=conflicts,
        now=now,
    )


def load_elections(engine: Engine) -> pd.DataFrame:
    """``id, start_date, end_date, timezone`` of every election (naive UTC dates)."""
    with engine.connect() as conn:
        rows = conn.execute(select(Election.id, Election.start_date, Election.end_date, Election.timezone)).all()
    return pd.DataFrame(rows, columns=["id", "start_date", "end_date", "timezone"])


#: At most this many candidate transactions per constituency are read for the window rules.
LATE_CANDIDATES_PER_CONSTITUENCY = 5000

_LATE_SQL = """
WITH scoped AS (
    SELECT * FROM standing_transactions WHERE constituency_id IN (SELECT constituency_id FROM _late_scope)
),
finish AS (
    SELECT constituency_id, max(ts) AS finished FROM scoped
    WHERE operation = 'finishVoting' AND NOT rejected GROUP BY constituency_id
),
candidates AS (
    SELECT s.constituency_id, s.tx_id, s.ts, s.operation, s.rejected
    FROM scoped s
    LEFT JOIN finish f ON f.constituency_id = s.constituency_id
    LEFT JOIN detection_windows w ON w.constituency_id = s.constituency_id
    WHERE s.operation IN ('vote', 'blindSigIssue') AND NOT s.rejected
      AND ((f.finished IS NOT NULL AND s.ts >= f.finished)
           OR (w.start_utc IS NOT NULL AND (s.ts < w.start_utc OR s.ts >= w.end_utc)))
)
SELECT * FROM candidates
QUALIFY row_number() OVER (PARTITION BY constituency_id ORDER BY ts, tx_id) <= ?
ORDER BY constituency_id, ts, tx_id
"""


def late_transactions(
    duck: duckdb.DuckDBPyConnection, constituencies: pd.DataFrame, elections: pd.DataFrame
) -> pd.DataFrame:
    """Accepted vote/bulletin transactions at or after their contract's ``finishVoting``, or
    outside their election's window: the candidates ``vote_after_close`` and
    ``outside_voting_window`` judge (at most 5000 per constituency, oldest first).

    Kept per constituency in the raw store (``cached_late``) with the window they were
    selected for; only constituencies whose transactions changed (see
    :mod:`election_pipeline.analytics.figure_cache`) or whose window changed are read again."""
    refresh(duck)
    windows = constituency_windows(constituencies, elections)
    frame = pd.DataFrame(
        [(cid, w.start, w.end) for cid, w in windows.items()],
        columns=["constituency_id", "start_utc", "end_utc"],
    )
    if frame.empty:
        frame = pd.DataFrame(
            {
                "constituency_id": pd.Series(dtype=str),
                "start_utc": pd.Series(dtype="datetime64[us]"),
                "end_utc": pd.Series(dtype="datetime64[us]"),
            }
        )
    duck.register("detection_windows", frame)
    try:
        with raw_store.transaction(duck):
            # Constituencies to (re)select: those holding transactions or a window, whose
            # candidates are missing or were selected for another window.
            duck.execute(
                """
                CREATE OR REPLACE TEMP TABLE _late_scope AS
                WITH wanted AS (
                    SELECT c.constituency_id, w.start_utc, w.end_utc
                    FROM (SELECT constituency_id FROM cached_totals UNION SELECT constituency_id FROM detection_windows) c
                    LEFT JOIN detection_windows w USING (constituency_id)
                )
                SELECT wanted.* FROM wanted LEFT JOIN cached_late_windows k USING (constituency_id)
                WHERE k.constituency_id IS NULL
                   OR k.start_utc IS DISTINCT FROM wanted.start_utc OR k.end_utc IS DISTINCT FROM wanted.end_utc
                """
            )
            for table in ("cached_late", "cached_late_windows"):
                duck.execute(f"DELETE FROM {table} WHERE constituency_id IN (SELECT constituency_id FROM _late_scope)")
            duck.execute("INSERT INTO cached_late_windows SELECT constituency_id, start_utc, end_utc FROM _late_scope")
            duck.execute(
                f"INSERT INTO cached_late SELECT constituency_id, tx_id, ts, operation, rejected FROM ({_LATE_SQL})",
                [LATE_CANDIDATES_PER_CONSTITUENCY],
            )
            duck.execute("DROP TABLE _late_scope")
    finally:
        duck.unregister("detection_windows")
    return duck.execute("SELECT * FROM cached_late ORDER BY constituency_id, ts, tx_id").df()


#: The content and origin columns a copy has in both ``raw_transactions`` and ``raw_conflicts``.
_COPY_COLUMNS = [c for c in CONFLICT_COLUMNS if c not in ("tx_id", "stored")]

_CONFLICT_CACHE_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS cached_conflict_stored AS
    SELECT tx_id, {", ".join(_COPY_COLUMNS)} FROM raw_transactions LIMIT 0
"""


def conflicting_copies(duck: duckdb.DuckDBPyConnection, constituency_ids: Iterable[str]) -> pd.DataFrame:
    """Every copy of each transaction id of ``raw_conflicts`` that concerns one of
    ``constituency_ids`` (its stored copy or a differing copy is of that constituency): the
    stored copy (``stored`` true) and each differing copy, in the columns of
    :data:`election_pipeline.detection.conflicts.CONFLICT_COLUMNS`.

    All of them are read on every run, whatever changed, so that the alert stays present
    while the conflict stands (``raw_conflicts`` holds only the differing copies). The stored
    copy of an id is looked up in ``raw_transactions`` once, on the first run that sees the
    id, and kept in ``cached_conflict_stored`` (an id whose stored copy is not found is looked
    up again on the next run): a run with no new conflict does not read the raw store, and
    the evidence survives the retention job removing the constituency's transactions."""
    duck.execute(_CONFLICT_CACHE_SCHEMA)
    duck.execute("DELETE FROM cached_conflict_stored WHERE tx_id NOT IN (SELECT tx_id FROM raw_conflicts)")
    missing = [
        r[0]
        for r in duck.execute(
            "SELECT DISTINCT tx_id FROM raw_conflicts WHERE tx_id NOT IN (SELECT tx_id FROM cached_conflict_stored)"
        ).fetchall()
    ]
    if missing:  # only then is the raw store read
        duck.register("_conflict_lookup", pd.DataFrame({"tx_id": pd.Series(missing, dtype=str)}))
        try:
            # tx_key narrows the look-up to a few candidate rows; comparing the ids makes it exact.
            duck.execute(
                f"INSERT INTO cached_conflict_stored SELECT tx_id, {', '.join(_COPY_COLUMNS)} FROM raw_transactions "
                "WHERE tx_key IN (SELECT md5_number(tx_id) FROM _conflict_lookup) "
                "AND tx_id IN (SELECT tx_id FROM _conflict_lookup) "
                "QUALIFY row_number() OVER (PARTITION BY tx_id ORDER BY seq NULLS LAST, source, line_number) = 1"
            )
        finally:
            duck.unregister("_conflict_lookup")
    scope = pd.DataFrame({"constituency_id": pd.Series([str(c) for c in constituency_ids], dtype=str)})
    columns = ", ".join(_COPY_COLUMNS)
    duck.register("_conflict_scope", scope)
    try:
        frame = duck.execute(
            f"""
            WITH copies AS (
                SELECT tx_id, TRUE AS stored, {columns} FROM cached_conflict_stored
                UNION ALL
                SELECT tx_id, FALSE AS stored, {columns} FROM raw_conflicts
            )
            SELECT * FROM copies
            WHERE tx_id IN (
                SELECT tx_id FROM copies WHERE constituency_id IN (SELECT constituency_id FROM _conflict_scope)
            )
            ORDER BY tx_id, stored DESC, seq NULLS LAST, source, line_number, file_hash
            """
        ).df()
    finally:
        duck.unregister("_conflict_scope")
    return frame[CONFLICT_COLUMNS]


_EVIDENCE_FILTERS = {
    "vote": "operation = 'vote' AND NOT rejected",
    "bulletin": "operation = 'blindSigIssue' AND NOT rejected",
    "rejected": "rejected",
    "any": "TRUE",
}


def evidence_for(duck: duckdb.DuckDBPyConnection, finding: Finding, limit: int = 20) -> list[str]:
    """Up to ``limit`` standing transaction ids behind ``finding`` (see
    :data:`election_pipeline.detection.findings.EVIDENCE_KINDS`), oldest first."""
    kind = finding.evidence_kind
    if kind is None:
        return []
    cid = finding.constituency_id
    start = finding.window_start
    end = finding.window_end
    if kind == "around":
        before = duck.execute(
            "SELECT tx_id FROM standing_transactions WHERE constituency_id = ? AND ts < ? "
            "ORDER BY ts DESC, tx_id DESC LIMIT 1",
            [cid, start],
        ).fetchall()
        after = duck.execute(
            "SELECT tx_id FROM standing_transactions WHERE constituency_id = ? AND ts >= ? ORDER BY ts, tx_id LIMIT 1",
            [cid, end],
        ).fetchall()
        return [r[0] for r in before + after]
    clauses = ["constituency_id = ?"]
    params: list[str | datetime] = [cid]
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    if kind == "revote":
        sql = (
            "WITH v AS (SELECT tx_id, ts, row_number() OVER (PARTITION BY sender ORDER BY ts, tx_id) AS nth "
            "FROM standing_transactions WHERE constituency_id = ? AND operation = 'vote' AND NOT rejected) "
            f"SELECT tx_id FROM v WHERE nth > 1 {''.join(' AND ' + c for c in clauses[1:])} "
            f"ORDER BY ts, tx_id LIMIT {int(limit)}"
        )
        return [r[0] for r in duck.execute(sql, params).fetchall()]
    clauses.append(_EVIDENCE_FILTERS[kind])
    sql = f"SELECT tx_id FROM standing_transactions WHERE {' AND '.join(clauses)} ORDER BY ts, tx_id LIMIT {int(limit)}"
    return [r[0] for r in duck.execute(sql, params).fetchall()]


def attach_evidence(duck: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    """Give every finding without evidence its transaction ids (:func:`evidence_for`). They
    are kept in the raw store (``cached_evidence``) until the constituency changes, so a run
    reads transactions only for findings that are new or of a changed constituency."""
    wanted = [f for f in findings if not f.evidence_tx_ids and f.evidence_kind is not None]
    if not wanted:
        return
    cached = {
        (c, k, _key_time(s), _key_time(e)): list(ids)
        for c, k, s, e, ids in duck.execute(
            "SELECT constituency_id, kind, window_start, window_end, tx_ids FROM cached_evidence"
        ).fetchall()
    }
    new_rows = []
    for f in wanted:
        key = (f.constituency_id, f.evidence_kind, _key_time(f.window_start), _key_time(f.window_end))
        if key not in cached:
            cached[key] = evidence_for(duck, f)
            new_rows.append((*key, cached[key]))
        f.evidence_tx_ids = list(cached[key])
    if new_rows:
        duck.executemany("INSERT INTO cached_evidence VALUES (?, ?, ?, ?, ?)", new_rows)


def attach_blocks(duck: duckdb.DuckDBPyConnection, findings: list[Finding]) -> None:
    """Name the block of every evidence transaction that came from a block dump
    (``Finding.evidence_blocks``, shown in the alert's details as ``evidence_blocks``)."""
    ids = {t for f in findings for t in f.evidence_tx_ids[:20]}
    if not ids:
        return
    heights = {t: int(h) for t, h in stored_with_ids(duck, ids, "block_height") if h is not None}
    if not heights:
        return
    for f in findings:
        f.evidence_blocks = {t: heights[t] for t in f.evidence_tx_ids[:20] if t in heights}


def _key_time(value) -> datetime | None:
    """A finding's window bound as a naive ``datetime`` (None when open)."""
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    return pd.Timestamp(value).to_pydatetime()


def compute_metrics(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    thresholds: DetectionThresholds,
    now: datetime | None = None,
    scope: Scope = EVERYTHING,
) -> MetricsSummary:
    """Totals per constituency (of ``scope``) plus findings (with evidence transaction ids)
    at ``now``."""
    totals = in_scope(constituency_totals(duck), engine, scope)
    constituencies = load_constituencies(engine, scope)
    reg = registered_voters(constituencies, totals)
    info = constituencies.merge(reg, on="id", how="left")
    info["registered"] = info["registered"].fillna(0).astype("int64")
    hourly = compute_hourly(duck, engine, scope)
    elections = load_elections(engine)
    late = late_transactions(duck, info, elections)
    conflicts = conflicting_copies(duck, info["id"])
    findings = detect(hourly, info, totals, thresholds, elections=elections, late=late, conflicts=conflicts, now=now)
    attach_evidence(duck, findings)
    attach_blocks(duck, findings)
    scores = anomaly_scores(findings)

    frame = info.merge(totals, left_on="id", right_on="constituency_id", how="left")
    for col in ("bulletins_issued", "votes_cast", "accepted_votes", "transaction_count", "rejected_count"):
        frame[col] = frame[col].fillna(0).astype("int64")
    frame["revote_count"] = frame["accepted_votes"] - frame["votes_cast"]
    frame["participation_rate"] = [
        participation(v, r) for v, r in zip(frame["votes_cast"], frame["registered"], strict=False)
    ]
    frame["anomaly_score"] = [scores.get(cid, 0.0) for cid in frame["id"]]
    return MetricsSummary(frame=frame, findings=findings)


def publish_metrics(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    thresholds: DetectionThresholds,
    now: datetime | None = None,
    scope: Scope = EVERYTHING,
) -> MetricsSummary:
    """Compute the metrics of ``scope``'s constituencies at ``now`` and write them; only rows
    whose figures changed are updated (another workspace's constituencies are never touched)."""
    summary = compute_metrics(duck, engine, thresholds, now, scope)
    frame = summary.frame
    with engine.connect() as conn:
        current = {
            r.id: r for r in conn.execute(select(*[Constituency.__table__.c[c] for c in ["id"] + CONSTITUENCY_FIGURES]))
        }
    rows = []
    for rec in frame.itertuples(index=False):
        last = rec.last_ts if "last_ts" in frame.columns and pd.notna(rec.last_ts) else None
        new = {
            "bulletins_issued": int(rec.bulletins_issued),
            "votes_cast": int(rec.votes_cast),
            "revote_count": int(rec.revote_count),
            "transaction_count": int(rec.transaction_count),
            "rejected_count": int(rec.rejected_count),
            "participation_rate": float(rec.participation_rate),
            "anomaly_score": float(rec.anomaly_score),
            "registered_voters": int(rec.registered),
            "registered_voters_source": str(rec.source),
            "last_update_time": pd.Timestamp(last).to_pydatetime() if last is not None else None,
        }
        have = current.get(rec.id)
        if have is None or any(getattr(have, k) != v for k, v in new.items()):
            rows.append({"id": rec.id, "updated_at": utcnow(), **new})

    counts = anomaly_counts(summary.findings)
    # Hours holding a count now, or wanting one: every other hour stays at 0.
    with engine.connect() as conn:
        nonzero = {
            (cid, hour): have
            for cid, hour, have in conn.execute(
                select(HourlyStats.constituency_id, HourlyStats.hour, HourlyStats.anomaly_count).where(
                    HourlyStats.anomaly_count != 0, scope.owns(HourlyStats.constituency_id)
                )
            ).all()
        }
    hour_rows = [
        {"constituency_id": cid, "hour": hour, "anomaly_count": counts.get((cid, hour), 0)}
        for cid, hour in sorted(
            set(nonzero) | {k for k, n in counts.items() if n and k[1] is not None}, key=lambda k: (k[0], k[1])
        )
        if counts.get((cid, hour), 0) != nonzero.get((cid, hour), 0)
    ]
    with engine.begin() as conn:
        update_by_key(conn, Constituency.__table__, rows, ["id"], CONSTITUENCY_FIGURES + ["updated_at"])
        update_by_key(conn, HourlyStats.__table__, hour_rows, ["constituency_id", "hour"], ["anomaly_count"])
        # Keep each election's constituency count true.
        counts_by_election = dict(
            conn.execute(
                select(Constituency.election_id, func.count())
                .where(Constituency.election_id.is_not(None))
                .group_by(Constituency.election_id)
            )
            .tuples()
            .all()
        )
        for eid, n in counts_by_election.items():
            conn.execute(
                update(Election.__table__)
                .where(Election.id == eid, Election.total_constituencies != n)
                .values(total_constituencies=n, updated_at=utcnow())
            )
    summary.updated = len(rows)
    return summary
