"""Data-quality rules behind the asset checks. Each returns a :class:`QualityResult`
whose ``figures`` are shown in the Dagster UI next to the verdict.

The three blocking checks compare the raw store with the operational database for the
constituencies that changed since the check last passed (the change log of
:mod:`election_pipeline.analytics.change_log`), so their cost follows what arrived, not the
size of the history. A check that fails keeps its mark, so the next run looks at the same
constituencies again (and the new ones). They verify every constituency on their first run
on a store, and again whenever their last full pass is older than
``ELECTION_FULL_CHECK_EVERY_MINUTES`` (default 60; 0: on every run), so a change made to
the stores by other means than the pipeline (an unchanged constituency edited by hand) is
found within that time; the ``scope`` figure says which it was. With election workspaces
(:mod:`election_pipeline.workspaces`), a run compares the constituencies of its own scope
only (the operational database also holds the other workspaces')."""

from __future__ import annotations

from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import duckdb
from sqlalchemy import Engine, and_, func, or_, select

from election_pipeline.analytics import change_log
from election_pipeline.analytics.counting_sql import LIVE
from election_pipeline.analytics.raw_store import retired_constituency_ids
from election_pipeline.db.models import Constituency, Election, HourlyStats, Transaction, utcnow
from election_pipeline.detection.invariants import VOTING_OPERATIONS
from election_pipeline.workspaces import EVERYTHING, Scope


@dataclass
class QualityResult:
    passed: bool
    summary: str
    figures: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Scope:
    """The constituencies a check looks at: every one (``ids`` None) or those changed since
    the check last passed, and the change-log number to record when it passes."""

    name: str
    ids: list[str] | None
    seq: int
    #: SQL condition on ``constituency_id`` selecting the scope in DuckDB.
    where: str = "TRUE"
    #: The run's workspace scope (a full check compares its constituencies).
    owned: Scope = EVERYTHING

    @property
    def full(self) -> bool:
        return self.ids is None

    @property
    def empty(self) -> bool:
        """Nothing to look at: no constituency changed since the last pass."""
        return not self.full and not self.ids

    def describe(self) -> str:
        # ``self.ids is None`` is what ``full`` tests; spelled out so the type checker narrows it.
        every = "all constituencies" if self.owned.is_everything else f"all constituencies of {self.owned.describe()}"
        return every if self.ids is None else f"constituencies changed since the last pass: {len(self.ids)}"


def _scope(
    duck: duckdb.DuckDBPyConnection, name: str, full_every_minutes: float, full: bool, owned: Scope = EVERYTHING
) -> _Scope:
    """Every constituency when ``full``, when the check never passed on this store, or when
    its last full pass is older than ``full_every_minutes`` (``ELECTION_FULL_CHECK_EVERY_MINUTES``;
    0: always); else the constituencies the change log names since its last pass. A subset is
    put in a temporary table of ``duck``, which ``where`` selects."""
    if not full:
        last_full = change_log.marked_at(duck, f"check:{name}:full")
        full = (
            full_every_minutes <= 0
            or last_full is None
            or utcnow() - last_full >= timedelta(minutes=full_every_minutes)
        )
    seq = change_log.catch_up(duck)
    mark = change_log.mark_of(duck, f"check:{name}")
    if full or mark is None or mark > seq:
        return _Scope(name, None, seq, owned=owned)
    ids = change_log.changed_since(duck, mark, seq)
    duck.execute("CREATE OR REPLACE TEMP TABLE _check_scope (constituency_id VARCHAR)")
    if ids:
        duck.executemany("INSERT INTO _check_scope VALUES (?)", [(c,) for c in ids])
    return _Scope(name, ids, seq, "constituency_id IN (SELECT constituency_id FROM _check_scope)", owned)


def _passed(duck: duckdb.DuckDBPyConnection, scope: _Scope, passed: bool) -> None:
    """A check that passed moves its mark (and, after a full pass, the time of the last one);
    one that failed looks at the same constituencies again."""
    if passed:
        change_log.set_mark(duck, f"check:{scope.name}", scope.seq)
        if scope.full:
            change_log.set_mark(duck, f"check:{scope.name}:full", scope.seq)


def _in_scope(column, scope: _Scope):
    """SQLAlchemy condition: ``column`` in the scope, and in the workspace's (a constituency
    logged as changed may have moved to another workspace since)."""
    mine = scope.owned.owns(column)
    return mine if scope.full else and_(column.in_(scope.ids), mine)


