"""Election-metrics stage: the figures of each whole election, and the dashboard summary.

One row per election in ``election_metrics`` (the election and dashboard figures, served from
the operational database; docs/data-model.md#metrics):

* totals over the election's constituencies: registered voters, bulletins issued, voters,
  revotes, rejected and all transactions, participation (voters / registered × 100, over
  the constituencies whose registered voters are known, so voters of a constituency with
  none cannot inflate it) and the issued-but-not-voted gap (bulletins − voters);
* how many constituencies there are, how many are **reporting** (a transaction within
  ``offline_after_hours`` of the election's clock), **offline** (silent for longer, or
  marked ``offline`` in the reference data) and carry an open **critical** alert. The
  election's clock is its latest transaction, capped at the end of its voting window, so
  a pipeline running behind, or reading a past election, does not make everyone offline;
* open alerts (``active`` or ``investigating``) by severity;
* ``summary``: the dashboard summary as JSON (constituency counts, alerts by rule, the
  busiest and latest hour, the hourly activity pattern by local hour, the most anomalous
  and the lowest-participation constituencies, the offline ones).

Rows are written only when a figure changed, so running the pipeline twice changes
nothing. ``elections.total_constituencies`` is kept equal to the number of constituencies
that name the election. Constituencies no reference file knows belong to no election;
:func:`dashboard_summary` counts them in the all-elections view.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import pandas as pd
from sqlalchemy import Engine, func, select, update

from election_pipeline.analytics import period_metrics as pm
from election_pipeline.db.bulk import insert_ignore, update_by_key
from election_pipeline.db.models import (
    Alert,
    Constituency,
    Election,
    ElectionMetrics,
    FileProcessingJob,
    HourlyStats,
    RejectedRow,
    utcnow,
)
from election_pipeline.vocabulary import OPEN_STATUSES, ConstituencyStatus, Severity

FIGURES = [
    "total_constituencies",
    "constituencies_reporting",
    "constituencies_offline",
    "constituencies_with_critical_alerts",
    "registered_voters",
    "bulletins_issued",
    "votes_cast",
    "revote_count",
    "rejected_count",
    "transaction_count",
    "participation_rate",
    "issued_not_voted",
    "first_activity",
    "last_activity",
    "open_alerts_critical",
    "open_alerts_warning",
    "open_alerts_info",
    "summary",
]


@dataclass
class ElectionMetricsSummary:
    """What the stage computed and wrote: ``rows`` holds one dict of figures per election."""

    rows: list[dict[str, Any]] = field(default_factory=list)
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    total_constituencies_fixed: int = 0


def _iso(moment: Any) -> str | None:
    if moment is None or (isinstance(moment, float) and pd.isna(moment)) or moment is pd.NaT:
        return None
    return pd.Timestamp(moment).isoformat()


def _participation(votes: int, registered: int) -> float:
    return round(votes / registered * 100.0, 4) if registered > 0 else 0.0


def _constituencies(engine: Engine) -> pd.DataFrame:
    cols = [
        "id",
        "election_id",
        "name",
        "region",
        "status",
        "in_reference",
        "registered_voters",
        "bulletins_issued",
        "votes_cast",
        "revote_count",
        "rejected_count",
        "transaction_count",
        "participation_rate",
        "anomaly_score",
    ]
    with engine.connect() as conn:
        rows = conn.execute(select(*[Constituency.__table__.c[c] for c in cols])).all()
        activity = conn.execute(
            select(HourlyStats.constituency_id, func.min(HourlyStats.hour), func.max(HourlyStats.timestamp)).group_by(
                HourlyStats.constituency_id
            )
        ).all()
    frame = pd.DataFrame(rows, columns=cols)
    act = pd.DataFrame(activity, columns=["id", "first_hour", "last_ts"])
    frame = frame.merge(act, on="id", how="left")
    frame["first_hour"] = pd.to_datetime(frame["first_hour"])
    frame["last_ts"] = pd.to_datetime(frame["last_ts"])
    return frame


def _open_alerts(engine: Engine) -> pd.DataFrame:
    with engine.connect() as conn:
        rows = conn.execute(
            select(Alert.constituency_id, Alert.severity, Alert.type, func.count())
            .where(Alert.status.in_(OPEN_STATUSES))
            .group_by(Alert.constituency_id, Alert.severity, Alert.type)
        ).all()
    return pd.DataFrame(rows, columns=["constituency_id", "severity", "type", "n"])


def _brief(rec: Any) -> dict[str, Any]:
    return {
        "id": rec.id,
        "name": rec.name,
        "region": rec.region,
        "participation_rate": round(float(rec.participation_rate), 4),
        "anomaly_score": round(float(rec.anomaly_score), 4),
        "votes_cast": int(rec.votes_cast),
        "registered_voters": int(rec.registered_voters),
    }


def election_figures(
    engine: Engine,
    election: Any,
    members: pd.DataFrame,
    alerts: pd.DataFrame,
    offline_after_hours: float,
) -> dict[str, Any]:
    """The ``election_metrics`` row of one election (``election`` is a row of ``elections``)."""
    status = _reporting(members, election.end_date, offline_after_hours)
    mine = alerts[alerts["constituency_id"].isin(set(members["id"]))]
    by_severity = mine.groupby("severity")["n"].sum().to_dict()
    by_type = {str(k): int(v) for k, v in sorted(mine.groupby("type")["n"].sum().to_dict().items())}
    critical_ids = sorted(set(mine.loc[mine["severity"] == Severity.CRITICAL, "constituency_id"]))
    totals = _totals(members)
    scope = pm.Scope(
        kind="election",
        id=election.id,
        name=election.name,
        timezone=election.timezone or "UTC",
        registered_voters=totals["registered_voters"],
        constituency_ids=tuple(members["id"]),
        election_id=election.id,
        registered_by_constituency=dict(zip(members["id"], members["registered_voters"].astype(int), strict=False)),
    )
    series = pm.hourly_series(engine, scope)
    pattern = pm.hourly_activity_pattern(engine, scope, series=series) if len(series) else None
    summary = _summary(
        election,
        members,
        status,
        totals,
        offline_after_hours=offline_after_hours,
        by_severity=by_severity,
        by_type=by_type,
        critical_ids=critical_ids,
        series=series,
        pattern=pattern,
    )
    first = members["first_hour"].min() if len(members) else pd.NaT
    return {
        "election_id": election.id,
        "total_constituencies": len(members),
        "constituencies_reporting": int(status.reporting.sum()),
        "constituencies_offline": int(status.offline.sum()),
        "constituencies_with_critical_alerts": len(critical_ids),
        **totals,
        "first_activity": None if pd.isna(first) else pd.Timestamp(first).to_pydatetime(),
        "last_activity": None if pd.isna(status.latest) else pd.Timestamp(status.latest).to_pydatetime(),
        "open_alerts_critical": int(by_severity.get(Severity.CRITICAL, 0)),
        "open_alerts_warning": int(by_severity.get(Severity.WARNING, 0)),
        "open_alerts_info": int(by_severity.get(Severity.INFO, 0)),
        "summary": summary,
    }


@dataclass
class _Reporting:
    """Which constituencies of an election (rows of ``members``) are reporting, offline or
    have never reported, as of ``clock``: the latest transaction (``latest``), at most the
    end of voting."""

    latest: Any
    clock: Any
    reporting: pd.Series
    offline: pd.Series
    never: pd.Series


def _reporting(members: pd.DataFrame, end_date: Any, offline_after_hours: float) -> _Reporting:
    """Offline: marked offline, or silent for ``offline_after_hours`` before the clock."""
    end = pd.Timestamp(end_date) if end_date is not None else None
    latest = members["last_ts"].max() if len(members) else pd.NaT
    clock = None if pd.isna(latest) else (min(latest, end) if end is not None else latest)
    cutoff = clock - timedelta(hours=offline_after_hours) if clock is not None else None
    marked_offline = members["status"] == ConstituencyStatus.OFFLINE
    has_data = members["last_ts"].notna()
    recent = has_data & (members["last_ts"] >= cutoff) if cutoff is not None else has_data
    return _Reporting(
        latest=latest,
        clock=clock,
        reporting=recent & ~marked_offline,
        offline=marked_offline | (has_data & ~recent),
        never=~has_data & ~marked_offline,
    )


def _totals(members: pd.DataFrame) -> dict[str, Any]:
    """The election's counts, summed over its constituencies (participation: of the
    constituencies with registered voters)."""
    registered = int(members["registered_voters"].sum())
    votes = int(members["votes_cast"].sum())
    counted_votes = int(members.loc[members["registered_voters"] > 0, "votes_cast"].sum())
    bulletins = int(members["bulletins_issued"].sum())
    return {
        "registered_voters": registered,
        "bulletins_issued": bulletins,
        "votes_cast": votes,
        "revote_count": int(members["revote_count"].sum()),
        "rejected_count": int(members["rejected_count"].sum()),
        "transaction_count": int(members["transaction_count"].sum()),
        "participation_rate": _participation(counted_votes, registered),
        "issued_not_voted": bulletins - votes,
    }


def _hour_highlights(series: pd.DataFrame) -> tuple[dict[str, Any] | None, dict[str, Any] | None]:
    """The latest hour with transactions and the hour with the most votes (None without hours)."""
    if not len(series):
        return None, None
    active = series[series["transaction_count"] > 0]
    last = active.iloc[-1]
    latest_hour = {
        "hour": _iso(last["hour"]),
        "votes_cast": int(last["votes_cast"]),
        "bulletins_issued": int(last["bulletins_issued"]),
        "participation_rate": float(last["participation_rate"]),
    }
    peak = series.loc[series["votes_cast"].idxmax()]
    peak_hour = {
        "hour": _iso(peak["hour"]),
        "votes_cast": int(peak["votes_cast"]),
        "vote_velocity": float(peak["vote_velocity"]),
    }
    return latest_hour, peak_hour


def _summary(
    election: Any,
    members: pd.DataFrame,
    status: _Reporting,
    totals: dict[str, Any],
    *,
    offline_after_hours: float,
    by_severity: dict[str, Any],
    by_type: dict[str, int],
    critical_ids: list[str],
    series: pd.DataFrame,
    pattern: pd.DataFrame | None,
) -> dict[str, Any]:
    """The ``summary`` of an election's row: what the dashboard and the report show."""
    latest_hour, peak_hour = _hour_highlights(series)
    ranked = members.sort_values(["anomaly_score", "id"], ascending=[False, True])
    with_voters = members[members["registered_voters"] > 0].sort_values(["participation_rate", "id"])
    return {
        "election": {
            "id": election.id,
            "name": election.name,
            "status": election.status,
            "timezone": election.timezone,
            "start_date": _iso(election.start_date),
            "end_date": _iso(election.end_date),
        },
        "as_of": _iso(status.clock),
        "offline_after_hours": offline_after_hours,
        "constituencies": {
            "total": len(members),
            "reporting": int(status.reporting.sum()),
            "offline": int(status.offline.sum()),
            "never_reported": int(status.never.sum()),
            "with_critical_alerts": len(critical_ids),
        },
        "totals": dict(totals),
        "participation": {
            "median_constituency": round(float(with_voters["participation_rate"].median()), 4)
            if len(with_voters)
            else 0.0,
            "lowest": [_brief(r) for r in with_voters.head(5).itertuples()],
            "highest": [_brief(r) for r in with_voters.iloc[::-1].head(5).itertuples()],
        },
        "open_alerts": {s.value: int(by_severity.get(s, 0)) for s in Severity},
        "open_alerts_by_rule": by_type,
        "most_anomalous": [_brief(r) for r in ranked[ranked["anomaly_score"] > 0].head(5).itertuples()],
        "constituencies_with_critical_alerts": critical_ids[:20],
        "offline_constituencies": sorted(members.loc[status.offline, "id"])[:20],
        "latest_hour": latest_hour,
        "peak_hour": peak_hour,
        "vote_share_by_local_hour": [float(v) for v in pattern["vote_share"]] if pattern is not None else [],
    }


