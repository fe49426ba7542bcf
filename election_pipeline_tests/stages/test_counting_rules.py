"""Counting rules of docs/input-format.md#counting-rules, end to end.

Each test writes hand-built export files into ``input/``, runs the real stages
(``ingest_folder`` -> ``publish_hourly_stats`` -> ``publish_metrics``) and reads the figures
back from the operational database. Tuples from ``ws.hourly_figures`` are
(transaction_count, bulletins_issued, votes_cast, revote_count, rejected_count).
"""

from __future__ import annotations

from datetime import datetime

from .conftest import (
    C1,
    C2,
    C3,
    C4,
    add_voters,
    at,
    bsi,
    export_line,
    file_name,
    hour,
    rollback_of,
    simple,
    vote,
)


def test_rejected_blindsigissue_and_vote_stored_but_not_counted(ws):
    ws.drop(
        file_name(C1, 8),
        [
            bsi("B1", at(8, 1), 2),  # accepted: 2 bulletins
            bsi("B2", at(8, 2), 3, rejected=True),  # FAIL_B2_blindSig: 0 bulletins
            vote("V1", at(8, 3), "K1"),  # accepted vote of K1
            vote("V2", at(8, 4), "K2", rejected=True),  # FAIL_..._vote: not a vote
        ],
    )
    ws.run()

    # 4 standing transactions; bulletins 2 (B2 rejected); votes 1 (V2 rejected); rejected B2+V2 = 2
    assert ws.hourly_figures(C1) == {hour(8): (4, 2, 1, 0, 2)}
    txs = ws.transactions()
    assert {t: (r["type"], r["is_rejected"], r["bulletins"]) for t, r in txs.items()} == {
        "B1": ("blindSigIssue", False, 2),
        "B2": ("blindSigIssue", True, 3),  # stored with its 3 bulletins, flagged rejected
        "V1": ("vote", False, 0),
        "V2": ("vote", True, 0),
    }
    c = ws.constituency(C1)
    # same figures over the whole election: 2 bulletins, 1 voter, 0 revotes, 4 tx, 2 rejected
    assert (c["bulletins_issued"], c["votes_cast"], c["revote_count"], c["transaction_count"], c["rejected_count"]) == (
        2,
        1,
        0,
        4,
        2,
    )


def test_one_blindsigissue_counts_its_array_elements(ws):
    ws.drop(
        file_name(C1, 9),
        [
            bsi("B1", at(9, 5), 3),  # one line, 3 bulletins
            bsi("B2", at(9, 6), 1),  # one line, 1 bulletin
            bsi("B3", at(9, 7), 0),  # an empty data array: 0 bulletins
        ],
    )
    ws.run()
    # 3 transaction lines, 3 + 1 + 0 = 4 bulletins
    assert ws.hourly_figures(C1, "transaction_count", "bulletins_issued", "cumulative_bulletins") == {
        hour(9): (3, 4, 4)
    }
    assert ws.constituency(C1)["bulletins_issued"] == 4


def test_votes_are_distinct_keys_and_revotes_count_in_their_own_hour(ws):
    ws.drop(
        file_name(C1, 8),
        [
            vote("V1", at(8, 10), "K1"),  # K1 first vote -> vote of hour 8
            vote("V2", at(8, 20), "K2"),  # K2 first vote -> vote of hour 8
            vote("V3", at(8, 30), "K1"),  # K1 again, same hour -> revote of hour 8
        ],
    )
    ws.drop(
        file_name(C1, 9),
        [
            vote("V4", at(9, 10), "K1"),  # K1 third vote -> revote of hour 9
            vote("V5", at(9, 20), "K3"),  # K3 first vote -> vote of hour 9
            vote("V6", at(9, 30), "K2"),  # K2 second vote -> revote of hour 9
        ],
    )
    ws.run()
    # hour 8: 3 tx, 0 bulletins, votes K1+K2 = 2, revote V3 = 1, 0 rejected
    # hour 9: 3 tx, 0 bulletins, votes K3 = 1, revotes V4+V6 = 2, 0 rejected
    assert ws.hourly_figures(C1) == {hour(8): (3, 0, 2, 1, 0), hour(9): (3, 0, 1, 2, 0)}
    # cumulative voters: 2 after hour 8, 2 + 1 = 3 after hour 9
    assert ws.hourly_figures(C1, "cumulative_votes") == {hour(8): (2,), hour(9): (3,)}
    c = ws.constituency(C1)
    # 3 distinct keys; 6 accepted votes - 3 voters = 3 revotes; 6 transactions
    assert (c["votes_cast"], c["revote_count"], c["transaction_count"]) == (3, 3, 6)


