"""Pydantic schemas: allowed values, UTC conversion, ORM round trips."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from election_pipeline.db.schemas import (
    ALERT_SEVERITIES,
    ALERT_STATUSES,
    CONSTITUENCY_STATUSES,
    CONSTITUENCY_TYPES,
    ELECTION_STATUSES,
    ELECTION_TYPES,
    FILE_JOB_STATUSES,
    TRANSACTION_TYPES,
    AlertCreate,
    AlertUpdate,
    ConstituencyCreate,
    ConstituencyUpdate,
    ElectionCreate,
    ElectionUpdate,
    FileProcessingJobCreate,
    FileProcessingJobUpdate,
    HourlyStatsCreate,
    TransactionCreate,
)
from election_pipeline.ingest.export_line import KNOWN_OPERATIONS


def _election(**kw):
    data = {
        "name": "Duma 2024",
        "start_date": datetime(2024, 9, 6, 8),
        "end_date": datetime(2024, 9, 8, 20),
    }
    data.update(kw)
    return ElectionCreate(**data)


def _error_text(exc_info: pytest.ExceptionInfo[ValidationError]) -> str:
    return str(exc_info.value)


# -- election --------------------------------------------------------------------------


def test_allowed_value_constants():
    assert ELECTION_STATUSES == ("active", "completed", "upcoming", "scheduled")
    assert ELECTION_TYPES == ("presidential", "parliamentary", "general", "local", "referendum")
    assert set(CONSTITUENCY_TYPES) == {"urban", "rural", "suburban", "district", "unknown"}
    assert set(CONSTITUENCY_STATUSES) == {"active", "offline", "completed", "inactive", "unknown"}
    assert ALERT_SEVERITIES == ("critical", "warning", "info")
    assert ALERT_STATUSES == ("active", "investigating", "resolved", "snoozed")
    assert FILE_JOB_STATUSES == ("processing", "completed", "failed")
    assert set(TRANSACTION_TYPES) == set(KNOWN_OPERATIONS.values())


def test_naive_election_dates_are_local_time_in_the_election_zone():
    e = _election(timezone="Europe/Moscow")
    assert e.start_date == datetime(2024, 9, 6, 5, 0)
    assert e.end_date == datetime(2024, 9, 8, 17, 0)
    assert e.start_date.tzinfo is None


def test_naive_election_dates_default_to_utc():
    e = _election()
    assert e.timezone == "UTC"
    assert e.start_date == datetime(2024, 9, 6, 8)


def test_aware_election_dates_are_converted_to_naive_utc_whatever_the_zone():
    plus3 = timezone(timedelta(hours=3))
    e = _election(
        timezone="America/New_York",
        start_date=datetime(2024, 9, 6, 8, tzinfo=plus3),
        end_date=datetime(2024, 9, 8, 20, tzinfo=plus3),
    )
    assert e.start_date == datetime(2024, 9, 6, 5)
    assert e.end_date == datetime(2024, 9, 8, 17)


def test_election_local_time_follows_daylight_saving():
    berlin = "Europe/Berlin"
    summer = _election(timezone=berlin, start_date=datetime(2024, 7, 1, 8), end_date=datetime(2024, 7, 1, 20))
    winter = _election(timezone=berlin, start_date=datetime(2024, 1, 8, 8), end_date=datetime(2024, 1, 8, 20))
    assert summer.start_date.hour == 6
    assert winter.start_date.hour == 7


def test_election_end_must_be_after_start():
    with pytest.raises(ValidationError) as exc:
        _election(end_date=datetime(2024, 9, 6, 8))
    assert "end_date must be after start_date" in _error_text(exc)


def test_election_end_after_start_is_checked_in_utc():
    # 10:00 in Moscow (07:00 UTC) is before 08:00 UTC even though 10 > 8.
    with pytest.raises(ValidationError, match="end_date must be after start_date"):
        _election(
            timezone="Europe/Moscow",
            start_date=datetime(2024, 9, 6, 8, tzinfo=UTC),
            end_date=datetime(2024, 9, 6, 10),
        )


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("status", "finished", "status must be one of active, completed, upcoming, scheduled"),
        ("type", "mayoral", "type must be one of presidential, parliamentary"),
        ("timezone", "Mars/Olympus", "timezone must be a valid IANA time zone name"),
        ("timezone", "Europe", "timezone must be a valid IANA time zone name"),
    ],
)
def test_election_rejects_bad_values_naming_the_allowed_ones(field, value, expected):
    with pytest.raises(ValidationError) as exc:
        _election(**{field: value})
    text = _error_text(exc)
    assert expected in text
    assert repr(value) in text


def test_election_accepts_every_allowed_status_and_type_and_optional_id():
    for status in ELECTION_STATUSES:
        assert _election(status=status).status == status
    for kind in ELECTION_TYPES:
        assert _election(type=kind).type == kind
    assert _election().id is None
    assert _election(id="el-2024").id == "el-2024"


def test_election_update_converts_naive_dates_with_its_own_or_the_context_zone():
    own = ElectionUpdate(timezone="Europe/Moscow", end_date=datetime(2024, 9, 8, 21))
    assert own.end_date == datetime(2024, 9, 8, 18)
    assert own.pending_local_dates == frozenset()

    ctx = ElectionUpdate.model_validate({"start_date": datetime(2024, 9, 6, 9)}, context={"timezone": "Europe/Moscow"})
    assert ctx.start_date == datetime(2024, 9, 6, 6)

    unknown = ElectionUpdate(end_date=datetime(2024, 9, 8, 21))
    assert unknown.pending_local_dates == {"end_date"}
    assert unknown.model_dump(exclude_unset=True) == {"end_date": datetime(2024, 9, 8, 21)}


def test_election_update_validates_values():
    with pytest.raises(ValidationError, match="status must be one of"):
        ElectionUpdate(status="done")
    with pytest.raises(ValidationError, match="end_date must be after start_date"):
        ElectionUpdate(start_date=datetime(2024, 1, 2), end_date=datetime(2024, 1, 1), timezone="UTC")


# -- constituency ----------------------------------------------------------------------


def _constituency(**kw):
    data = {
        "id": "3Mv9XhQ5b7kLpQ",
        "election_id": "e1",
        "name": "North",
        "region": "R1",
        "type": "urban",
    }
    data.update(kw)
    return ConstituencyCreate(**data)


def test_constituency_defaults_and_valid_values():
    c = _constituency()
    assert (c.status, c.registered_voters, c.registered_voters_source) == ("active", 0, "none")
    for kind in CONSTITUENCY_TYPES:
        assert _constituency(type=kind).type == kind
    for status in CONSTITUENCY_STATUSES:
        assert _constituency(status=status).status == status


@pytest.mark.parametrize(
    "field,value,expected",
    [
        ("type", "metro", "type must be one of urban, rural, suburban, district, unknown"),
        ("status", "closed", "status must be one of active, offline, completed, inactive, unknown"),
        ("registered_voters", -1, "greater than or equal to 0"),
        ("id", "", "id must be a non-empty contract id"),
        ("id", "abc-def", "id must be a non-empty contract id"),
        ("id", "abc def", "id must be a non-empty contract id"),
        ("id", "ÄBC", "id must be a non-empty contract id"),
    ],
)
def test_constituency_rejects_bad_values(field, value, expected):
    with pytest.raises(ValidationError) as exc:
        _constituency(**{field: value})
    assert expected in _error_text(exc)


def test_constituency_update_validates_only_given_fields():
    assert ConstituencyUpdate(name="South").model_dump(exclude_unset=True) == {"name": "South"}
    with pytest.raises(ValidationError, match="type must be one of"):
        ConstituencyUpdate(type="metro")
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        ConstituencyUpdate(votes_cast=-5)


# -- transaction -----------------------------------------------------------------------


def _tx(**kw):
    data = {
        "tx_id": "5xTx1",
        "constituency_id": "C1",
        "timestamp": datetime(2024, 9, 6, 5, 30),
        "type": "vote",
    }
    data.update(kw)
    return TransactionCreate(**data)


def test_transaction_accepts_every_known_operation_without_block_height():
    for op in KNOWN_OPERATIONS.values():
        t = _tx(type=op)
        assert t.type == op
        assert t.block_height is None


def test_transaction_type_is_canonicalised_and_unknown_types_rejected():
    assert _tx(type="BLINDSIGISSUE").type == "blindSigIssue"
    with pytest.raises(ValidationError) as exc:
        _tx(type="transfer")
    text = _error_text(exc)
    assert "type must be one of" in text
    assert "blindSigIssue" in text and "vote" in text


def test_transaction_aware_timestamp_becomes_naive_utc():
    t = _tx(timestamp=datetime(2024, 9, 6, 8, 30, tzinfo=timezone(timedelta(hours=3))))
    assert t.timestamp == datetime(2024, 9, 6, 5, 30)
    assert t.timestamp.tzinfo is None


# -- alert -----------------------------------------------------------------------------


def _alert(**kw):
    data = {
        "constituency_id": "C1",
        "type": "votes_exceed_bulletins",
        "severity": "critical",
        "title": "More votes than bulletins",
        "detected_at": datetime(2024, 9, 6, 10),
    }
    data.update(kw)
    return AlertCreate(**data)


def test_alert_validation_messages():
    with pytest.raises(ValidationError, match="severity must be one of critical, warning, info"):
        _alert(severity="high")
    alert_statuses = "status must be one of active, investigating, resolved, snoozed"
    with pytest.raises(ValidationError, match=alert_statuses):
        _alert(status="closed")
    with pytest.raises(ValidationError, match="status must be one of"):
        AlertUpdate(status="closed")
    with pytest.raises(ValidationError, match="notes must be a list"):
        _alert(notes="just text")


def test_alert_notes_are_a_list_of_dicts_and_fingerprint_defaults_unique():
    a = _alert(notes=["called the chair", {"at": datetime(2024, 9, 6, 11), "text": "checked"}])
    dumped = a.model_dump()
    assert [n["text"] for n in dumped["notes"]] == ["called the chair", "checked"]
    assert dumped["notes"][1]["at"] == "2024-09-06T11:00:00+00:00"
    assert all(isinstance(n, dict) for n in dumped["notes"])
    assert _alert().notes == []
    assert a.fingerprint and a.fingerprint != _alert().fingerprint
    assert _alert(fingerprint="rule:C1:2024-09-06T10").fingerprint == "rule:C1:2024-09-06T10"


# -- hourly stats and file jobs ----------------------------------------------------------


def test_hourly_stats_has_metric_fields_and_checks_the_hour():
    h = HourlyStatsCreate(
        constituency_id="C1",
        election_id="e1",
        hour=datetime(2024, 9, 6, 5),
        timestamp=datetime(2024, 9, 6, 5, 59),
        votes_cast=10,
        participation_rate=1.5,
        anomaly_count=2,
    )
    assert (h.election_id, h.participation_rate, h.anomaly_count) == ("e1", 1.5, 2)
    with pytest.raises(ValidationError, match="hour must be the start of a UTC hour"):
        HourlyStatsCreate(constituency_id="C1", hour=datetime(2024, 9, 6, 5, 30))
    with pytest.raises(ValidationError, match="greater than or equal to 0"):
        HourlyStatsCreate(constituency_id="C1", hour=datetime(2024, 9, 6, 5), votes_cast=-1)


def test_file_job_status_is_validated():
    assert FileProcessingJobCreate(filename="a.csv").status == "processing"
    job_statuses = "status must be one of processing, completed, failed"
    with pytest.raises(ValidationError, match=job_statuses):
        FileProcessingJobCreate(filename="a.csv", status="done")
    with pytest.raises(ValidationError, match=job_statuses):
        FileProcessingJobUpdate(status="queued")
