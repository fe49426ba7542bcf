"""``conflicting_transaction``: one transaction id exported with two different contents.

On hand-built frames (exact figures, titles, who gets the alert), then through the real
stages: the conflicting copies are written by hand into the real ``raw_conflicts`` table of
a DuckDB file (as the ingest stores them), ``publish_metrics`` then ``publish_alerts`` run on
a real operational database, and the alert must carry every copy and stay present on later
runs while the conflict stands.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.db.models import Alert
from election_pipeline.detection.conflicts import CONFLICT_COLUMNS, MAX_COPIES_LISTED, conflicting_transaction
from election_pipeline.detection.context import VotingWindow
from election_pipeline.detection.rules import RULES, run_rules
from election_pipeline.detection.score import anomaly_scores
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.detection import frames as fx
from election_pipeline_tests.stages.conftest import C1, C2, at, bsi, file_name, vote

T = datetime(2024, 9, 6, 9, 10, 0, 250000)  # 09:10:00.250 UTC


def copy(tx_id: str = "T1", *, stored: bool, cid: str = "A", source: str, line: int, **content: Any) -> dict:
    """One copy of ``tx_id``: a vote by K1 at ``T``, accepted, unless ``content`` says otherwise."""
    row = {
        "tx_id": tx_id,
        "stored": stored,
        "constituency_id": cid,
        "tx_type": 104,
        "version": 4,
        "ts": T,
        "operation": "vote",
        "sender": "K1",
        "rejected": False,
        "bulletins": 0,
        "voters_added": None,
        "source": source,
        "line_number": line,
        "file_hash": f"hash-{source}",
        "seq": 1 if stored else 2,
    }
    return row | content


def frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=CONFLICT_COLUMNS)


STORED = copy(stored=True, source="A_2024-09-06_0900-1000.csv", line=3)
TAMPERED = copy(stored=False, source="A_2024-09-06_0900-1000_v2.csv", line=7, ts=T + timedelta(minutes=30), sender="K9")


def _figure_copy(row: dict) -> dict:
    """A copy as the alert's figures give it."""
    return {
        "stored": row["stored"],
        "constituency_id": row["constituency_id"],
        "source": row["source"],
        "line_number": row["line_number"],
        "file_hash": row["file_hash"],
        "tx_type": row["tx_type"],
        "version": row["version"],
        "operation": row["operation"],
        "ts": row["ts"].isoformat(timespec="milliseconds"),
        "sender": row["sender"],
        "rejected": row["rejected"],
        "bulletins": row["bulletins"],
        "voters_added": row["voters_added"],
    }


# --------------------------------------------------------------------------------------
# The rule on hand-built frames
# --------------------------------------------------------------------------------------


def test_two_copies_give_one_critical_finding_with_both_as_evidence():
    [f] = conflicting_transaction(frame(STORED, TAMPERED), fx.constituencies([("A", 100)]))
    assert (f.rule, f.severity, f.constituency_id) == ("conflicting_transaction", "critical", "A")
    assert f.title == "Transaction T1 appears twice with different content"
    assert f.fingerprint == "conflicting_transaction|A|T1"
    assert (f.statistic, f.expected, f.threshold, f.strength) == (2.0, 1.0, 1.0, 1.0)
    assert f.evidence_tx_ids == ["T1"] and f.evidence_kind is None
    assert f.hours == [datetime(2024, 9, 6, 9)]
    assert (f.window_start, f.window_end) == (datetime(2024, 9, 6, 9), datetime(2024, 9, 6, 10))
    assert f.figures == {
        "tx_id": "T1",
        "copies_seen": 2,
        "distinct_versions": 2,
        "differing_fields": ["timestamp", "sender"],
        "contracts": ["A"],
        "stored_copy_found": True,
        "counted": False,
        "copies_listed": 2,
        "copies": [_figure_copy(STORED), _figure_copy(TAMPERED)],
    }
    # Explainable from the alert alone: both copies, where they are and what they say.
    assert (
        "Copy 1 (stored first): A_2024-09-06_0900-1000.csv line 3 (file of contract A): type 104, version 4, "
        "operation vote at 2024-09-06 09:10:00.250 UTC, sender K1, accepted (no FAIL), 0 bulletin(s), "
        "voters added none." in f.description
    )
    assert (
        "Copy 2 (differing copy): A_2024-09-06_0900-1000_v2.csv line 7 (file of contract A): type 104, version 4, "
        "operation vote at 2024-09-06 09:40:00.250 UTC, sender K9, accepted (no FAIL)" in f.description
    )
    assert "They differ in: timestamp, sender." in f.description
    assert "No copy of this id is counted in any figure" in f.description
    assert f.description.startswith(
        "In District A (A), transaction id T1 was exported twice with 2 different contents:"
    )


