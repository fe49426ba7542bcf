"""The anomaly score, findings' identity and details, windows and time zones, and
run_rules putting them together."""

from datetime import datetime, timedelta

import pytest

from election_pipeline.detection.context import (
    VotingWindow,
    closed_constituencies,
    constituency_windows,
    peer_groups,
)
from election_pipeline.detection.findings import Finding
from election_pipeline.detection.rules import RULES, run_rules
from election_pipeline.detection.score import WEIGHTS, anomaly_counts, anomaly_scores
from election_pipeline.detection.thresholds import DetectionThresholds

from .frames import END, START, constituencies, elections, hourly, totals


def _finding(rule: str, cid: str = "A", strength: float = 1.0, **kw) -> Finding:
    return Finding(
        rule=rule,
        severity=kw.pop("severity", "warning"),
        constituency_id=cid,
        title="t",
        description="d",
        strength=strength,
        **kw,
    )


def test_score_is_one_on_a_critical_invariant_else_one_minus_the_product():
    findings = [
        _finding("unusual_spike", "A", 0.5),  # 1 − 0.6 × 0.5 = 0.7 left
        _finding("night_activity", "A", 1.0),  # × (1 − 0.5) = 0.35 left
        _finding("integer_percentage", "B", 0.5, severity="info"),  # 1 − 0.2 × 0.5
        _finding("votes_exceed_bulletins", "C", severity="critical"),
        _finding("unusual_spike", "C", 0.1),
    ]
    scores = anomaly_scores(findings)
    assert scores == {"A": pytest.approx(0.65), "B": pytest.approx(0.1), "C": 1.0}
    assert WEIGHTS["unusual_spike"] == 0.6 and WEIGHTS["night_activity"] == 0.5


def test_anomaly_counts_per_hour():
    h = datetime(2024, 9, 6, 7)
    counts = anomaly_counts(
        [
            _finding("unusual_spike", hours=[h]),
            _finding("night_activity", hours=[h]),
            _finding("high_rejection_rate", "B", hours=[h]),
        ]
    )
    assert counts == {("A", h): 2, ("B", h): 1}


def test_fingerprint_and_details():
    f = _finding(
        "unusual_spike",
        window_key="2024-09-06T07",
        statistic=4.2,
        expected=3.0,
        threshold=3.5,
        evidence_tx_ids=[f"t{i}" for i in range(30)],
        higher_is_worse=False,
    )
    assert f.fingerprint == "unusual_spike|A|2024-09-06T07"
    assert _finding("low_participation").fingerprint == "low_participation|A|all"
    d = f.details()
    assert (d["rule"], d["statistic"], d["expected"], d["threshold"], d["worse_when"]) == (
        "unusual_spike",
        4.2,
        3.0,
        3.5,
        "lower",
    )
    assert len(d["evidence_tx_ids"]) == 20
    with pytest.raises(ValueError, match="severity must be one of"):
        _finding("x", severity="high")


def test_windows_local_time_and_whole_hours():
    w = VotingWindow("e", datetime(2024, 9, 6, 2, 30), datetime(2024, 9, 8, 14, 30), "Asia/Kolkata")
    assert w.local(datetime(2024, 9, 6, 2, 30)) == datetime(2024, 9, 6, 8, 0)
    assert w.first_day_end == datetime(2024, 9, 6, 18, 30)  # midnight in Kolkata
    # whole hours inside the window and before now: 03:00 and 04:00 (02:30 starts mid-hour)
    assert w.full_hours(datetime(2024, 9, 6, 5, 10)) == [datetime(2024, 9, 6, 3), datetime(2024, 9, 6, 4)]
    assert w.elapsed_share(datetime(2024, 9, 1)) == 0.0 and w.elapsed_share(datetime(2024, 9, 9)) == 1.0


def test_closed_and_peers():
    c = constituencies(
        [("A", 100, "N"), ("B", 100, "N"), ("C", 100, "N"), ("D", 100, "N"), ("E", 100, "S"), ("Z", 0, "S")]
    )
    windows = constituency_windows(c, elections())
    t = totals([{"constituency_id": "A", "voting_finished": datetime(2024, 9, 8, 17)}])
    assert closed_constituencies(c, t, windows, END - timedelta(hours=1)) == {"A"}
    assert closed_constituencies(c, t, windows, END) == {"A", "B", "C", "D", "E", "Z"}
    peers = peer_groups(c)
    assert peers["A"] == ["B", "C", "D"]  # same region, three others
    assert peers["E"] == ["A", "B", "C", "D"]  # alone in its region: the whole election
    assert "Z" not in peers  # no register


def test_run_rules_on_an_ordinary_election_with_one_broken_invariant():
    """A small election where every constituency is ordinary except A, whose votes exceed
    its bulletins: run_rules finds that and nothing on the others."""
    ids = ["A", "B", "C", "D", "E"]
    rows = []
    for k in range(60):
        hour = START + timedelta(hours=k)
        for cid in ids:
            rows.append({"constituency_id": cid, "hour": hour, "bulletins_issued": 5, "votes_cast": 5})
    rows.append({"constituency_id": "A", "hour": START + timedelta(hours=60), "votes_cast": 3})
    frame = hourly(rows)
    c = constituencies([(cid, 517) for cid in ids])  # 300/517 = 58.03%: not a whole percentage
    t = totals(
        [
            {
                "constituency_id": cid,
                "bulletins_issued": 300,
                "votes_cast": 303 if cid == "A" else 300,
                "transaction_count": 600,
                "voting_finished": END,
            }
            for cid in ids
        ]
    )
    findings = run_rules(frame, c, t, DetectionThresholds(), elections=elections(), now=END + timedelta(days=1))
    assert {(f.rule, f.constituency_id) for f in findings} == {("votes_exceed_bulletins", "A")}
    assert set(RULES) >= {f.rule for f in findings}
