"""Constituency-metrics stage: totals, participation, detection and the anomaly score.

Writes onto ``constituencies`` the whole-election figures (bulletins issued, distinct
voters, revotes, transactions, rejected transactions, participation = voters / registered
× 100, registered voters and their source, anomaly score) and onto ``hourly_stats`` the
``anomaly_count`` of every hour. Returns the detection findings for the alerts stage.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd
from sqlalchemy import Engine, func, select, update

from election_pipeline.analytics.aggregation import constituency_totals, evidence_tx_ids
from election_pipeline.db.bulk import update_by_key
from election_pipeline.db.models import Constituency, Election, HourlyStats, utcnow
from election_pipeline.detection import rules
from election_pipeline.detection.findings import Finding
from election_pipeline.detection.score import anomaly_counts, anomaly_scores

from .hourly import compute_hourly, load_constituencies, participation, registered_voters

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
    hourly: pd.DataFrame, constituencies: pd.DataFrame, totals: pd.DataFrame,
    spike: rules.SpikeThresholds = rules.SpikeThresholds(),
) -> list[Finding]:
    """Run every rule; ``constituencies`` needs ``registered`` (see :func:`registered_voters`)."""
    findings: list[Finding] = []
    findings += rules.votes_exceed_bulletins(hourly)
    findings += rules.unusual_spike(hourly, constituencies, spike)
    findings += rules.bulletins_exceed_registered(constituencies, totals)
    findings += rules.unknown_constituency(constituencies, totals)
    return findings


def compute_metrics(
    duck: duckdb.DuckDBPyConnection, engine: Engine, spike: rules.SpikeThresholds = rules.SpikeThresholds()
) -> MetricsSummary:
    """Totals per constituency plus findings (with evidence transaction ids)."""
    totals = constituency_totals(duck)
    constituencies = load_constituencies(engine)
    reg = registered_voters(constituencies, totals)
    info = constituencies.merge(reg, on="id", how="left")
    hourly = compute_hourly(duck, engine)
    findings = detect(hourly, info, totals, spike)
    for f in findings:
        if f.evidence_operation is not None or f.window_start is not None:
            f.evidence_tx_ids = evidence_tx_ids(
                duck, f.constituency_id, f.window_start, f.window_end, f.evidence_operation
            )
    scores = anomaly_scores(findings)

    frame = info.merge(totals, left_on="id", right_on="constituency_id", how="left")
    for col in ("bulletins_issued", "votes_cast", "accepted_votes", "transaction_count", "rejected_count"):
        frame[col] = frame[col].fillna(0).astype("int64")
    frame["revote_count"] = frame["accepted_votes"] - frame["votes_cast"]
    frame["participation_rate"] = [participation(v, r) for v, r in zip(frame["votes_cast"], frame["registered"])]
    frame["anomaly_score"] = [scores.get(cid, 0.0) for cid in frame["id"]]
    return MetricsSummary(frame=frame, findings=findings)


def publish_metrics(
    duck: duckdb.DuckDBPyConnection, engine: Engine, spike: rules.SpikeThresholds = rules.SpikeThresholds()
) -> MetricsSummary:
    """Compute the metrics and write them; only rows whose figures changed are updated."""
    summary = compute_metrics(duck, engine, spike)
    frame = summary.frame
    with engine.connect() as conn:
        current = {
            r.id: r
            for r in conn.execute(select(*[Constituency.__table__.c[c] for c in ["id"] + CONSTITUENCY_FIGURES]))
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
    with engine.connect() as conn:
        hours = conn.execute(
            select(HourlyStats.constituency_id, HourlyStats.hour, HourlyStats.anomaly_count)
        ).all()
    hour_rows = [
        {"constituency_id": cid, "hour": hour, "anomaly_count": counts.get((cid, hour), 0)}
        for cid, hour, have in hours
        if counts.get((cid, hour), 0) != have
    ]
    with engine.begin() as conn:
        update_by_key(conn, Constituency.__table__, rows, ["id"], CONSTITUENCY_FIGURES + ["updated_at"])
        update_by_key(conn, HourlyStats.__table__, hour_rows, ["constituency_id", "hour"], ["anomaly_count"])
        # Keep each election's constituency count true.
        counts_by_election = dict(
            conn.execute(
                select(Constituency.election_id, func.count()).where(Constituency.election_id.is_not(None))
                .group_by(Constituency.election_id)
            ).all()
        )
        for eid, n in counts_by_election.items():
            conn.execute(
                update(Election.__table__).where(Election.id == eid, Election.total_constituencies != n)
                .values(total_constituencies=n, updated_at=utcnow())
            )
    summary.updated = len(rows)
    return summary
