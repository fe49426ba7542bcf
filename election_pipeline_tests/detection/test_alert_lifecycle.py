"""The alert lifecycle through the real stages and the CRUD layer: analyst edits survive
rematerialisations, a resolved alert reopens only when its condition gets worse, a snoozed
one stays quiet until its snooze ends."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from election_pipeline.db.crud import AlertCRUD
from election_pipeline.db.models import Alert
from election_pipeline.detection.findings import Finding
from election_pipeline.stages.alerts import publish_alerts, worse_reason
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.stages.conftest import C1, C2, at, bsi, file_name, vote

ELECTION = "E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"
T0 = datetime(2024, 9, 10, 12)


def _rematerialise(ws, now: datetime):
    """What one run of the chain does after ingestion: hourly stats, metrics, alerts."""
    ws.ingest()
    publish_hourly_stats(ws.duck, ws.engine)
    metrics = publish_metrics(ws.duck, ws.engine, THRESHOLDS, now=now)
    return publish_alerts(ws.engine, metrics.findings, now=now)


def _stuffed_election(ws):
    """C2 gets 3 votes for 1 bulletin in hour 07 (votes exceed bulletins)."""
    ws.write_reference(
        [ELECTION], [f"{C1},E1,Riverside,North,urban,10,active", f"{C2},E1,Old Town,North,urban,40,active"]
    )
    ws.drop(file_name(C1, 7), [bsi("a1", at(7, 5), 3), vote("a2", at(7, 10), "v1")])
    ws.drop(
        file_name(C2, 7),
        [bsi("b1", at(7, 1), 1), vote("b2", at(7, 2), "w1"), vote("b3", at(7, 3), "w2"), vote("b4", at(7, 4), "w3")],
    )


def _the_alert(ws) -> Alert:
    with Session(ws.engine) as db:
        [alert] = db.scalars(select(Alert).where(Alert.type == "votes_exceed_bulletins")).all()
        return alert


def _details(alert: Alert) -> dict[str, Any]:
    """The alert's figures, which every alert the pipeline writes has."""
    assert alert.details is not None
    return alert.details


def _count(ws) -> int:
    with ws.engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(Alert)).scalar_one()


def test_analyst_edits_survive_two_rematerialisations(ws):
    _stuffed_election(ws)
    first = _rematerialise(ws, T0)
    assert first.created >= 1
    alert = _the_alert(ws)
    assert (alert.constituency_id, alert.status, _details(alert)["statistic"]) == (C2, "active", 2.0)
    with Session(ws.engine) as db:
        crud = AlertCRUD(db)
        crud.assign(alert.id, "anna")
        crud.add_note(id=alert.id, note="Called the polling station", author="anna")
        crud.set_status(alert.id, "investigating")
    total = _count(ws)

    # A new file makes it worse (more votes without bulletins); then a run with nothing new.
    ws.drop(file_name(C2, 8), [vote("b5", at(8, 1), "w4"), vote("b6", at(8, 2), "w5")])
    second = _rematerialise(ws, T0 + timedelta(minutes=15))
    third = _rematerialise(ws, T0 + timedelta(minutes=30))
    assert second.created == 0 and third.created == 0 and third.updated == 0
    assert _count(ws) == total  # updated in place, never duplicated
    after = _the_alert(ws)
    assert after.id == alert.id
    assert (after.status, after.assigned_to) == ("investigating", "anna")
    assert [n["text"] for n in after.notes] == ["Called the polling station"]
    assert _details(after)["statistic"] == 4.0  # the figures are refreshed
    assert _details(after)["condition_present"] is True


def test_resolved_alert_reopens_only_when_worse(ws):
    _stuffed_election(ws)
    _rematerialise(ws, T0)
    alert = _the_alert(ws)
    with Session(ws.engine) as db:
        AlertCRUD(db).set_status(alert.id, "resolved")

    _rematerialise(ws, T0 + timedelta(minutes=15))  # same data: stays resolved
    same = _the_alert(ws)
    assert same.status == "resolved" and same.resolved_at is not None
    assert _details(same)["resolved_baseline"]["statistic"] == 2.0

    ws.drop(file_name(C2, 8), [vote("b5", at(8, 1), "w4")])  # one more vote without a bulletin
    summary = _rematerialise(ws, T0 + timedelta(minutes=30))
    assert summary.reopened == 1
    reopened = _the_alert(ws)
    assert (reopened.status, reopened.resolved_at) == ("active", None)
    note = reopened.notes[-1]
    assert note["author"] == "pipeline" and "rose from 2 to 3" in note["text"]
    assert "resolved_baseline" not in _details(reopened)


def test_snoozed_alert_stays_quiet_until_its_snooze_ends(ws):
    _stuffed_election(ws)
    _rematerialise(ws, T0)
    alert = _the_alert(ws)
    until = T0 + timedelta(hours=2)
    with Session(ws.engine) as db:
        AlertCRUD(db).snooze(alert.id, until)

    ws.drop(file_name(C2, 8), [vote("b5", at(8, 1), "w4")])  # worse, but snoozed
    _rematerialise(ws, until - timedelta(minutes=1))
    quiet = _the_alert(ws)
    assert (quiet.status, quiet.snoozed_until) == ("snoozed", until)
    assert _details(quiet)["statistic"] == 3.0  # figures still refreshed while snoozed

    summary = _rematerialise(ws, until + timedelta(minutes=1))
    assert summary.woken == 1
    awake = _the_alert(ws)
    assert (awake.status, awake.snoozed_until) == ("active", None)
    assert awake.notes[-1]["author"] == "pipeline" and "Snooze ended" in awake.notes[-1]["text"]


def test_worse_means_higher_severity_or_the_statistic_moving_the_bad_way():
    f = Finding(rule="r", severity="warning", constituency_id="A", title="t", description="d", statistic=1.0)
    assert worse_reason({"severity": "warning", "statistic": 1.0}, f) is None
    rose = worse_reason({"severity": "info", "statistic": 1.0}, f)
    assert rose is not None and "severity rose" in rose
    low = Finding(
        rule="low_participation",
        severity="warning",
        constituency_id="A",
        title="t",
        description="d",
        statistic=0.2,
        higher_is_worse=False,
    )
    fell = worse_reason({"severity": "warning", "statistic": 0.25}, low)
    assert fell is not None and "fell from 0.25 to 0.2" in fell
    assert worse_reason({"severity": "warning", "statistic": 0.1}, low) is None


def test_alert_whose_condition_clears_is_kept(ws):
    _stuffed_election(ws)
    _rematerialise(ws, T0)
    alert = _the_alert(ws)
    # A run in which the rule no longer fires (no findings at all).
    summary = publish_alerts(ws.engine, [], now=T0 + timedelta(hours=1))
    assert summary.cleared >= 1
    kept = _the_alert(ws)
    assert kept.id == alert.id and kept.status == "active"
    assert _details(kept)["condition_present"] is False and _details(kept)["condition_cleared_at"]