def test_vote_counted_in_hour_of_first_accepted_vote(ws):
    ws.drop(
        file_name(C1, 8),
        [
            vote("V1", at(8, 50), "K1", rejected=True),  # K1's first vote is rejected: not a vote
            vote("V2", at(8, 55), "K2"),  # K2 votes in hour 8
        ],
    )
    ws.drop(
        file_name(C1, 9),
        [
            vote("V3", at(9, 5), "K1"),  # K1's first *accepted* vote -> vote of hour 9
            vote("V4", at(9, 6), "K2", rejected=True),  # K2 rejected retry: neither vote nor revote
            vote("V5", at(9, 7), "K1"),  # K1 again -> revote of hour 9
        ],
    )
    ws.run()
    # hour 8: 2 tx, votes K2 = 1, revotes 0, rejected V1 = 1
    # hour 9: 3 tx, votes K1 = 1, revote V5 = 1, rejected V4 = 1
    assert ws.hourly_figures(C1) == {hour(8): (2, 0, 1, 0, 1), hour(9): (3, 0, 1, 1, 1)}
    c = ws.constituency(C1)
    # K1 + K2 = 2 voters, accepted votes V2, V3, V5 = 3 -> 1 revote; rejected V1 + V4 = 2
    assert (c["votes_cast"], c["revote_count"], c["rejected_count"]) == (2, 1, 2)


def _rollback_files():
    v1 = vote("V1", at(10, 5), "K1")
    first = [
        v1,  # rolled back by the later file
        vote("V2", at(10, 6), "K2"),
        bsi("B1", at(10, 7), 2),
    ]
    later = [
        rollback_of(v1),  # cancels V1 (ts of the original, in hour 10)
        vote("V3", at(11, 1), "K3"),
    ]
    return first, later


def _assert_rollback_figures(ws):
    # hour 10: V2 + B1 = 2 tx (V1 cancelled), 2 bulletins, votes K2 = 1
    # hour 11: V3 = 1 tx, votes K3 = 1 (the rollback line is not a transaction)
    assert ws.hourly_figures(C1) == {hour(10): (2, 2, 1, 0, 0), hour(11): (1, 0, 1, 0, 0)}
    assert ws.hourly_figures(C1, "cumulative_votes") == {hour(10): (1,), hour(11): (2,)}
    c = ws.constituency(C1)
    # V2, B1, V3 stand -> 3 tx; voters K2 + K3 = 2; bulletins 2
    assert (c["transaction_count"], c["votes_cast"], c["bulletins_issued"]) == (3, 2, 2)
    txs = ws.transactions()
    assert sorted(txs) == ["B1", "V1", "V2", "V3"]  # V1 is kept, only flagged
    assert {t: r["is_rolled_back"] for t, r in txs.items()} == {
        "B1": False,
        "V1": True,
        "V2": False,
        "V3": False,
    }


def test_rollback_in_a_later_file_cancels_an_earlier_transaction(ws):
    first, later = _rollback_files()
    ws.drop(file_name(C1, 10), first)
    ws.run()
    # before the rollback arrives: V1, V2, B1 = 3 tx, 2 votes
    assert ws.hourly_figures(C1) == {hour(10): (3, 2, 2, 0, 0)}
    ws.drop(file_name(C1, 11), later)
    ws.run()
    _assert_rollback_figures(ws)


def test_rollback_file_processed_before_the_transaction_file(ws):
    first, later = _rollback_files()
    ws.drop(file_name(C1, 11), later)
    ws.run()
    # only V3 so far; the rollback waits in the raw store for V1
    assert ws.hourly_figures(C1) == {hour(11): (1, 0, 1, 0, 0)}
    ws.drop(file_name(C1, 10), first)
    ws.run()
    _assert_rollback_figures(ws)