def _ops_standing_by_constituency(
    engine: Engine, retired: AbstractSet[str] = frozenset(), scope: _Scope | None = None
) -> dict[str, int]:
    """Standing transactions per constituency, without the ``retired`` ones (whose
    transactions the retention job removed: their figures are frozen)."""
    if scope is not None and scope.empty:
        return {}
    with engine.connect() as conn:
        query = (
            select(Transaction.constituency_id, func.count())
            .where(Transaction.is_rolled_back.is_(False), Transaction.in_conflict.is_(False))
            .group_by(Transaction.constituency_id)
        )
        if scope is not None:
            query = query.where(_in_scope(Transaction.constituency_id, scope))
        rows = conn.execute(query).all()
    return {c: n for c, n in rows if c not in retired}


def _raw_counts(duck: duckdb.DuckDBPyConnection, where: str) -> dict[str, int]:
    """Counts of the raw store for the constituencies ``where`` selects (live ones for the
    standing figures): the data-quality checks compare them with the operational database."""
    row = duck.execute(
        f"""
        WITH scoped AS MATERIALIZED (SELECT tx_id, tx_key FROM raw_transactions WHERE {where}),
             -- every stored row sharing a digest with the scope's (found without reading every id)
             candidates AS MATERIALIZED (
                 SELECT tx_id FROM raw_transactions WHERE tx_key IN (SELECT tx_key FROM scoped))
        SELECT (SELECT count(*) FROM scoped),
               -- a transaction id of the scope stored twice, wherever the other copy is
               (SELECT count(*) FROM candidates WHERE tx_id IN (SELECT tx_id FROM scoped))
                 - (SELECT count(DISTINCT tx_id) FROM scoped),
               (SELECT count(*) FROM {LIVE} WHERE {where}),
               (SELECT count(DISTINCT constituency_id || '|' || sender) FROM {LIVE}
                  WHERE {where} AND operation = 'vote' AND NOT rejected),
               (SELECT coalesce(sum(bulletins), 0) FROM {LIVE}
                  WHERE {where} AND operation = 'blindSigIssue' AND NOT rejected)
        """
    ).fetchall()[0]
    keys = ["stored", "stored_twice", "standing", "distinct_voters", "bulletins"]
    return {k: int(v) for k, v in zip(keys, row, strict=False)}


def no_transaction_counted_twice(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    *,
    full_every_minutes: float,
    full: bool = False,
    owned: Scope = EVERYTHING,
) -> QualityResult:
    """Each transaction id is stored once in each store, and both stores hold the same
    standing transactions per constituency.

    Looks at the constituencies changed since the check last passed (every one on its first
    run, with ``full``, or when the last full pass is older than ``full_every_minutes``);
    a transaction id of those is looked
    for in the whole raw store."""
    scope = _scope(duck, "no_transaction_counted_twice", full_every_minutes, full, owned)
    counts = _raw_counts(duck, scope.where)
    with engine.connect() as conn:
        ops_rows, ops_distinct = (
            conn.execute(
                select(func.count(), func.count(func.distinct(Transaction.tx_id))).where(
                    _in_scope(Transaction.constituency_id, scope)
                )
            ).one()
            if not scope.empty
            else (0, 0)
        )
    retired = retired_constituency_ids(duck)
    duck_by_c = dict(
        duck.execute(f"SELECT constituency_id, count(*) FROM {LIVE} WHERE {scope.where} GROUP BY 1").fetchall()
    )
    ops_by_c = _ops_standing_by_constituency(engine, retired, scope)
    mismatched = sorted(c for c in set(duck_by_c) | set(ops_by_c) if duck_by_c.get(c, 0) != ops_by_c.get(c, 0))
    figures = {
        "scope": scope.describe(),
        "duckdb_rows": counts["stored"],
        "duckdb_distinct_tx_ids": counts["stored"] - counts["stored_twice"],
        "operational_rows": int(ops_rows),
        "operational_distinct_tx_ids": int(ops_distinct),
        "standing_duckdb": counts["standing"],
        "standing_operational": sum(ops_by_c.values()),
        "constituencies_disagreeing": len(mismatched),
    }
    passed = counts["stored_twice"] == 0 and ops_rows == ops_distinct and not mismatched
    summary = (
        "every transaction stored once; both stores agree"
        if passed
        else (
            "stores disagree or hold a transaction twice"
            + (f" (constituencies: {', '.join(mismatched[:10])})" if mismatched else "")
        )
    )
    _passed(duck, scope, passed)
    return QualityResult(passed, summary, figures)