def compute_election_metrics(engine: Engine, offline_after_hours: float) -> list[dict[str, Any]]:
    """One dict of :data:`FIGURES` per election, ordered by election id."""
    if offline_after_hours <= 0:
        raise ValueError("offline_after_hours must be positive")
    with engine.connect() as conn:
        elections = conn.execute(
            select(
                Election.id, Election.name, Election.status, Election.timezone, Election.start_date, Election.end_date
            ).order_by(Election.id)
        ).all()
    constituencies = _constituencies(engine)
    alerts = _open_alerts(engine)
    return [
        election_figures(engine, e, constituencies[constituencies["election_id"] == e.id], alerts, offline_after_hours)
        for e in elections
    ]


def _differs(a: Any, b: Any) -> bool:
    if isinstance(a, float) or isinstance(b, float):
        return a is None or b is None or abs(float(a) - float(b)) > 1e-9
    return a != b


def publish_election_metrics(engine: Engine, offline_after_hours: float) -> ElectionMetricsSummary:
    """Compute every election's figures and write the rows that changed (see module docstring)."""
    rows = compute_election_metrics(engine, offline_after_hours)
    cols = [ElectionMetrics.__table__.c[c] for c in ["election_id", *FIGURES]]
    with engine.connect() as conn:
        existing = {r.election_id: r._mapping for r in conn.execute(select(*cols))}
        totals = dict(conn.execute(select(Election.id, Election.total_constituencies)).tuples().all())
    now = utcnow()
    inserts, updates = [], []
    for row in rows:
        have = existing.get(row["election_id"])
        if have is None:
            inserts.append({**row, "created_at": now, "updated_at": now})
        elif any(_differs(have[c], row[c]) for c in FIGURES):
            updates.append({**row, "updated_at": now})
    wrong_totals = [r for r in rows if totals.get(r["election_id"]) != r["total_constituencies"]]
    with engine.begin() as conn:
        insert_ignore(conn, ElectionMetrics.__table__, inserts, ["election_id"])
        update_by_key(conn, ElectionMetrics.__table__, updates, ["election_id"], FIGURES + ["updated_at"])
        for r in wrong_totals:
            conn.execute(
                update(Election.__table__)
                .where(Election.id == r["election_id"])
                .values(total_constituencies=r["total_constituencies"], updated_at=now)
            )
    return ElectionMetricsSummary(
        rows=rows,
        inserted=len(inserts),
        updated=len(updates),
        unchanged=len(rows) - len(inserts) - len(updates),
        total_constituencies_fixed=len(wrong_totals),
    )


