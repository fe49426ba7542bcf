"""Notifications against real local receivers (an HTTP server, an aiosmtpd SMTP server) and
real operational databases (SQLite, then PostgreSQL), filled by the pipeline's stages: the
right messages, each once; nothing on a re-run; a receiver down, then up; secrets nowhere."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.db.crud import AlertCRUD
from election_pipeline.db.models import Alert, AlertNotification, NotificationDelivery
from election_pipeline.detection.findings import Finding
from election_pipeline.notify.channels import SmtpConfig
from election_pipeline.notify.deliver import NotifyConfig, deliver_notifications
from election_pipeline.notify.message import IDEMPOTENCY_HEADER
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.stages.conftest import C1, C2, at, bsi, file_name, vote

from .conftest import Smtp

ELECTION = "E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"
REFERENCE = [f"{C1},E1,Riverside,North,urban,10,active", f"{C2},E1,Old Town,North,urban,40,active"]
PUBLIC = "https://observers.example.org/"
T0 = datetime(2024, 9, 10, 12)


def config(*urls: str, smtp: SmtpConfig | None = None, **overrides) -> NotifyConfig:
    """Short timeouts and backoff; ``max_backoff`` 0: the next call retries at once."""
    values: dict[str, Any] = {"public_url": PUBLIC, "timeout": 3.0, "retries": 2, "backoff": 0.01, "max_backoff": 0.0}
    return NotifyConfig(webhook_urls=urls, smtp=smtp, **(values | overrides))


def smtp_config(server: Smtp, **overrides) -> SmtpConfig:
    values = {"sender": "pipeline@observers.example.org", "recipients": ("anna@example.org", "ben@example.org")}
    return SmtpConfig(host=server.host, port=server.port, starttls=False, **(values | overrides))


def finding(rule: str, severity: str, constituency: str = C2, statistic: float = 2.0, window: str = "h07") -> Finding:
    return Finding(
        rule=rule,
        severity=severity,  # type: ignore[arg-type]
        constituency_id=constituency,
        title=f"{rule} in {constituency} at 10:00 local",
        description=f"{rule}: statistic {statistic}",
        window_start=datetime(2024, 9, 6, 7),
        window_end=datetime(2024, 9, 6, 8),
        statistic=statistic,
        expected=0.0,
        threshold=0.0,
        hours=[datetime(2024, 9, 6, 7)],
        evidence_tx_ids=["b2", "b3", "b4"],
        window_key=window,
    )


def alert_id(ws, rule: str, constituency: str = C2) -> str:
    with Session(ws.engine) as db:
        return db.scalars(select(Alert.id).where(Alert.type == rule, Alert.constituency_id == constituency)).one()


def deliveries(ws) -> list[NotificationDelivery]:
    with Session(ws.engine) as db:
        return list(db.scalars(select(NotificationDelivery).order_by(NotificationDelivery.created_at)))


def outbox(ws) -> list[AlertNotification]:
    with Session(ws.engine) as db:
        return list(db.scalars(select(AlertNotification).order_by(AlertNotification.created_at)))


def _stuffed_election(ws) -> None:
    """C2 gets 3 votes for 1 bulletin in hour 07: the critical votes_exceed_bulletins."""
    ws.write_reference([ELECTION], REFERENCE)
    ws.drop(file_name(C1, 7), [bsi("a1", at(7, 5), 3), vote("a2", at(7, 10), "v1")])
    ws.drop(
        file_name(C2, 7),
        [bsi("b1", at(7, 1), 1), vote("b2", at(7, 2), "w1"), vote("b3", at(7, 3), "w2"), vote("b4", at(7, 4), "w3")],
    )


def _run_chain(ws, now: datetime):
    """What a run does before the notifications: ingest, hourly stats, metrics, alerts."""
    ws.ingest()
    publish_hourly_stats(ws.duck, ws.engine)
    metrics = publish_metrics(ws.duck, ws.engine, THRESHOLDS, now=now)
    return publish_alerts(ws.engine, metrics.findings, now=now)


def test_a_new_critical_alert_goes_once_to_each_webhook_and_by_one_email(ws, make_receiver, smtp):
    _stuffed_election(ws)
    first = _run_chain(ws, T0)
    hooks = [make_receiver(), make_receiver()]
    cfg = config(*(h.url for h in hooks), smtp=smtp_config(smtp))
    summary = deliver_notifications(ws.engine, cfg)

    with Session(ws.engine) as db:
        critical = db.scalars(select(Alert).where(Alert.severity == "critical")).all()
        not_critical = db.scalars(select(Alert.id).where(Alert.severity != "critical")).all()
    assert [(a.type, a.constituency_id) for a in critical] == [("votes_exceed_bulletins", C2)]
    [alert] = critical
    [row] = [n for n in outbox(ws) if n.alert_id == alert.id]
    assert first.notifications == len(outbox(ws))  # one outbox row per alert created
    assert (row.change, row.severity, row.change_key) == ("created", "critical", f"created:{alert.id}")

    # Each webhook got exactly one call: the critical alert, with its fields.
    for hook in hooks:
        [call] = hook.calls
        assert call.path == hook.path
        assert call.headers["content-type"].startswith("application/json")
        assert call.headers["idempotency-key"] == row.id
        body = call.body
        assert body["idempotency_key"] == row.id
        assert body["url"] == f"https://observers.example.org/alerts/{alert.id}"
        assert body["text"] == (
            f"[CRITICAL] New alert: {alert.title} (votes_exceed_bulletins, Old Town, Test election) "
            f"<https://observers.example.org/alerts/{alert.id}|Open the alert>"
        )
        a = body["alert"]
        assert (a["id"], a["severity"], a["rule"], a["status"]) == (
            alert.id,
            "critical",
            "votes_exceed_bulletins",
            "active",
        )
        assert (a["constituency_id"], a["constituency_name"], a["region"]) == (C2, "Old Town", "North")
        assert (a["election_id"], a["election_name"]) == ("E1", "Test election")
        assert a["title"] == alert.title and a["detected_at"] == alert.detected_at.isoformat() + "Z"
        assert a["window_start"] == "2024-09-06T07:00:00" and a["hours"] == ["2024-09-06T07:00:00"]
        assert a["evidence"]["statistic"] == 2.0  # 3 voters for 1 bulletin
        assert set(a["evidence"]["transaction_ids"]) <= {"b1", "b2", "b3", "b4"}
        assert body["change"]["kind"] == "created" and body["change"]["severity"] == "critical"
        assert not set(not_critical) & {body["alert"]["id"]}

    # One email to both recipients.
    [(mail_from, rcpt, email)] = smtp.messages
    assert mail_from == "pipeline@observers.example.org"
    assert sorted(rcpt) == ["anna@example.org", "ben@example.org"]
    assert email["Subject"] == f"[critical] New alert: {alert.title}"
    assert email["To"] == "anna@example.org, ben@example.org"
    assert email[IDEMPOTENCY_HEADER] == row.id and row.id in email["Message-ID"]
    text = email.get_content()
    assert f"Open the alert: https://observers.example.org/alerts/{alert.id}" in text
    assert "Severity:      critical" in text and "Rule:          votes_exceed_bulletins" in text
    assert "Constituency:  Old Town, Test election (CtrSouth2)" in text

    # What was sent, to whom, is recorded and reported.
    assert sorted((r.channel, r.target) for r in summary.sent) == sorted(
        [("webhook", f"127.0.0.1:{hooks[0].port}/…"), ("webhook", f"127.0.0.1:{hooks[1].port}/…")]
        + [("email", "anna@example.org, ben@example.org")]
    )
    assert summary.failed == [] and summary.owed == []
    assert {(d.status, d.attempts) for d in deliveries(ws)} == {("sent", 1)}

    # A re-run with nothing new writes no outbox row and sends nothing.
    again = _run_chain(ws, T0 + timedelta(minutes=15))
    assert again.notifications == 0
    summary = deliver_notifications(ws.engine, cfg)
    assert summary.sent == [] and summary.planned == 0
    assert [len(h.calls) for h in hooks] == [1, 1] and len(smtp.messages) == 1


def test_below_the_minimum_severity_nothing_is_sent(ws, receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("unusual_spike", "warning"), finding("integer_percentage", "info", C1)], T0)
    summary = deliver_notifications(ws.engine, config(receiver.url))
    assert receiver.calls == [] and summary.skipped_below_severity == 2 and deliveries(ws) == []
    assert {n.skip_reason for n in outbox(ws)} == {
        "below ELECTION_NOTIFY_MIN_SEVERITY (warning < critical)",
        "below ELECTION_NOTIFY_MIN_SEVERITY (info < critical)",
    }
    # With the minimum lowered to warning, a new warning goes out (the info one does not).
    publish_alerts(ws.engine, [finding("unusual_spike", "warning", C1, window="h09")], T0)
    deliver_notifications(ws.engine, config(receiver.url, min_severity="warning"))
    [call] = receiver.calls
    assert (call.body["alert"]["rule"], call.body["alert"]["constituency_id"]) == ("unusual_spike", C1)
    assert call.body["text"].startswith("[WARNING] New alert: unusual_spike in CtrNorth1")


def test_a_receiver_down_then_up_gets_the_message_exactly_once(ws, make_receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    hook = make_receiver(start=False)  # nothing listens: connection refused
    waits: list[float] = []
    summary = deliver_notifications(ws.engine, config(hook.url), sleep=waits.append)
    assert waits == [0.01, 0.02]  # two retries, with exponential backoff
    [failed] = summary.failed
    assert (failed.status, failed.attempts, failed.channel) == ("failed", 3, "webhook")
    assert failed.error is not None and failed.error.startswith("cannot connect:") and "refused" in failed.error
    assert [r.status for r in summary.owed] == ["failed"]
    [d] = deliveries(ws)
    assert (d.status, d.attempts, d.sent_at) == ("failed", 3, None)
    assert d.next_attempt_at is not None and d.last_error == failed.error

    hook.start()
    summary = deliver_notifications(ws.engine, config(hook.url))
    [sent] = summary.sent
    assert (sent.status, sent.attempts) == ("sent", 4) and summary.owed == []
    assert len(hook.calls) == 1
    # Never again after the success.
    assert deliver_notifications(ws.engine, config(hook.url)).sent == []
    assert len(hook.calls) == 1
    [d] = deliveries(ws)
    assert (d.status, d.attempts) == ("sent", 4) and d.sent_at is not None


def test_a_receiver_answering_500_is_retried_in_the_run_then_in_the_next_one(ws, receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    receiver.statuses = [500, 503, 500, 502]  # the whole first run fails, and the next run's first try
    summary = deliver_notifications(ws.engine, config(receiver.url), sleep=lambda _s: None)
    assert [f.error for f in summary.failed] == ["HTTP 500 Internal Server Error"]
    assert len(receiver.calls) == 3 and receiver.accepted == []
    summary = deliver_notifications(ws.engine, config(receiver.url), sleep=lambda _s: None)
    [sent] = summary.sent
    assert sent.attempts == 5  # 3 in the first run, 2 in this one (502, then 200)
    assert len(receiver.calls) == 5 and len(receiver.accepted) == 1
    assert len({c.body["idempotency_key"] for c in receiver.calls}) == 1  # the same key each time


def test_a_failed_delivery_waits_for_its_backoff_between_runs(ws, make_receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    hook = make_receiver(start=False)
    cfg = config(hook.url, retries=0, backoff=30.0, max_backoff=60.0)
    deliver_notifications(ws.engine, cfg)
    hook.start()
    summary = deliver_notifications(ws.engine, cfg)  # not due yet: 30 s x 2 after one failed try, capped at 60
    assert summary.sent == [] and [r.status for r in summary.owed] == ["failed"] and hook.calls == []
    later = deliver_notifications(ws.engine, cfg, clock=lambda: datetime.utcnow() + timedelta(seconds=61))
    assert len(later.sent) == 1 and len(hook.calls) == 1


def test_a_down_receiver_does_not_hold_up_the_others_and_costs_one_series_of_tries(ws, make_receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(
        ws.engine,
        [finding("votes_exceed_bulletins", "critical"), finding("vote_after_close", "critical", C1)],
        T0,
    )
    down, up = make_receiver(start=False), make_receiver()
    waits: list[float] = []
    summary = deliver_notifications(ws.engine, config(down.url, up.url), sleep=waits.append)
    assert len(up.calls) == 2 and len(summary.sent) == 2
    assert len(summary.failed) == 1 and waits == [0.01, 0.02]  # the second message to it waits for the next run
    assert sorted(r.status for r in summary.owed) == ["failed", "pending"]
    down.start()
    summary = deliver_notifications(ws.engine, config(down.url, up.url))
    assert len(summary.sent) == 2 and len(down.calls) == 2 and len(up.calls) == 2 and summary.owed == []


def test_reopened_and_escalated_alerts_are_notified_once_each(ws, receiver):
    ws.write_reference([ELECTION], REFERENCE)
    cfg = config(receiver.url)
    publish_alerts(ws.engine, [finding("unusual_spike", "warning", statistic=4.0)], T0)
    deliver_notifications(ws.engine, cfg)
    assert receiver.calls == []  # a warning: below the minimum
    # It rises to critical while open: notified as an escalation.
    publish_alerts(ws.engine, [finding("unusual_spike", "critical", statistic=7.0)], T0)
    publish_alerts(ws.engine, [finding("unusual_spike", "critical", statistic=7.0)], T0)  # nothing new
    deliver_notifications(ws.engine, cfg)
    [call] = receiver.calls
    assert call.body["change"] | {"at": None} == {
        "kind": "escalated",
        "severity": "critical",
        "previous_severity": "warning",
        "reason": "severity rose from warning to critical",
        "at": None,
    }
    assert call.body["text"].startswith("[CRITICAL] Alert escalated to critical (severity rose from warning to")
    # The analyst resolves it; it gets worse: reopened, notified once.
    spike = alert_id(ws, "unusual_spike")
    with Session(ws.engine) as db:
        AlertCRUD(db).set_status(spike, "resolved")
    publish_alerts(ws.engine, [finding("unusual_spike", "critical", statistic=7.0)], T0)  # not worse: stays resolved
    deliver_notifications(ws.engine, cfg)
    assert len(receiver.calls) == 1
    publish_alerts(ws.engine, [finding("unusual_spike", "critical", statistic=9.0)], T0)
    publish_alerts(ws.engine, [finding("unusual_spike", "critical", statistic=9.0)], T0)
    deliver_notifications(ws.engine, cfg)
    deliver_notifications(ws.engine, cfg)
    assert len(receiver.calls) == 2
    reopened = receiver.calls[1].body
    assert reopened["change"]["kind"] == "reopened" and reopened["alert"]["status"] == "active"
    assert reopened["change"]["reason"] == "its statistic rose from 7 to 9"
    assert [n.change for n in outbox(ws)] == ["created", "escalated", "reopened"]


def test_turning_notifications_on_later_does_not_send_the_past(ws, receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    summary = deliver_notifications(ws.engine, config())  # no channel configured
    assert summary.skipped_no_channel == 1
    assert deliver_notifications(ws.engine, config(receiver.url)).sent == []
    publish_alerts(
        ws.engine, [finding("votes_exceed_bulletins", "critical"), finding("vote_after_close", "critical", C1)], T0
    )
    deliver_notifications(ws.engine, config(receiver.url))
    [call] = receiver.calls
    assert call.body["alert"]["rule"] == "vote_after_close"


def test_a_target_removed_from_the_settings_keeps_its_undelivered_messages(ws, make_receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    hook = make_receiver(start=False)
    deliver_notifications(ws.engine, config(hook.url))
    summary = deliver_notifications(ws.engine, config())
    assert summary.unconfigured_targets == [f"webhook: 127.0.0.1:{hook.port}/…"]
    assert [r.status for r in summary.owed] == ["failed"]
    hook.start()  # back in the settings, and up: delivered
    assert len(deliver_notifications(ws.engine, config(hook.url)).sent) == 1 and len(hook.calls) == 1


def test_secrets_appear_in_no_error_record_or_log(ws, make_receiver, smtp):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(ws.engine, [finding("votes_exceed_bulletins", "critical")], T0)
    hook = make_receiver(start=False)
    password = "Smtp-pa55-Secret"
    # The local server offers no AUTH without TLS: the login fails.
    lines: list[str] = []
    summary = deliver_notifications(
        ws.engine, config(hook.url, smtp=smtp_config(smtp, username="anna", password=password)), log=lines.append
    )
    assert len(summary.failed) == 2 and smtp.messages == []
    stored = [repr((d.channel, d.target, d.target_key, d.last_error, d.status)) for d in deliveries(ws)]
    text = repr(summary) + "\n".join(lines) + "\n".join(stored)
    for secret in (hook.path, "xoxTokenSecret123", "B0SECRET", password):
        assert secret not in text
    assert f"127.0.0.1:{hook.port}/…" in text


def test_two_runs_at_once_send_each_message_once(ws, receiver):
    ws.write_reference([ELECTION], REFERENCE)
    publish_alerts(
        ws.engine,
        [finding("votes_exceed_bulletins", "critical"), finding("vote_after_close", "critical", C1)],
        T0,
    )
    cfg = config(receiver.url)
    receiver.delay = 0.5  # each call is slow, so the two runs overlap
    results = []

    def run() -> None:
        results.append(deliver_notifications(ws.engine, cfg))

    threads = [threading.Thread(target=run) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sum(len(r.sent) for r in results) == 2
    assert sorted(c.body["alert"]["rule"] for c in receiver.calls) == ["vote_after_close", "votes_exceed_bulletins"]