def test_rollback_in_the_same_run_whatever_the_file_order(ws):
    first, later = _rollback_files()
    # name order: the "0900" file (holding the rollback) is read before the "1000" file
    ws.drop(file_name(C1, 9, tag="-late-export"), later)
    ws.drop(file_name(C1, 10), first)
    ws.run()
    _assert_rollback_figures(ws)


def test_rollback_of_an_hours_only_transaction_removes_that_hour(ws):
    lone = bsi("B9", at(13, 30), 5)
    ws.drop(file_name(C1, 12), [vote("V1", at(12, 0), "K1")])
    ws.drop(file_name(C1, 13), [lone])
    ws.run()
    assert ws.hourly_figures(C1) == {hour(12): (1, 0, 1, 0, 0), hour(13): (1, 5, 0, 0, 0)}
    ws.drop(file_name(C1, 14), [rollback_of(lone)])
    ws.run()
    # hour 13 had B9 only; with B9 cancelled the hour holds nothing and its row is gone
    assert ws.hourly_figures(C1) == {hour(12): (1, 0, 1, 0, 0)}
    # cumulative bulletins after hour 12: 0
    assert ws.hourly_figures(C1, "cumulative_bulletins") == {hour(12): (0,)}
    assert ws.constituency(C1)["bulletins_issued"] == 0


def test_same_transaction_in_two_files_counts_once(ws):
    shared = vote("V2", at(8, 59, 30), "K2")
    ws.drop(file_name(C1, 8), [vote("V1", at(8, 10), "K1"), shared, bsi("B1", at(8, 20), 2)])
    # an overlapping export repeats V2 and B1 and adds V3
    ws.drop(file_name(C1, 8, tag="-overlap"), [shared, bsi("B1", at(8, 20), 2), vote("V3", at(8, 40), "K3")])
    summary = ws.run()
    # distinct tx: V1, V2, B1, V3 = 4; bulletins 2 (B1 once); voters K1, K2, K3 = 3
    assert ws.hourly_figures(C1) == {hour(8): (4, 2, 3, 0, 0)}
    assert len(ws.transactions()) == 4
    # file 1: 3 lines, 3 new; file 2: 3 lines, 1 new (V3)
    assert [(o.transactions, o.new_transactions) for o in summary.outcomes] == [(3, 3), (3, 1)]


def test_operations_matched_case_insensitively(ws):
    ws.drop(
        file_name(C1, 8),
        [
            bsi("B1", at(8, 1), 2, spelled="BLINDSIGISSUE"),
            bsi("B2", at(8, 2), 1, spelled="blindsigissue"),
            vote("V1", at(8, 3), "K1", spelled="VOTE"),
            vote("V2", at(8, 4), "K2", spelled="Vote"),
            export_line("S1", "StartVoting", at(8, 0)),
        ],
    )
    ws.run()
    # 5 tx; bulletins 2 + 1 = 3; voters K1, K2 = 2
    assert ws.hourly_figures(C1) == {hour(8): (5, 3, 2, 0, 0)}
    assert {t: r["type"] for t, r in ws.transactions().items()} == {
        "B1": "blindSigIssue",
        "B2": "blindSigIssue",
        "V1": "vote",
        "V2": "vote",
        "S1": "startVoting",
    }
    assert ws.rejected_rows() == []


def test_semicolon_inside_json_string_value(ws):
    ws.drop(
        file_name(C1, 8),
        [
            bsi("B1", at(8, 1), 3, semicolon=True),  # every maskedSig is "ab12;cd34<i>"
            export_line(
                "R1",
                "results",
                at(8, 2),
                params=[{"key": "results", "stringValue": "A;B;C"}],
                diff=[{"key": "RESULTS", "stringValue": "1;2;3"}],
            ),
        ],
    )
    ws.run()
    # B1: 3 bulletins, R1: 1 tx -> 2 tx, 3 bulletins, nothing rejected
    assert ws.hourly_figures(C1) == {hour(8): (2, 3, 0, 0, 0)}
    assert ws.rejected_rows() == []
    # raw_data points at the line in its file (which is kept in processed/), read whole despite the ';'
    assert ws.transactions()["R1"]["raw_data"]["line"] == {"file": file_name(C1, 8), "number": 2}
    assert ws.transactions()["R1"]["type"] == "results"