def hourly_totals_reconcile(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    *,
    full_every_minutes: float,
    full: bool = False,
    owned: Scope = EVERYTHING,
) -> QualityResult:
    """The hourly table adds up to the raw counts: transactions, bulletins and distinct voters
    (for the constituencies changed since the check last passed, or all: see
    :func:`no_transaction_counted_twice`)."""
    scope = _scope(duck, "hourly_totals_reconcile", full_every_minutes, full, owned)
    counts = _raw_counts(duck, scope.where)
    retired = retired_constituency_ids(duck)
    if not scope.empty:
        with engine.connect() as conn:
            tx, bulletins, votes = conn.execute(
                select(
                    func.coalesce(func.sum(HourlyStats.transaction_count), 0),
                    func.coalesce(func.sum(HourlyStats.bulletins_issued), 0),
                    func.coalesce(func.sum(HourlyStats.votes_cast), 0),
                ).where(
                    HourlyStats.constituency_id.not_in(sorted(retired)), _in_scope(HourlyStats.constituency_id, scope)
                )
            ).one()
    else:
        tx = bulletins = votes = 0
    figures = {
        "scope": scope.describe(),
        "hourly_transactions": int(tx),
        "raw_standing_transactions": counts["standing"],
        "hourly_bulletins": int(bulletins),
        "raw_bulletins": counts["bulletins"],
        "hourly_votes": int(votes),
        "raw_distinct_voters": counts["distinct_voters"],
    }
    passed = (
        int(tx) == counts["standing"]
        and int(bulletins) == counts["bulletins"]
        and int(votes) == counts["distinct_voters"]
    )
    _passed(duck, scope, passed)
    return QualityResult(
        passed, "hourly totals equal the raw counts" if passed else "hourly totals differ from raw counts", figures
    )


def every_transaction_in_a_known_hour(
    duck: duckdb.DuckDBPyConnection,
    engine: Engine,
    *,
    full_every_minutes: float,
    full: bool = False,
    owned: Scope = EVERYTHING,
) -> QualityResult:
    """Every standing transaction has a timestamp and its constituency-hour is in ``hourly_stats``
    (for the constituencies changed since the check last passed, or all: see
    :func:`no_transaction_counted_twice`)."""
    scope = _scope(duck, "every_transaction_in_a_known_hour", full_every_minutes, full, owned)
    raw_hours = {
        (c, h)
        for c, h in duck.execute(
            f"SELECT DISTINCT constituency_id, date_trunc('hour', ts) FROM {LIVE} WHERE {scope.where}"
        ).fetchall()
    }
    retired = retired_constituency_ids(duck)
    if not scope.empty:
        with engine.connect() as conn:
            published = {
                (c, h)
                for c, h in conn.execute(
                    select(HourlyStats.constituency_id, HourlyStats.hour).where(
                        _in_scope(HourlyStats.constituency_id, scope)
                    )
                ).all()
                if c not in retired
            }
    else:
        published = set()
    no_time = duck.execute(f"SELECT count(*) FROM {LIVE} WHERE ts IS NULL AND {scope.where}").fetchall()[0][0]
    missing = sorted(raw_hours - published)
    extra = sorted(published - raw_hours)
    figures = {
        "scope": scope.describe(),
        "hours_with_transactions": len(raw_hours),
        "hours_published": len(published),
        "hours_missing": len(missing),
        "hours_without_transactions": len(extra),
        "transactions_without_timestamp": int(no_time),
        "examples_missing": ", ".join(f"{c}@{h:%Y-%m-%d %H}" for c, h in missing[:5]),
    }
    passed = not missing and not extra and no_time == 0
    _passed(duck, scope, passed)
    return QualityResult(
        passed, "every transaction falls in a published hour" if passed else "hours missing or stale", figures
    )


def participation_at_most_100(engine: Engine, owned: Scope = EVERYTHING) -> QualityResult:
    """No constituency (of the run's workspace) has more distinct voters than registered voters."""
    mine = owned.condition()
    with engine.connect() as conn:
        over = conn.execute(
            select(Constituency.id, Constituency.votes_cast, Constituency.registered_voters)
            .where(Constituency.participation_rate > 100.0, mine)
            .order_by(Constituency.id)
        ).all()
        worst = conn.execute(select(func.max(Constituency.participation_rate)).where(mine)).scalar() or 0.0
    figures = {
        "constituencies_over_100": len(over),
        "max_participation_rate": float(worst),
        "examples": ", ".join(f"{c} ({v}/{r})" for c, v, r in over[:10]),
    }
    return QualityResult(
        not over, "participation within 100%" if not over else f"{len(over)} constituencies above 100%", figures
    )