def test_the_stored_copy_is_listed_first_and_every_field_is_compared():
    other = copy(
        stored=False,
        source="B.csv",
        line=1,
        tx_type=103,
        version=5,
        operation="blindSigIssue",
        rejected=True,
        bulletins=3,
        voters_added=7,
    )
    [f] = conflicting_transaction(frame(other, STORED))  # the frame's order does not matter
    assert [c["stored"] for c in f.figures["copies"]] == [True, False]
    assert f.figures["differing_fields"] == ["type", "version", "operation", "FAIL", "bulletins", "voters added"]
    assert "rejected by the contract (FAIL), 3 bulletin(s), voters added 7" in f.description


def test_a_copy_from_another_contracts_file_raises_the_alert_on_both_constituencies():
    elsewhere = TAMPERED | {"constituency_id": "B", "source": "B_2024-09-06_0900-1000.csv"}
    found = conflicting_transaction(frame(STORED, elsewhere), fx.constituencies([("A", 100), ("B", 100)]))
    assert [(f.constituency_id, f.fingerprint) for f in found] == [
        ("A", "conflicting_transaction|A|T1"),
        ("B", "conflicting_transaction|B|T1"),
    ]
    assert found[0].figures == found[1].figures
    assert found[0].figures["contracts"] == ["A", "B"]
    assert "from the files of 2 contracts (A, B)" in found[1].description
    assert all(f.evidence_tx_ids == ["T1"] for f in found)


def test_only_constituencies_the_pipeline_knows_get_an_alert():
    elsewhere = TAMPERED | {"constituency_id": "B"}
    [f] = conflicting_transaction(frame(STORED, elsewhere), fx.constituencies([("A", 100)]))
    assert f.constituency_id == "A"
    assert [c["constituency_id"] for c in f.figures["copies"]] == ["A", "B"]  # B's copy is still evidence
    assert conflicting_transaction(frame(STORED, elsewhere), fx.constituencies([("C", 100)])) == []


def test_three_copies_count_every_copy_and_each_id_is_its_own_alert():
    third = copy(stored=False, source="A3.csv", line=2, sender="K9", ts=T + timedelta(minutes=30))
    fourth_id = [
        copy("T2", stored=True, source="x.csv", line=1),
        copy("T2", stored=False, source="y.csv", line=1, sender="Z"),
    ]
    found = conflicting_transaction(frame(STORED, TAMPERED, third, *fourth_id))
    assert [(f.window_key, f.statistic, f.figures["copies_seen"], f.figures["distinct_versions"]) for f in found] == [
        ("T1", 3.0, 3, 2),  # the two differing copies say the same thing
        ("T2", 2.0, 2, 2),
    ]
    assert found[0].title == "Transaction T1 appears 3 times with different content"


def test_no_differing_copy_no_finding():
    assert conflicting_transaction(None) == []
    assert conflicting_transaction(frame()) == []
    assert conflicting_transaction(frame(STORED)) == []


def test_without_the_stored_copy_the_differing_copies_carry_the_alert():
    elsewhere = TAMPERED | {"constituency_id": "B"}
    [f] = conflicting_transaction(frame(elsewhere))
    assert f.constituency_id == "B" and f.figures["stored_copy_found"] is False
    assert "The copy stored first was not found in the raw store" in f.description


def test_local_times_when_the_election_is_known():
    window = VotingWindow("e1", fx.START, fx.END, "Europe/Moscow")
    [f] = conflicting_transaction(frame(STORED, TAMPERED), windows={"A": window})
    assert "at 2024-09-06 12:10:00.250 local (2024-09-06 09:10:00.250 UTC)" in f.description


