"""The ``alert_notifications`` asset in real runs: materialised with the rest of the graph on
a real Dagster instance (operational database on SQLite and PostgreSQL), and through
``election-pipeline run``, against a local webhook receiver and a local SMTP server."""

from __future__ import annotations

import dagster as dg
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from election_pipeline.cli import main
from election_pipeline.db.models import Alert
from election_pipeline.db.session import get_engine
from election_pipeline.defs.assets import (
    alerts,
    constituency_metrics,
    hourly_stats,
    operational_transactions,
    raw_transactions,
    reference_data,
)
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.notify_assets import alert_notifications
from election_pipeline.defs.resources import NotifierResource, build_resources
from election_pipeline.settings import load_settings
from election_pipeline_tests.builders import CONTRACT_B
from election_pipeline_tests.scenario import drop_all

ASSETS = [
    reference_data,
    raw_transactions,
    hourly_stats,
    constituency_metrics,
    alerts,
    alert_notifications,
    operational_transactions,
    *ALL_CHECKS,
]


def _materialize(workspace, instance, db_url, receiver):
    settings = workspace.settings(
        database_url=db_url,
        alert_webhook_urls=receiver.url,
        public_url="https://observers.example.org",
        notify_backoff_seconds=0.01,
        notify_max_backoff_seconds=0,
    )
    return dg.materialize(ASSETS, resources=build_resources(settings), instance=instance, raise_on_error=False)


def _event_log_text(instance, result) -> str:
    return "\n".join(
        dg.serialize_value(record.event_log_entry) for record in instance.get_records_for_run(result.run_id).records
    )


def test_the_run_notifies_the_receiver_once_and_names_it_by_host(workspace, instance, db_url, make_receiver):
    drop_all(workspace)
    receiver = make_receiver(start=False)  # down during the first run
    first = _materialize(workspace, instance, db_url, receiver)
    assert first.success
    meta = first.asset_materializations_for_node("alert_notifications")[0].metadata
    assert (meta["sent"].value, meta["failed"].value, meta["undelivered_total"].value) == (0, 1, 1)
    target = f"127.0.0.1:{receiver.port}/…"
    assert meta["targets"].value == f"webhook: {target}"
    [owed] = meta["undelivered"].value.records
    assert owed.data["to"] == target and owed.data["status"] == "failed" and owed.data["attempts"] == 4
    assert owed.data["last_error"].startswith("cannot connect:")

    receiver.start()
    second = _materialize(workspace, instance, db_url, receiver)
    assert second.success
    meta = second.asset_materializations_for_node("alert_notifications")[0].metadata
    assert (meta["sent"].value, meta["failed"].value, meta["undelivered_total"].value) == (1, 0, 0)
    engine = get_engine(db_url)
    with engine.connect() as conn:
        critical = conn.execute(select(Alert.id, Alert.type, Alert.constituency_id).where(Alert.severity == "critical"))
        [(alert_id, rule, constituency)] = critical.all()
    assert (rule, constituency) == ("votes_exceed_bulletins", CONTRACT_B)
    [call] = receiver.calls
    assert call.body["alert"]["id"] == alert_id
    assert call.body["url"] == f"https://observers.example.org/alerts/{alert_id}"
    [sent] = meta["sent_in_this_run"].value.records
    assert (sent.data["alert"], sent.data["channel"], sent.data["to"]) == (alert_id, "webhook", target)

    third = _materialize(workspace, instance, db_url, receiver)
    assert third.success
    assert third.asset_materializations_for_node("alert_notifications")[0].metadata["sent"].value == 0
    assert len(receiver.calls) == 1

    # The webhook's token is in no event of the runs (metadata, logs).
    for result in (first, second, third):
        text = _event_log_text(instance, result)
        assert f"127.0.0.1:{receiver.port}" in text or result is third
        assert receiver.path not in text and "xoxTokenSecret123" not in text


def test_the_secrets_reach_the_notifier_as_env_vars(monkeypatch):
    monkeypatch.setenv("ELECTION_ALERT_WEBHOOK_URLS", "https://hooks.example.org/services/T/B/tok3n")
    monkeypatch.setenv("ELECTION_SMTP_PASSWORD", "pa55word")
    notifier = build_resources(load_settings())["notifier"]
    assert isinstance(notifier, NotifierResource)
    assert isinstance(notifier.webhook_urls, dg.EnvVar) and isinstance(notifier.smtp_password, dg.EnvVar)
    assert notifier.webhook_urls.env_var_name == "ELECTION_ALERT_WEBHOOK_URLS"
    assert notifier.smtp_password.env_var_name == "ELECTION_SMTP_PASSWORD"
    described = load_settings().describe()
    assert described["alert_webhook_urls"] == "hooks.example.org/…" and described["smtp_password"] == "***"


def test_election_pipeline_run_sends_the_webhook_and_the_email(
    workspace, tmp_path, monkeypatch, receiver, smtp, capsys
):
    s = workspace.settings()
    for key, value in {
        "ELECTION_INPUT_DIR": s.input_dir,
        "ELECTION_REFERENCE_DIR": s.reference_dir,
        "ELECTION_PROCESSED_DIR": s.processed_dir,
        "ELECTION_QUARANTINE_DIR": s.quarantine_dir,
        "ELECTION_DATABASE_URL": s.database_url,
        "ELECTION_DUCKDB_PATH": s.duckdb_path,
        "ELECTION_REPORTS_DIR": s.reports_dir,
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
        "ELECTION_ALERT_WEBHOOK_URLS": receiver.url,
        "ELECTION_SMTP_HOST": smtp.host,
        "ELECTION_SMTP_PORT": str(smtp.port),
        "ELECTION_SMTP_STARTTLS": "0",
        "ELECTION_SMTP_TO": "observers@example.org",
    }.items():
        monkeypatch.setenv(key, value)
    drop_all(workspace)
    assert main(["run", "--log-level", "WARNING"]) == 0
    [call] = receiver.calls
    assert call.body["alert"]["rule"] == "votes_exceed_bulletins"
    assert call.body["url"].startswith("http://127.0.0.1:8000/alerts/")
    [(_, rcpt, email)] = smtp.messages
    assert rcpt == ["observers@example.org"] and email["Subject"].startswith("[critical] New alert: ")
    out = capsys.readouterr().out
    assert receiver.path not in out
    # The summary counts one delivery per target (webhook, email), and the alert changes
    # below the default minimum severity (warning and info alerts) as not notified.
    [line] = [line for line in out.splitlines() if line.strip().startswith("notifications:")]
    assert "2 sent, 0 failed (tried again by a later run), 0 pending" in line, line
    with Session(get_engine(s.database_url)) as db:
        below = db.scalar(select(func.count()).select_from(Alert).where(Alert.severity != "critical"))
    assert f"; {below} alert changes not notified" in line, line
    # Nothing new: nothing sent.
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert len(receiver.calls) == 1 and len(smtp.messages) == 1