def stored_election_metrics(engine: Engine, election_id: str) -> dict[str, Any]:
    """The stored ``election_metrics`` row of an election (what the dashboard serves)."""
    with engine.connect() as conn:
        row = conn.execute(select(ElectionMetrics.__table__).where(ElectionMetrics.election_id == election_id)).first()
        known = conn.execute(select(Election.id).where(Election.id == election_id)).first()
    if known is None:
        raise LookupError(f"no election with id {election_id!r}")
    if row is None:
        raise LookupError(
            f"election {election_id!r} has no metrics yet: run the pipeline (election-pipeline run) first"
        )
    return dict(row._mapping)


def dashboard_summary(engine: Engine) -> dict[str, Any]:
    """The all-elections dashboard (docs/data-model.md#metrics), read live:
    elections by status, constituencies (and contracts no reference file knows), totals,
    participation (over constituencies with registered voters), open alerts by severity and rule, files and rejected lines, and one line per election
    from ``election_metrics``."""
    with engine.connect() as conn:
        elections = conn.execute(select(Election.id, Election.name, Election.status).order_by(Election.id)).all()
        stored = {r.election_id: r for r in conn.execute(select(ElectionMetrics.__table__))}
        c = conn.execute(
            select(
                func.count(),
                func.coalesce(func.sum(Constituency.registered_voters), 0),
                func.coalesce(func.sum(Constituency.bulletins_issued), 0),
                func.coalesce(func.sum(Constituency.votes_cast), 0),
                func.coalesce(func.sum(Constituency.transaction_count), 0),
            )
        ).one()
        unknown = conn.execute(select(func.count()).where(Constituency.in_reference.is_(False))).scalar_one()
        counted_votes = conn.execute(
            select(func.coalesce(func.sum(Constituency.votes_cast), 0)).where(Constituency.registered_voters > 0)
        ).scalar_one()
        open_sev = dict(
            conn.execute(
                select(Alert.severity, func.count()).where(Alert.status.in_(OPEN_STATUSES)).group_by(Alert.severity)
            )
            .tuples()
            .all()
        )
        open_rule = dict(
            conn.execute(select(Alert.type, func.count()).where(Alert.status.in_(OPEN_STATUSES)).group_by(Alert.type))
            .tuples()
            .all()
        )
        all_status = dict(conn.execute(select(Alert.status, func.count()).group_by(Alert.status)).tuples().all())
        files = dict(
            conn.execute(select(FileProcessingJob.status, func.count()).group_by(FileProcessingJob.status))
            .tuples()
            .all()
        )
        rejected = conn.execute(select(func.count()).select_from(RejectedRow)).scalar_one()
        last = conn.execute(select(func.max(HourlyStats.timestamp))).scalar_one()
    by_status: dict[str, int] = {}
    for e in elections:
        by_status[e.status] = by_status.get(e.status, 0) + 1
    per_election = []
    for e in elections:
        m = stored.get(e.id)
        per_election.append(
            {
                "id": e.id,
                "name": e.name,
                "status": e.status,
                "participation_rate": float(m.participation_rate) if m else None,
                "constituencies": int(m.total_constituencies) if m else None,
                "reporting": int(m.constituencies_reporting) if m else None,
                "offline": int(m.constituencies_offline) if m else None,
                "open_critical_alerts": int(m.open_alerts_critical) if m else None,
            }
        )
    total, registered, bulletins, votes, transactions = (int(v) for v in c)
    return {
        "elections": len(elections),
        "elections_by_status": dict(sorted(by_status.items())),
        "constituencies": total,
        "unknown_constituencies": int(unknown),
        "registered_voters": registered,
        "bulletins_issued": bulletins,
        "votes_cast": votes,
        "transaction_count": transactions,
        "participation_rate": _participation(int(counted_votes), registered),
        "open_alerts": {s.value: int(open_sev.get(s, 0)) for s in Severity},
        "open_alerts_by_rule": {str(k): int(v) for k, v in sorted(open_rule.items())},
        "alerts_by_status": {str(k): int(v) for k, v in sorted(all_status.items())},
        "files": {str(k): int(v) for k, v in sorted(files.items())},
        "rejected_lines": int(rejected),
        "last_activity": _iso(last),
        "per_election": per_election,
    }
