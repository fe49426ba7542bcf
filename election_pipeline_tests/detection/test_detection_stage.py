"""Detection through the real stages: hand-built export files in ``input/``, ingested into a
real DuckDB file and SQLite database, then ``publish_metrics`` at a chosen instant.

Covers what the frames alone cannot: the window rules' millisecond edges as the raw store
sees them, the evidence transaction ids, the election's time zone read from the database,
and ``constituency_offline`` firing as time passes with no new file.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from election_pipeline.db.models import HourlyStats
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.stages.conftest import C1, C2, C3, C4, at, bsi, file_name, simple, vote

ELECTION = "E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"
AFTER = datetime(2024, 9, 10)  # long after the election


def _publish(ws, now: datetime, thresholds: DetectionThresholds = THRESHOLDS):
    publish_hourly_stats(ws.duck, ws.engine)
    return publish_metrics(ws.duck, ws.engine, thresholds, now=now)


def _by_rule(findings, rule):
    return [f for f in findings if f.rule == rule]


def test_vote_after_close_and_outside_window_edges_in_the_raw_store(ws):
    ws.write_reference([ELECTION], [f"{C1},E1,Riverside,North,urban,10,active"])
    ws.drop(file_name(C1, 5), [simple("S1", at(5, 0), "startVoting"), bsi("B1", at(5, 10), 6)])
    ws.drop(
        file_name(C1, 16, day=8),
        [
            simple("F1", at(16, 0, day=8), "finishVoting"),
            vote("AT", at(16, 0, day=8), "K1"),  # at the finishVoting instant: not after it
            vote("L1", at(16, 0, 0, 1, day=8), "K2"),  # 1 ms later: after the close
            vote("R1", at(16, 30, day=8), "K3", rejected=True),  # rejected by the contract: fine
        ],
    )
    ws.drop(file_name(C1, 17, day=8), [vote("END", at(17, 0, day=8), "K4")])  # 20:00 local: outside
    ws.ingest()
    findings = _publish(ws, AFTER).findings

    [after_close] = _by_rule(findings, "vote_after_close")
    assert after_close.evidence_tx_ids == ["L1", "END"]
    assert after_close.figures["finish_voting_at"] == "2024-09-08T16:00:00"
    [outside] = _by_rule(findings, "outside_voting_window")
    assert (outside.window_key, outside.evidence_tx_ids) == ("after", ["END"])
    assert outside.figures["timezone"] == "Europe/Moscow"
    assert ws.constituency(C1)["anomaly_score"] == 1.0


def test_evidence_ids_are_the_transactions_behind_the_alert(ws):
    ws.write_reference([ELECTION], [f"{c},E1,D{c},North,urban,1000,active" for c in (C1, C2, C3, C4)])
    lines = [bsi("B0", at(9, 1), 2), vote("V0", at(9, 2), "K0")]
    lines += [vote(f"X{i}", at(9, 10 + i), f"Bad{i}", rejected=True) for i in range(5)]
    ws.drop(file_name(C1, 9), lines)
    ws.ingest()
    findings = _publish(ws, AFTER).findings
    [f] = _by_rule(findings, "high_rejection_rate")
    assert f.constituency_id == C1 and f.statistic == round(5 / 7, 4)
    assert f.evidence_tx_ids == [f"X{i}" for i in range(5)]  # only the rejected ones, oldest first
    with ws.engine.connect() as conn:
        count = conn.execute(
            select(HourlyStats.anomaly_count).where(
                HourlyStats.constituency_id == C1, HourlyStats.hour == datetime(2024, 9, 6, 9)
            )
        ).scalar_one()
    assert count >= 1


def test_offline_fires_from_the_schedule_with_no_new_file(ws):
    """Four constituencies vote steadily from 06:00 UTC; C1's last file is hour 07. Judged
    at later instants with nothing new in the store, C1 becomes offline once two whole
    hours of silence have passed while its peers kept voting."""
    ids = (C1, C2, C3, C4)
    ws.write_reference([ELECTION], [f"{c},E1,D{c},North,urban,1024,active" for c in ids])
    for c in ids:
        for h in range(6, 10):
            if c == C1 and h >= 8:
                continue
            lines = []
            for i in range(8):
                lines.append(bsi(f"{c}B{h}{i}", at(h, 2 * i + 1), 1))
                lines.append(vote(f"{c}V{h}{i}", at(h, 2 * i + 2), f"{c}K{h}{i}"))
            ws.drop(file_name(c, h), lines)
    ws.ingest()

    assert _by_rule(_publish(ws, datetime(2024, 9, 6, 9, 10)).findings, "constituency_offline") == []
    findings = _publish(ws, datetime(2024, 9, 6, 10, 10)).findings
    [f] = _by_rule(findings, "constituency_offline")
    assert f.constituency_id == C1 and f.statistic == 2.0 and f.figures["ongoing"] is True
    assert f.expected == 16.0  # 2 hours × 8 votes, from its peers (and from its own turnout)
    assert f.evidence_tx_ids == [f"{C1}V77"]  # its last transaction before the silence
    assert "11:00 local" in f.title  # 08:00 UTC in Moscow
    # After the window closed, the same silence (it never came back) is a longer run.
    later = _by_rule(_publish(ws, AFTER).findings, "constituency_offline")
    assert [g.fingerprint for g in later] == [f.fingerprint]