def test_hour_buckets_are_utc_half_open(ws):
    ws.drop(
        file_name(C1, 8),
        [
            vote("V1", at(8, 0, 0, 0), "K1"),  # 08:00:00.000 -> hour 8 (inclusive start)
            vote("V2", at(8, 59, 59, 999), "K2"),  # 08:59:59.999 -> hour 8
            vote("V3", at(9, 0, 0, 0), "K3"),  # 09:00:00.000 -> hour 9 (exclusive end of hour 8)
            vote("V4", at(7, 59, 59, 999), "K4"),  # 07:59:59.999 -> hour 7
        ],
    )
    ws.run()
    # hour 7: V4; hour 8: V1, V2; hour 9: V3
    assert ws.hourly_figures(C1, "transaction_count", "votes_cast") == {
        hour(7): (1, 1),
        hour(8): (2, 2),
        hour(9): (1, 1),
    }
    txs = ws.transactions()
    assert txs["V2"]["timestamp"] == datetime(2024, 9, 6, 8, 59, 59, 999_000)
    assert txs["V1"]["timestamp"] == datetime(2024, 9, 6, 8, 0, 0)
    # hourly_stats.timestamp = the hour's last transaction: V2 at 08:59:59.999
    assert ws.hourly(C1)[hour(8)]["timestamp"] == datetime(2024, 9, 6, 8, 59, 59, 999_000)


def test_participation_from_reference_addvoterslist_or_none(ws):
    ws.write_reference(
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [
            f"{C1},E1,North,R1,urban,8,active",  # 8 registered in the reference
            f"{C2},E1,South,R1,rural,,active",  # none in the reference: from votersCount
            f"{C3},E1,East,R2,urban,,active",  # none in the reference: from userIdHashes
            f"{C4},E1,West,R2,urban,,active",  # none anywhere
        ],
    )
    ws.drop(
        file_name(C1, 8),
        [
            add_voters("A1", at(8, 0), count=1000),  # ignored: the reference gives 8
            vote("V1", at(8, 10), "K1"),
        ],
    )
    ws.drop(file_name(C1, 9), [vote("V2", at(9, 10), "K2"), vote("V3", at(9, 20), "K3")])
    ws.drop(
        file_name(C2, 8),
        [
            add_voters("A2", at(8, 0), count=5, hashes=3),  # votersCount 5 wins over 3 hashes
            vote("V4", at(8, 10), "K4"),
            vote("V5", at(8, 11), "K5"),
        ],
    )
    ws.drop(
        file_name(C3, 8),
        [
            add_voters("A3", at(8, 0), hashes=3),  # 3 hashes, no votersCount
            add_voters("A4", at(8, 1), hashes=1),  # +1 hash -> 4 registered
            add_voters("A5", at(8, 2), hashes=9, count=9, rejected=True),  # rejected: not counted
            vote("V6", at(8, 10), "K6"),
        ],
    )
    ws.drop(file_name(C4, 8), [vote("V7", at(8, 10), "K7")])
    ws.run()

    def summary(cid):
        c = ws.constituency(cid)
        return c["registered_voters"], c["registered_voters_source"], c["votes_cast"], c["participation_rate"]

    assert summary(C1) == (8, "reference", 3, 37.5)  # 3 / 8 * 100 = 37.5
    assert summary(C2) == (5, "addVotersList", 2, 40.0)  # 2 / 5 * 100 = 40
    assert summary(C3) == (4, "addVotersList", 1, 25.0)  # 1 / (3 + 1) * 100 = 25
    assert summary(C4) == (0, "none", 1, 0.0)  # nobody registered: 0, no division error
    # hourly participation is cumulative: C1 1/8 = 12.5 after hour 8, 3/8 = 37.5 after hour 9
    assert ws.hourly_figures(C1, "cumulative_votes", "participation_rate") == {
        hour(8): (1, 12.5),
        hour(9): (3, 37.5),
    }
    assert ws.hourly_figures(C2, "participation_rate") == {hour(8): (40.0,)}
    assert ws.hourly_figures(C4, "participation_rate") == {hour(8): (0.0,)}
    # hourly rows carry the election of their constituency
    assert {r["election_id"] for r in ws.hourly(C1).values()} == {"E1"}