def test_a_long_list_of_copies_is_capped_but_counted():
    many = [copy(stored=False, source="big.csv", line=i, sender=f"K{i}", seq=i) for i in range(1, 26)]
    [f] = conflicting_transaction(frame(STORED, *many))
    assert (f.figures["copies_seen"], f.figures["copies_listed"]) == (26, MAX_COPIES_LISTED)
    assert len(f.figures["copies"]) == MAX_COPIES_LISTED
    assert [c["line_number"] for c in f.figures["copies"][:3]] == [3, 1, 2]  # stored, then in arrival order
    assert "21 more copies: see details.figures.copies." in f.description
    assert f.title == "Transaction T1 appears 26 times with different content"


def test_run_rules_runs_it_and_the_score_is_one():
    c = fx.constituencies([("A", 100), ("B", 100)])
    totals = pd.DataFrame(columns=["constituency_id", "bulletins_issued", "votes_cast", "transaction_count"])
    found = run_rules(
        fx.hourly([]),
        c,
        totals,
        DetectionThresholds(),
        elections=fx.elections(),
        conflicts=frame(STORED, TAMPERED),
        now=fx.END,
    )
    [f] = [f for f in found if f.rule == "conflicting_transaction"]
    assert f.constituency_id == "A" and RULES[f.rule] == "critical"
    assert anomaly_scores(found)["A"] == 1.0 and anomaly_scores([f]) == {"A": 1.0}
    assert "12:10:00.250 local" in f.description  # the election's time zone reached the rule


# --------------------------------------------------------------------------------------
# Through the stages: raw_conflicts in a real DuckDB file -> metrics -> alerts
# --------------------------------------------------------------------------------------

ELECTION = "E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"
NOW = datetime(2024, 9, 10, 12)
STORED_AT = datetime(2024, 9, 6, 9, 10)
COPY_COLUMNS = [c for c in CONFLICT_COLUMNS if c not in ("stored",)]


def _reference(ws) -> None:
    ws.write_reference(
        [ELECTION], [f"{C1},E1,Riverside,North,urban,10,active", f"{C2},E1,Old Town,North,urban,10,active"]
    )


def _store(ws, table: str, rows: list[dict]) -> None:
    """Rows written by hand into the raw store's real tables (raw_transactions also needs its
    ``tx_key``), as the ingest stores a transaction and a differing copy of it."""
    for row in rows:
        names = [c for c in COPY_COLUMNS if c in row]
        extra = ", tx_key" if table == "raw_transactions" else ""
        values = ", ".join("?" for _ in names) + (", md5_number(?)" if extra else "")
        params = [row[c] for c in names] + ([row["tx_id"]] if extra else [])
        ws.duck.execute(f"INSERT INTO {table} ({', '.join(names)}{extra}) VALUES ({values})", params)


def _raw(tx_id: str, cid: str, source: str, line: int, ts: datetime, sender: str, **more: Any) -> dict:
    return {
        "tx_id": tx_id,
        "constituency_id": cid,
        "tx_type": 104,
        "version": 4,
        "ts": ts,
        "operation": "vote",
        "sender": sender,
        "rejected": False,
        "bulletins": 0,
        "voters_added": None,
        "source": source,
        "line_number": line,
        "file_hash": f"h-{source}",
        "seq": None,
    } | more


def _run(ws, now: datetime = NOW):
    publish_hourly_stats(ws.duck, ws.engine)
    metrics = publish_metrics(ws.duck, ws.engine, THRESHOLDS, now=now)
    alerts = publish_alerts(ws.engine, metrics.findings, now=now)
    return metrics, alerts


def _alerts(ws) -> list[Alert]:
    with Session(ws.engine) as db:
        return list(
            db.scalars(select(Alert).where(Alert.type == "conflicting_transaction").order_by(Alert.fingerprint))
        )


def _conflict(ws, other_contract: str = C1) -> None:
    """C1 has an honest file (a bulletin and a vote) and transaction DUP, stored from C1's file
    at 09:10 from K2; a second file (of ``other_contract``) says DUP was at 09:55 from K7 and FAIL."""
    _reference(ws)
    ws.drop(file_name(C1, 9), [bsi("B1", at(9, 1), 2), vote("V1", at(9, 2), "K1")])
    ws.ingest()
    _store(ws, "raw_transactions", [_raw("DUP", C1, file_name(C1, 9, tag="a"), 4, STORED_AT, "K2")])
    _store(
        ws,
        "raw_conflicts",
        [
            _raw(
                "DUP",
                other_contract,
                file_name(other_contract, 9, tag="b"),
                11,
                STORED_AT + timedelta(minutes=45),
                "K7",
                rejected=True,
            )
        ],
    )


