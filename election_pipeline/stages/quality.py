"""Data-quality rules behind the asset checks. Each returns a :class:`QualityResult`
whose ``figures`` are shown in the Dagster UI next to the verdict."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
from sqlalchemy import Engine, and_, func, or_, select

from election_pipeline.analytics.aggregation import LIVE, store_counts
from election_pipeline.analytics.raw_store import retired_constituency_ids
from election_pipeline.db.models import Constituency, Election, HourlyStats, Transaction


@dataclass
class QualityResult:
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


def _ops_standing_by_constituency(engine: Engine, retired: set[str] = frozenset()) -> dict[str, int]:
    """Standing transactions per constituency, without the ``retired`` ones (whose
    transactions the retention job removed: their figures are frozen)."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(Transaction.constituency_id, func.count())
            .where(Transaction.is_rolled_back.is_(False))
            .group_by(Transaction.constituency_id)
        ).all()
    return {c: n for c, n in rows if c not in retired}


def no_transaction_counted_twice(duck: duckdb.DuckDBPyConnection, engine: Engine) -> QualityResult:
    """Each transaction id is stored once in each store, and both stores hold the same
    standing transactions per constituency."""
    counts = store_counts(duck)
    with engine.connect() as conn:
        ops_rows, ops_distinct = conn.execute(
            select(func.count(), func.count(func.distinct(Transaction.tx_id)))
        ).one()
    retired = retired_constituency_ids(duck)
    duck_by_c = dict(duck.execute(f"SELECT constituency_id, count(*) FROM {LIVE} GROUP BY 1").fetchall())
    ops_by_c = _ops_standing_by_constituency(engine, retired)
    mismatched = sorted(c for c in set(duck_by_c) | set(ops_by_c) if duck_by_c.get(c, 0) != ops_by_c.get(c, 0))
    figures = {
        "duckdb_rows": counts["stored"],
        "duckdb_distinct_tx_ids": counts["distinct_tx_ids"],
        "operational_rows": int(ops_rows),
        "operational_distinct_tx_ids": int(ops_distinct),
        "standing_duckdb": counts["standing"],
        "standing_operational": sum(ops_by_c.values()),
        "constituencies_disagreeing": len(mismatched),
    }
    passed = (
        counts["stored"] == counts["distinct_tx_ids"] and ops_rows == ops_distinct and not mismatched
    )
    summary = "every transaction stored once; both stores agree" if passed else (
        "stores disagree or hold a transaction twice"
        + (f" (constituencies: {', '.join(mismatched[:10])})" if mismatched else "")
    )
    return QualityResult(passed, summary, figures)


def hourly_totals_reconcile(duck: duckdb.DuckDBPyConnection, engine: Engine) -> QualityResult:
    """The hourly table adds up to the raw counts: transactions, bulletins and distinct voters."""
    counts = store_counts(duck)
    retired = retired_constituency_ids(duck)
    with engine.connect() as conn:
        tx, bulletins, votes = conn.execute(
            select(
                func.coalesce(func.sum(HourlyStats.transaction_count), 0),
                func.coalesce(func.sum(HourlyStats.bulletins_issued), 0),
                func.coalesce(func.sum(HourlyStats.votes_cast), 0),
            ).where(HourlyStats.constituency_id.not_in(sorted(retired)))
        ).one()
    ops_standing = sum(_ops_standing_by_constituency(engine, retired).values())
    figures = {
        "hourly_transactions": int(tx),
        "raw_standing_transactions": counts["standing"],
        "operational_standing_transactions": ops_standing,
        "hourly_bulletins": int(bulletins),
        "raw_bulletins": counts["bulletins"],
        "hourly_votes": int(votes),
        "raw_distinct_voters": counts["distinct_voters"],
    }
    passed = (int(tx) == counts["standing"] == ops_standing and int(bulletins) == counts["bulletins"]
              and int(votes) == counts["distinct_voters"])
    return QualityResult(passed, "hourly totals equal the raw counts" if passed else "hourly totals differ from raw counts", figures)


def every_transaction_in_a_known_hour(duck: duckdb.DuckDBPyConnection, engine: Engine) -> QualityResult:
    """Every standing transaction has a timestamp and its constituency-hour is in ``hourly_stats``."""
    raw_hours = {
        (c, h) for c, h in duck.execute(f"SELECT DISTINCT constituency_id, date_trunc('hour', ts) FROM {LIVE}").fetchall()
    }
    retired = retired_constituency_ids(duck)
    with engine.connect() as conn:
        published = {(c, h) for c, h in conn.execute(select(HourlyStats.constituency_id, HourlyStats.hour)).all()
                     if c not in retired}
        no_time = conn.execute(select(func.count()).where(Transaction.timestamp.is_(None))).scalar_one()
    missing = sorted(raw_hours - published)
    extra = sorted(published - raw_hours)
    figures = {
        "hours_with_transactions": len(raw_hours),
        "hours_published": len(published),
        "hours_missing": len(missing),
        "hours_without_transactions": len(extra),
        "transactions_without_timestamp": int(no_time),
        "examples_missing": ", ".join(f"{c}@{h:%Y-%m-%d %H}" for c, h in missing[:5]),
    }
    passed = not missing and not extra and no_time == 0
    return QualityResult(passed, "every transaction falls in a published hour" if passed else "hours missing or stale", figures)


def participation_at_most_100(engine: Engine) -> QualityResult:
    """No constituency has more distinct voters than registered voters."""
    with engine.connect() as conn:
        over = conn.execute(
            select(Constituency.id, Constituency.votes_cast, Constituency.registered_voters)
            .where(Constituency.participation_rate > 100.0).order_by(Constituency.id)
        ).all()
        worst = conn.execute(select(func.max(Constituency.participation_rate))).scalar() or 0.0
    figures = {
        "constituencies_over_100": len(over),
        "max_participation_rate": float(worst),
        "examples": ", ".join(f"{c} ({v}/{r})" for c, v, r in over[:10]),
    }
    return QualityResult(not over, "participation within 100%" if not over else f"{len(over)} constituencies above 100%", figures)


def timestamps_within_voting_window(engine: Engine) -> QualityResult:
    """Bulletins and votes outside their election's voting window (kept and counted, but reported)."""
    window = and_(
        Transaction.type.in_(["vote", "blindSigIssue"]),
        Transaction.is_rolled_back.is_(False),
        or_(Transaction.timestamp < Election.start_date, Transaction.timestamp >= Election.end_date),
    )
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count()).select_from(Transaction)
            .join(Constituency, Constituency.id == Transaction.constituency_id)
            .join(Election, Election.id == Constituency.election_id).where(window)
        ).scalar_one()
        examples = conn.execute(
            select(Transaction.tx_id, Transaction.constituency_id, Transaction.timestamp)
            .join(Constituency, Constituency.id == Transaction.constituency_id)
            .join(Election, Election.id == Constituency.election_id).where(window)
            .order_by(Transaction.timestamp).limit(10)
        ).all()
    figures = {
        "transactions_outside_window": int(n),
        "examples": ", ".join(f"{t} ({c}, {ts:%Y-%m-%d %H:%M} UTC)" for t, c, ts in examples),
    }
    return QualityResult(n == 0, "all bulletins and votes inside the voting window" if n == 0
                         else f"{n} bulletin/vote transactions outside the voting window", figures)