def test_cumulative_figures_per_hour(ws):
    ws.drop(
        file_name(C1, 8),
        [
            simple("S1", at(8, 0), "startVoting"),
            bsi("B1", at(8, 1), 4),
            vote("V1", at(8, 2), "K1"),
            vote("V2", at(8, 3), "K2"),
        ],
    )
    ws.drop(file_name(C1, 9), [bsi("B2", at(9, 1), 2, rejected=True), bsi("B3", at(9, 2), 3)])
    # hour 10 has no transaction at all: no row
    ws.drop(
        file_name(C1, 11),
        [vote("V3", at(11, 0), "K3"), vote("V4", at(11, 1), "K1"), simple("F1", at(11, 59), "finishVoting")],
    )
    ws.run()
    cols = (
        "transaction_count",
        "bulletins_issued",
        "cumulative_bulletins",
        "votes_cast",
        "cumulative_votes",
        "revote_count",
        "rejected_count",
    )
    assert ws.hourly_figures(C1, *cols) == {
        # S1, B1, V1, V2 = 4 tx; bulletins 4 (cum 4); voters K1, K2 = 2 (cum 2)
        hour(8): (4, 4, 4, 2, 2, 0, 0),
        # B2 (rejected), B3 = 2 tx; bulletins 3 (cum 4 + 3 = 7); no vote (cum 2); 1 rejected
        hour(9): (2, 3, 7, 0, 2, 0, 1),
        # V3, V4, F1 = 3 tx; no bulletin (cum 7); K3 new (cum 3), K1 again = 1 revote
        hour(11): (3, 0, 7, 1, 3, 1, 0),
    }
    # velocities per minute over the hour: 4 bulletins / 60 = 0.0667, 2 votes / 60 = 0.0333
    row = ws.hourly(C1)[hour(8)]
    assert (row["bulletin_velocity"], row["vote_velocity"]) == (0.0667, 0.0333)


def test_late_file_with_an_earlier_vote_moves_the_first_vote(ws):
    ws.drop(file_name(C1, 9), [vote("V2", at(9, 0), "K1")])
    ws.run()
    assert ws.hourly_figures(C1) == {hour(9): (1, 0, 1, 0, 0)}  # K1's first vote so far: hour 9
    # a late export brings K1's earlier vote at 08:30
    ws.drop(file_name(C1, 8), [vote("V1", at(8, 30), "K1")])
    ws.run()
    # now V1 (08:30) is K1's first vote -> hour 8; V2 (09:00) becomes a revote of hour 9
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0), hour(9): (1, 0, 0, 1, 0)}
    assert ws.hourly_figures(C1, "cumulative_votes") == {hour(8): (1,), hour(9): (1,)}
    c = ws.constituency(C1)
    assert (c["votes_cast"], c["revote_count"]) == (1, 1)  # 1 key, 2 accepted votes


def test_participation_is_rounded_to_four_decimals(ws):
    ws.write_reference(  # listed without registered voters: from addVotersList (docs/input-format.md#reference-data)
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,,active"],
    )
    ws.drop(file_name(C1, 8), [add_voters("A1", at(8, 0), count=3), vote("V1", at(8, 1), "K1")])
    ws.run()
    # 1 / 3 * 100 = 33.3333...
    assert ws.constituency(C1)["participation_rate"] == 33.3333
    assert ws.hourly_figures(C1, "participation_rate") == {hour(8): (33.3333,)}


def test_rolled_back_addvoterslist_and_rejected_bulletins_do_not_register_or_count(ws):
    ws.write_reference(  # listed without registered voters: from addVotersList (docs/input-format.md#reference-data)
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,,active"],
    )
    a1 = add_voters("A1", at(8, 0), count=50)
    ws.drop(
        file_name(C1, 8),
        [
            a1,
            add_voters("A2", at(8, 1), hashes=4),
            vote("V1", at(8, 2), "K1"),
        ],
    )
    ws.drop(file_name(C1, 9), [rollback_of(a1)])
    ws.run()
    c = ws.constituency(C1)
    # A1 (50) is rolled back: registered = A2's 4 hashes; 1 / 4 * 100 = 25; tx A2 + V1 = 2
    assert (c["registered_voters"], c["participation_rate"], c["transaction_count"]) == (4, 25.0, 2)