def test_one_critical_alert_with_both_copies_and_it_stays_while_the_conflict_stands(ws):
    _conflict(ws)
    metrics, summary = _run(ws)
    assert [f.rule for f in metrics.findings if f.severity == "critical"] == ["conflicting_transaction"]
    assert summary.by_severity["critical"] == 1
    [alert] = _alerts(ws)
    assert (alert.constituency_id, alert.severity, alert.status) == (C1, "critical", "active")
    assert alert.title == "Transaction DUP appears twice with different content"
    details = alert.details or {}
    assert details["evidence_tx_ids"] == ["DUP"] and details["condition_present"] is True
    copies = details["figures"]["copies"]
    assert [(c["stored"], c["source"], c["line_number"], c["ts"], c["sender"], c["rejected"]) for c in copies] == [
        (True, file_name(C1, 9, tag="a"), 4, "2024-09-06T09:10:00.000", "K2", False),
        (False, file_name(C1, 9, tag="b"), 11, "2024-09-06T09:55:00.000", "K7", True),
    ]
    assert details["figures"]["differing_fields"] == ["timestamp", "sender", "FAIL"]
    assert f"{file_name(C1, 9, tag='a')} line 4" in (alert.description or "")
    assert f"{file_name(C1, 9, tag='b')} line 11" in (alert.description or "")
    assert "12:10:00.000 local" in (alert.description or "")  # Moscow time from the elections table
    assert ws.constituency(C1)["anomaly_score"] == 1.0
    assert ws.constituency(C1)["votes_cast"] == 1  # DUP counts nowhere: only V1's voter

    # A later run with nothing new: the finding is produced again and the alert is kept as it is.
    _, again = _run(ws, NOW + timedelta(hours=1))
    assert (again.created, again.cleared) == (0, 0)
    [kept] = _alerts(ws)
    assert kept.id == alert.id and (kept.details or {})["condition_present"] is True
    assert kept.details == alert.details


def test_a_copy_in_another_contracts_file_alerts_both_constituencies(ws):
    _conflict(ws, other_contract=C2)
    _run(ws)
    alerts = _alerts(ws)
    assert sorted(a.constituency_id for a in alerts) == sorted([C1, C2])
    for alert in alerts:
        figures = (alert.details or {})["figures"]
        assert [c["constituency_id"] for c in figures["copies"]] == [C1, C2]
        assert figures["contracts"] == [C1, C2]
    assert ws.constituency(C2)["anomaly_score"] == 1.0


def test_the_evidence_survives_the_stored_copy_leaving_the_raw_store(ws):
    """The stored copy is looked up once: when retention removes C1's transactions, the
    alert keeps both copies and does not change."""
    _conflict(ws)
    _run(ws)
    [before] = _alerts(ws)
    ws.duck.execute("DELETE FROM raw_transactions WHERE tx_id = 'DUP'")
    _run(ws, NOW + timedelta(hours=1))
    [after] = _alerts(ws)
    assert after.details == before.details and after.description == before.description


def test_a_conflict_of_a_contract_missing_from_the_operational_database_raises_no_alert(ws):
    """An alert needs its constituency row; the stage reads conflicts only for the
    constituencies it knows."""
    _reference(ws)
    ws.drop(file_name(C1, 9), [bsi("B1", at(9, 1), 2), vote("V1", at(9, 2), "K1")])
    ws.ingest()
    _store(ws, "raw_transactions", [_raw("DUP", "CtrNobody", "n.csv", 1, STORED_AT, "K2")])
    _store(ws, "raw_conflicts", [_raw("DUP", "CtrNobody", "n2.csv", 1, STORED_AT, "K3")])
    metrics, _ = _run(ws)
    assert [f for f in metrics.findings if f.rule == "conflicting_transaction"] == []
    assert _alerts(ws) == []
