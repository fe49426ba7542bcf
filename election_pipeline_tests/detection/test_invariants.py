"""The critical rules on hand-built frames, each at its edge (exactly at the threshold does
not fire, one past it does)."""

from datetime import datetime, timedelta

import pandas as pd

from election_pipeline.detection.context import constituency_windows
from election_pipeline.detection.invariants import (
    bulletins_exceed_registered,
    outside_voting_window,
    unknown_constituency,
    vote_after_close,
    votes_exceed_bulletins,
)

from .frames import END, START, constituencies, elections, hourly, late, totals

MS = timedelta(milliseconds=1)


def test_votes_equal_to_bulletins_is_fine_one_more_is_critical():
    h7, h8 = datetime(2024, 9, 6, 7), datetime(2024, 9, 6, 8)
    equal = hourly([{"constituency_id": "A", "hour": h7, "bulletins_issued": 5, "votes_cast": 5}])
    assert votes_exceed_bulletins(equal) == []

    over = hourly([{"constituency_id": "A", "hour": h7, "bulletins_issued": 5, "votes_cast": 6}])
    [f] = votes_exceed_bulletins(over, constituencies([("A", 100)]))
    assert (f.rule, f.severity, f.statistic, f.threshold) == ("votes_exceed_bulletins", "critical", 1.0, 0.0)
    assert f.hours == [h7] and (f.window_start, f.window_end) == (h7, h8)
    assert f.figures["max_excess_votes"] == 1 and f.evidence_kind == "vote"
    assert "District A" in f.title


def test_votes_exceed_bulletins_is_cumulative():
    # Hour 8 has more votes than bulletins, but bulletins issued in hour 7 cover them.
    h7, h8, h9 = (datetime(2024, 9, 6, h) for h in (7, 8, 9))
    frame = hourly(
        [
            {"constituency_id": "A", "hour": h7, "bulletins_issued": 10, "votes_cast": 4},
            {"constituency_id": "A", "hour": h8, "bulletins_issued": 0, "votes_cast": 6},
            {"constituency_id": "A", "hour": h9, "bulletins_issued": 0, "votes_cast": 3},
        ]
    )
    [f] = votes_exceed_bulletins(frame)
    assert f.hours == [h9]  # 13 voters for 10 bulletins only at the end of hour 9
    assert f.figures["cumulative_votes_at_first_hour"] == 13
    assert f.figures["cumulative_bulletins_at_first_hour"] == 10


def test_participation_exactly_100_percent_is_allowed_above_is_critical():
    c = constituencies([("A", 10), ("B", 10), ("Z", 0)])
    t = totals(
        [
            {"constituency_id": "A", "bulletins_issued": 10, "votes_cast": 10},
            {"constituency_id": "B", "bulletins_issued": 11, "votes_cast": 9},
            {"constituency_id": "Z", "bulletins_issued": 50, "votes_cast": 50},  # no register: skipped
        ]
    )
    [f] = bulletins_exceed_registered(c, t)
    assert (f.constituency_id, f.severity, f.statistic, f.threshold) == ("B", "critical", 11.0, 10.0)
    assert f.figures == {"bulletins_issued": 11, "voters": 9, "registered_voters": 10}


def test_vote_exactly_at_finish_voting_is_not_after_the_close():
    finish = datetime(2024, 9, 8, 17, 0)
    t = totals([{"constituency_id": "A", "voting_finished": finish}, {"constituency_id": "B"}])
    at_close = late([("A", "t1", finish, "vote")])
    assert vote_after_close(at_close, t) == []

    frame = late(
        [
            ("A", "t1", finish, "vote"),
            ("A", "t2", finish + MS, "vote"),
            ("A", "t3", finish + timedelta(minutes=30), "blindSigIssue"),
            ("A", "t4", finish + timedelta(minutes=40), "vote", True),  # rejected: the contract did its job
            ("B", "t5", finish + timedelta(hours=1), "vote"),  # B never finished voting
        ]
    )
    [f] = vote_after_close(frame, t)
    assert (f.rule, f.severity, f.constituency_id) == ("vote_after_close", "critical", "A")
    assert f.evidence_tx_ids == ["t2", "t3"]
    assert (f.statistic, f.figures["votes"], f.figures["bulletin_transactions"]) == (2.0, 1, 1)
    assert f.hours == [datetime(2024, 9, 8, 17)]


def test_outside_voting_window_edges():
    c = constituencies([("A", 100), ("X", 0)])
    c.loc[c["id"] == "X", "election_id"] = None  # an unknown contract has no window
    windows = constituency_windows(c, elections())
    inside = late([("A", "t1", START, "vote"), ("A", "t2", END - MS, "blindSigIssue")])
    assert outside_voting_window(inside, windows) == []

    frame = late(
        [
            ("A", "early", START - MS, "blindSigIssue"),
            ("A", "late", END, "vote"),
            ("A", "rejected", END + timedelta(minutes=5), "vote", True),
            ("X", "x1", END + timedelta(hours=2), "vote"),
        ]
    )
    found = {f.window_key: f for f in outside_voting_window(frame, windows, c)}
    assert set(found) == {"before", "after"}
    assert found["before"].evidence_tx_ids == ["early"] and found["after"].evidence_tx_ids == ["late"]
    assert found["after"].figures["timezone"] == "Europe/Moscow"
    assert "20:00 local" in found["after"].description
    assert all(f.severity == "critical" and f.constituency_id == "A" for f in found.values())


def test_unknown_constituency_warns_with_its_transaction_count():
    c = constituencies([("A", 100)])
    unknown = constituencies([("X", 0)], election=None)
    frame = pd.concat([c, unknown], ignore_index=True)
    t = totals([{"constituency_id": "X", "transaction_count": 7}])
    [f] = unknown_constituency(frame, t)
    assert (f.constituency_id, f.severity, f.statistic) == ("X", "warning", 7.0)
