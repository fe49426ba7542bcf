"""CRUD against a real SQLite file in tmp_path and a real PostgreSQL schema (``db_url``)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from typing import TypeVar

import pytest
from pydantic import ValidationError
from sqlalchemy.exc import IntegrityError

from election_pipeline.db.crud import (
    AlertCRUD,
    ConstituencyCRUD,
    ElectionCRUD,
    FileProcessingJobCRUD,
    HourlyStatsCRUD,
    NotFoundError,
    TransactionCRUD,
)
from election_pipeline.db.models import Alert, Election
from election_pipeline.db.schemas import (
    AlertCreate,
    AlertResponse,
    ConstituencyCreate,
    ConstituencyResponse,
    ConstituencyUpdate,
    ElectionCreate,
    ElectionResponse,
    ElectionUpdate,
    TransactionCreate,
)
from election_pipeline.db.session import create_tables, get_engine, session_factory

MOSCOW = "Europe/Moscow"

T = TypeVar("T")


def found(row: T | None) -> T:
    """``row``, which the test expects the lookup to have found."""
    assert row is not None
    return row


@pytest.fixture()
def db(db_url):
    create_tables(get_engine(db_url))
    session = session_factory(db_url)()
    try:
        yield session
    finally:
        session.close()


@pytest.fixture()
def election(db):
    return ElectionCRUD(db).create(
        ElectionCreate(
            id="duma-2024",
            name="Duma 2024",
            country="RU",
            type="parliamentary",
            timezone=MOSCOW,
            start_date=datetime(2024, 9, 6, 8),
            end_date=datetime(2024, 9, 8, 20),
        )
    )


@pytest.fixture()
def constituencies(db, election):
    crud = ConstituencyCRUD(db)
    rows = [
        ("C1", "North", "R1", "urban", 1000, "active"),
        ("C2", "South", "R1", "rural", 0, "offline"),
        ("C3", "East", "R2", "urban", 400, "active"),
    ]
    return [
        crud.create(
            ConstituencyCreate(
                id=cid,
                election_id=election.id,
                name=name,
                region=region,
                type=kind,
                registered_voters=reg,
                status=status,
            )
        )
        for cid, name, region, kind, reg, status in rows
    ]


def _alert(constituency_id="C1", **kw):
    data = {
        "constituency_id": constituency_id,
        "type": "votes_exceed_bulletins",
        "severity": "critical",
        "title": "More votes than bulletins",
        "detected_at": datetime(2024, 9, 6, 10),
    }
    data.update(kw)
    return AlertCreate(**data)


# -- base ------------------------------------------------------------------------------


def test_create_get_get_multi_update_delete(db, constituencies):
    crud = ConstituencyCRUD(db)
    assert found(crud.get("C1")).name == "North"
    assert crud.get("nope") is None
    assert [c.id for c in crud.get_multi()] == ["C1", "C2", "C3"]
    assert [c.id for c in crud.get_multi(skip=1, limit=1)] == ["C2"]

    c1 = crud.update(db_obj=found(crud.get("C1")), obj_in=ConstituencyUpdate(name="North-1"))
    assert c1.name == "North-1"
    assert c1.region == "R1"  # unset fields untouched
    c1 = crud.update(db_obj=c1, obj_in={"registered_voters": 1200})
    assert (c1.name, c1.registered_voters) == ("North-1", 1200)

    deleted = crud.delete(id="C3")
    assert deleted.id == "C3"
    assert crud.get("C3") is None


def test_dict_input_is_validated_through_the_schemas(db, constituencies):
    crud = ConstituencyCRUD(db)
    with pytest.raises(ValidationError, match="type must be one of"):
        crud.create({"id": "C9", "name": "X", "type": "metro"})
    with pytest.raises(ValidationError, match="status must be one of"):
        crud.update(db_obj=found(crud.get("C1")), obj_in={"status": "closed"})
    assert crud.get("C9") is None
    assert found(crud.get("C1")).status == "active"


def test_delete_unknown_id_raises_not_found(db, constituencies):
    with pytest.raises(NotFoundError, match="Constituency with id 'missing' not found"):
        ConstituencyCRUD(db).delete(id="missing")
    with pytest.raises(LookupError):
        AlertCRUD(db).delete(id="missing")


def test_failed_commit_is_rolled_back_and_session_stays_usable(db, constituencies):
    crud = TransactionCRUD(db)
    tx = {
        "tx_id": "dup",
        "constituency_id": "C1",
        "type": "vote",
        "timestamp": datetime(2024, 9, 6, 5),
    }
    crud.create(tx)
    with pytest.raises(IntegrityError):
        crud.create(tx)  # tx_id is unique
    assert [t.tx_id for t in crud.get_multi()] == ["dup"]
    assert ConstituencyCRUD(db).update_metrics(id="C1", bulletins=1, votes=1).votes_cast == 1


def test_update_refuses_none_for_required_column(db, constituencies):
    crud = ConstituencyCRUD(db)
    with pytest.raises(ValueError, match="Constituency.name cannot be set to None"):
        crud.update(db_obj=found(crud.get("C1")), obj_in=ConstituencyUpdate(name=None))


def test_response_schemas_read_orm_objects(db, election, constituencies):
    resp = ElectionResponse.model_validate(election)
    assert resp.id == "duma-2024"
    assert resp.start_date == datetime(2024, 9, 6, 5)  # stored UTC is not shifted again
    c = ConstituencyResponse.model_validate(constituencies[0])
    assert (c.id, c.participation_rate, c.in_reference) == ("C1", 0.0, True)
    alert = AlertCRUD(db).create(_alert())
    assert AlertResponse.model_validate(alert).fingerprint == alert.fingerprint


# -- elections ---------------------------------------------------------------------------


def test_election_dates_are_stored_in_utc(db_url, election):
    other = session_factory(db_url)()
    try:
        stored = found(other.get(Election, "duma-2024"))
        assert stored.start_date == datetime(2024, 9, 6, 5)
        assert stored.end_date == datetime(2024, 9, 8, 17)
        assert stored.timezone == MOSCOW
    finally:
        other.close()


def test_election_created_from_dict_without_id_gets_uuid(db):
    e = ElectionCRUD(db).create(
        {
            "name": "Local",
            "start_date": datetime(2024, 3, 1, 8),
            "end_date": datetime(2024, 3, 1, 20),
        }
    )
    assert len(e.id) == 36
    assert e.start_date == datetime(2024, 3, 1, 8)


def test_election_queries(db, election):
    crud = ElectionCRUD(db)
    later = crud.create(
        ElectionCreate(
            name="Mayor 2025",
            status="upcoming",
            type="local",
            start_date=datetime(2025, 9, 12, 8),
            end_date=datetime(2025, 9, 14, 20),
        )
    )
    assert found(crud.get_by_name(name="Mayor 2025")).id == later.id
    assert crud.get_by_name(name="nope") is None
    assert [e.id for e in crud.get_active_elections()] == ["duma-2024"]
    in_2024 = crud.get_by_date_range(start_date=datetime(2024, 9, 7), end_date=datetime(2024, 9, 7, 12))
    assert [e.id for e in in_2024] == ["duma-2024"]
    everything = crud.get_by_date_range(start_date=datetime(2024, 1, 1, tzinfo=UTC), end_date=datetime(2026, 1, 1))
    assert {e.id for e in everything} == {"duma-2024", later.id}
    before = crud.get_by_date_range(start_date=datetime(2023, 1, 1), end_date=datetime(2023, 2, 1))
    assert before == []


def test_election_update_uses_the_stored_zone_for_naive_dates(db, election):
    crud = ElectionCRUD(db)
    e = crud.update(db_obj=election, obj_in=ElectionUpdate(end_date=datetime(2024, 9, 8, 21)))
    assert e.end_date == datetime(2024, 9, 8, 18)
    e = crud.update(db_obj=e, obj_in={"start_date": datetime(2024, 9, 6, 9)})
    assert e.start_date == datetime(2024, 9, 6, 6)
    e = crud.update(db_obj=e, obj_in={"start_date": datetime(2024, 9, 6, 7, tzinfo=UTC)})
    assert e.start_date == datetime(2024, 9, 6, 7)


def test_election_update_cannot_end_before_start(db, election):
    crud = ElectionCRUD(db)
    with pytest.raises(ValueError, match="end_date must be after start_date"):
        crud.update(db_obj=election, obj_in={"end_date": datetime(2024, 9, 6, 7)})
    assert found(crud.get("duma-2024")).end_date == datetime(2024, 9, 8, 17)


# -- constituencies ------------------------------------------------------------------------


def test_constituency_queries(db, election, constituencies):
    crud = ConstituencyCRUD(db)
    assert {c.id for c in crud.get_by_election(election_id=election.id)} == {"C1", "C2", "C3"}
    assert {c.id for c in crud.get_by_region(region="R1")} == {"C1", "C2"}
    assert {c.id for c in crud.get_by_status(status="offline")} == {"C2"}
    assert {c.id for c in crud.get_by_type(type="urban")} == {"C1", "C3"}
    assert crud.get_by_type(type="suburban") == []
    with pytest.raises(ValueError, match="status must be one of"):
        crud.get_by_status(status="closed")


def test_update_metrics_computes_participation(db, db_url, constituencies):
    crud = ConstituencyCRUD(db)
    before = found(found(crud.get("C1")).last_update_time)
    c1 = crud.update_metrics(id="C1", bulletins=300, votes=250)
    assert (c1.bulletins_issued, c1.votes_cast) == (300, 250)
    assert c1.participation_rate == pytest.approx(25.0)
    assert found(c1.last_update_time) >= before

    c2 = crud.update_metrics(id="C2", bulletins=5, votes=5)  # no registered voters
    assert c2.participation_rate == 0.0

    other = session_factory(db_url)()
    try:
        assert found(ConstituencyCRUD(other).get("C1")).participation_rate == pytest.approx(25.0)
    finally:
        other.close()

    with pytest.raises(NotFoundError):
        crud.update_metrics(id="nope", bulletins=1, votes=1)
    with pytest.raises(ValueError, match=">= 0"):
        crud.update_metrics(id="C1", bulletins=-1, votes=0)


# -- transactions --------------------------------------------------------------------------


def test_transaction_queries(db, constituencies):
    crud = TransactionCRUD(db)
    base = datetime(2024, 9, 6, 5)
    specs = [
        ("t1", "C1", "blindSigIssue", base, None),
        ("t2", "C1", "vote", base + timedelta(minutes=30), None),
        ("t3", "C3", "vote", base + timedelta(hours=1), 42),
        ("t4", "C1", "vote", base + timedelta(hours=2), 42),
    ]
    for tx_id, cid, kind, ts, height in specs:
        crud.create(
            TransactionCreate(
                tx_id=tx_id,
                constituency_id=cid,
                type=kind,
                timestamp=ts,
                block_height=height,
                raw_data={"nestedTxId": tx_id},
            )
        )
    assert [t.tx_id for t in crud.get_by_constituency(constituency_id="C1")] == ["t1", "t2", "t4"]
    page = crud.get_by_constituency(constituency_id="C1", skip=1, limit=1)
    assert [t.tx_id for t in page] == ["t2"]
    assert [t.tx_id for t in crud.get_by_type(type="vote")] == ["t2", "t3", "t4"]
    assert [t.tx_id for t in crud.get_by_type(type="BlindSigIssue")] == ["t1"]
    hour = crud.get_by_time_range(start_time=base, end_time=base + timedelta(hours=1))
    assert [t.tx_id for t in hour] == ["t1", "t2"]  # end excluded
    assert [t.tx_id for t in crud.get_by_block_height(block_height=42)] == ["t3", "t4"]
    t1 = found(crud.get_by_tx_id("t1"))
    assert t1.block_height is None and t1.raw_data == {"nestedTxId": "t1"}
    assert crud.get_by_tx_id("zzz") is None
    with pytest.raises(ValueError, match="type must be one of"):
        crud.get_by_type(type="transfer")


# -- alerts ----------------------------------------------------------------------------------


def test_alert_queries(db, constituencies):
    crud = AlertCRUD(db)
    a1 = crud.create(_alert("C1"))
    a2 = crud.create(_alert("C1", severity="info", type="night_activity"))
    a3 = crud.create(_alert("C3", severity="warning", status="investigating"))
    assert [a.id for a in crud.get_by_constituency(constituency_id="C1")] == [a1.id, a2.id]
    assert [a.id for a in crud.get_by_severity(severity="warning")] == [a3.id]
    assert [a.id for a in crud.get_by_status(status="investigating")] == [a3.id]
    assert [a.id for a in crud.get_active_alerts()] == [a1.id, a2.id]  # critical first
    with pytest.raises(ValueError, match="severity must be one of critical, warning, info"):
        crud.get_by_severity(severity="high")


def test_alert_list_orders_in_the_database_before_the_limit(db, constituencies):
    """Each order is applied by the query, so a limit keeps the first alerts of that order
    (not the first of the default order, re-sorted)."""
    crud = AlertCRUD(db)
    hour = datetime(2024, 9, 6, 10)
    made = {
        "old_info": crud.create(_alert("C3", severity="info", type="night_activity", detected_at=hour)),
        "new_warning": crud.create(
            _alert("C2", severity="warning", type="unusual_spike", detected_at=hour + timedelta(hours=5))
        ),
        "mid_critical": crud.create(_alert("C1", detected_at=hour + timedelta(hours=2), status="resolved")),
        "mid_warning": crud.create(
            _alert("C3", severity="warning", type="high_rejection_rate", detected_at=hour + timedelta(hours=2))
        ),
    }
    name = {a.id: key for key, a in made.items()}

    def first(order: str, n: int = 2) -> list[str]:
        return [name[a.id] for a in crud.list_alerts(order=order, limit=n)]

    assert first("severity") == ["mid_critical", "new_warning"]
    assert first("newest") == ["new_warning", "mid_critical"]  # same hour: the more severe first
    assert first("oldest") == ["old_info", "mid_critical"]
    assert first("constituency", 3) == ["mid_critical", "new_warning", "mid_warning"]
    assert first("status", 3) == ["new_warning", "mid_warning", "old_info"]  # active before resolved
    assert first("rule", 1) == ["mid_warning"]  # high_rejection_rate, alphabetically first
    with pytest.raises(ValueError, match="order must be one of severity, newest"):
        crud.list_alerts(order="loudest")


def test_add_note_appends_and_persists(db, db_url, constituencies):
    crud = AlertCRUD(db)
    alert = crud.create(_alert())
    crud.add_note(id=alert.id, note="Called the commission")
    crud.add_note(id=alert.id, note="Confirmed by phone", author="anna")

    other = session_factory(db_url)()
    try:
        notes = found(other.get(Alert, alert.id)).notes
    finally:
        other.close()
    assert [n["text"] for n in notes] == ["Called the commission", "Confirmed by phone"]
    assert notes[1]["author"] == "anna"
    at = datetime.fromisoformat(notes[0]["at"])
    assert at.tzinfo is not None and at.utcoffset() == timedelta(0)
    assert abs(datetime.now(UTC) - at) < timedelta(minutes=5)

    with pytest.raises(ValueError, match="note must not be empty"):
        crud.add_note(id=alert.id, note="  ")
    with pytest.raises(NotFoundError):
        crud.add_note(id="missing", note="x")


def test_set_status_resolved_sets_and_clears_resolved_at(db, constituencies):
    crud = AlertCRUD(db)
    alert = crud.create(_alert())
    assert alert.resolved_at is None

    resolved = crud.set_status(alert.id, "resolved")
    assert resolved.status == "resolved"
    assert resolved.resolved_at is not None
    now = datetime.now(UTC).replace(tzinfo=None)
    assert abs(now - resolved.resolved_at) < timedelta(minutes=5)

    reopened = crud.set_status(alert.id, "investigating")
    assert (reopened.status, reopened.resolved_at) == ("investigating", None)

    with pytest.raises(ValueError, match="status must be one of active, investigating, resolved, snoozed"):
        crud.set_status(alert.id, "closed")
    assert found(crud.get(alert.id)).status == "investigating"


def test_generic_update_to_resolved_also_stamps_resolved_at(db, constituencies):
    crud = AlertCRUD(db)
    alert = crud.create(_alert())
    updated = crud.update(db_obj=alert, obj_in={"status": "resolved"})
    assert updated.resolved_at is not None


def test_assign_and_snooze(db, constituencies):
    crud = AlertCRUD(db)
    alert = crud.create(_alert())
    assert crud.assign(alert.id, "anna").assigned_to == "anna"
    assert crud.assign(alert.id, None).assigned_to is None

    until = datetime(2099, 1, 1, 12, tzinfo=timezone(timedelta(hours=3)))
    snoozed = crud.snooze(alert.id, until)
    assert (snoozed.status, snoozed.snoozed_until) == ("snoozed", datetime(2099, 1, 1, 9))
    assert crud.get_active_alerts() == []

    # A snooze that has run out makes the alert active again.
    crud.snooze(alert.id, datetime(2000, 1, 1))
    assert [a.id for a in crud.get_active_alerts()] == [alert.id]

    back = crud.set_status(alert.id, "active")
    assert back.snoozed_until is None


# -- hourly stats ------------------------------------------------------------------------------


def test_hourly_stats_queries(db, election, constituencies):
    crud = HourlyStatsCRUD(db)
    base = datetime(2024, 9, 6, 5)
    for cid, offset, votes in [("C1", 0, 10), ("C1", 1, 20), ("C1", 2, 5), ("C3", 1, 7)]:
        crud.create(
            {
                "constituency_id": cid,
                "election_id": election.id,
                "hour": base + timedelta(hours=offset),
                "votes_cast": votes,
                "participation_rate": votes / 10,
                "anomaly_count": 0,
            }
        )
    assert [h.votes_cast for h in crud.get_by_constituency(constituency_id="C1")] == [10, 20, 5]
    latest = found(crud.get_latest_for_constituency(constituency_id="C1"))
    assert (latest.hour, latest.votes_cast) == (base + timedelta(hours=2), 5)
    assert crud.get_latest_for_constituency(constituency_id="C2") is None
    in_range = crud.get_by_hour_range(start_hour=base + timedelta(hours=1), end_hour=base + timedelta(hours=2))
    expected = [("C1", 20), ("C3", 7), ("C1", 5)]  # both ends included
    assert [(h.constituency_id, h.votes_cast) for h in in_range] == expected
    only_c3 = crud.get_by_hour_range(start_hour=base, end_hour=base + timedelta(hours=5), constituency_id="C3")
    assert [h.votes_cast for h in only_c3] == [7]
    with pytest.raises(IntegrityError):  # one row per constituency and hour
        crud.create({"constituency_id": "C1", "hour": base})


# -- file processing jobs ----------------------------------------------------------------------


def test_file_processing_job_lifecycle(db):
    crud = FileProcessingJobCRUD(db)
    job = crud.create({"filename": "C1_2024-09-06_08-09.csv"})
    assert job.status == "processing" and job.started_at is not None and job.completed_at is None
    assert found(crud.get_by_filename(filename="C1_2024-09-06_08-09.csv")).id == job.id
    assert crud.get_by_filename(filename="other.csv") is None

    crud.increment_processed_count(id=job.id)
    job = crud.increment_processed_count(id=job.id, count=41)
    assert job.transactions_processed == 42

    failed = crud.update_status(id=job.id, status="failed", details="bad header")
    assert (failed.status, failed.details) == ("failed", "bad header")
    assert failed.completed_at is not None
    assert [j.id for j in crud.get_by_status(status="failed")] == [job.id]

    again = crud.update_status(id=job.id, status="processing")
    assert again.completed_at is None and again.details == "bad header"

    done = crud.mark_completed(id=job.id)
    assert done.status == "completed" and done.completed_at is not None
    assert crud.get_by_status(status="processing") == []

    with pytest.raises(ValueError, match="status must be one of processing, completed, failed"):
        crud.update_status(id=job.id, status="queued")
    with pytest.raises(NotFoundError):
        crud.mark_completed(id="missing")
    with pytest.raises(ValueError, match="count must be >= 0"):
        crud.increment_processed_count(id=job.id, count=-1)