def timestamps_within_voting_window(engine: Engine, owned: Scope = EVERYTHING) -> QualityResult:
    """Bulletins and votes outside their election's voting window (kept and counted, but
    reported), in the run's workspace."""
    window = and_(
        owned.condition(),
        Transaction.type.in_(VOTING_OPERATIONS),
        Transaction.is_rolled_back.is_(False),
        or_(Transaction.timestamp < Election.start_date, Transaction.timestamp >= Election.end_date),
    )
    with engine.connect() as conn:
        n = conn.execute(
            select(func.count())
            .select_from(Transaction)
            .join(Constituency, Constituency.id == Transaction.constituency_id)
            .join(Election, Election.id == Constituency.election_id)
            .where(window)
        ).scalar_one()
        examples = conn.execute(
            select(Transaction.tx_id, Transaction.constituency_id, Transaction.timestamp)
            .join(Constituency, Constituency.id == Transaction.constituency_id)
            .join(Election, Election.id == Constituency.election_id)
            .where(window)
            .order_by(Transaction.timestamp)
            .limit(10)
        ).all()
    figures = {
        "transactions_outside_window": int(n),
        "examples": ", ".join(f"{t} ({c}, {ts:%Y-%m-%d %H:%M} UTC)" for t, c, ts in examples),
    }
    return QualityResult(
        n == 0,
        "all bulletins and votes inside the voting window"
        if n == 0
        else f"{n} bulletin/vote transactions outside the voting window",
        figures,
    )


#: How many missing height ranges and duplicated heights the check lists by name.
BLOCK_LIST_LIMIT = 50


def block_heights_contiguous(duck: duckdb.DuckDBPyConnection) -> QualityResult:
    """Every block between the lowest and the highest height read from block dumps is there,
    and no height was read with two different contents (docs/input-format.md#block-dump).

    Missing heights mean transactions that were never read: the figures of the contracts in
    those blocks may be short. Two different lines at one height mean two versions of a block
    (a fork, or an edited dump). Passes, saying so, when no block dump has been read."""
    row = duck.execute("SELECT count(*), count(DISTINCT height), min(height), max(height) FROM raw_blocks").fetchone()
    lines, heights, lowest, highest = row if row else (0, 0, None, None)
    if not lines:
        return QualityResult(True, "no block dump has been read", {"blocks": 0})
    gaps = duck.execute(
        """
        SELECT height + 1 AS first_missing, next_height - 1 AS last_missing
        FROM (SELECT height, lead(height) OVER (ORDER BY height) AS next_height
              FROM (SELECT DISTINCT height FROM raw_blocks))
        WHERE next_height > height + 1
        ORDER BY 1
        """
    ).fetchall()
    missing = sum(int(last) - int(first) + 1 for first, last in gaps)
    forks = duck.execute(
        """
        SELECT height, count(DISTINCT digest) AS versions, list(DISTINCT source ORDER BY source) AS sources
        FROM raw_blocks GROUP BY height HAVING count(DISTINCT digest) > 1 ORDER BY height
        """
    ).fetchall()
    figures: dict[str, Any] = {
        "blocks": int(heights),
        "lowest_height": int(lowest),
        "highest_height": int(highest),
        "missing_heights": missing,
        "missing_ranges": [f"{int(a):,}" if a == b else f"{int(a):,}-{int(b):,}" for a, b in gaps[:BLOCK_LIST_LIMIT]],
        "heights_with_different_content": len(forks),
        "different_content": [
            {"height": int(h), "versions": int(n), "sources": [str(s) for s in src][:5]}
            for h, n, src in forks[:BLOCK_LIST_LIMIT]
        ],
    }
    problems = []
    if missing:
        listed = ", ".join(figures["missing_ranges"][:10])
        more = " ..." if len(gaps) > 10 else ""
        problems.append(
            f"{missing:,} block heights missing between {int(lowest):,} and {int(highest):,} ({listed}{more})"
        )
    if forks:
        listed = ", ".join(f"{int(h):,}" for h, _, _ in forks[:10])
        problems.append(f"{len(forks):,} heights read with different content ({listed})")
    if problems:
        return QualityResult(False, "; ".join(problems), figures)
    return QualityResult(
        True, f"all {int(heights):,} blocks from height {int(lowest):,} to {int(highest):,} are present", figures
    )
