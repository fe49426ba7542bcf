"""``election-pipeline alerts ...`` against a real SQLite database (ELECTION_DATABASE_URL in
tmp_path), and analyst edits made with it surviving two materialisations of the real asset
graph on a real Dagster instance."""

from __future__ import annotations

import json
from datetime import datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from election_pipeline.cli import main
from election_pipeline.cli.alerts import parse_until
from election_pipeline.db.models import Alert, AlertNotification, Constituency, utcnow
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.defs.assets import alerts, constituency_metrics, hourly_stats, raw_transactions, reference_data
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.resources import build_resources
from election_pipeline.detection.findings import Finding
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.vocabulary import SeverityName
from election_pipeline_tests.builders import CONTRACT_B, make_workspace
from election_pipeline_tests.scenario import drop_all

NOW = datetime(2024, 9, 7, 12)


def give_alert_id(db: Session, alert: Alert, new_id: str) -> None:
    """Give ``alert`` the id ``new_id`` (to make ids that share a prefix). Its rows in the
    notifications outbox, which play no part in these tests, are dropped first: they refer
    to the old id, and the pipeline itself never changes an alert's id."""
    db.execute(delete(AlertNotification).where(AlertNotification.alert_id == alert.id))
    alert.id = new_id
    db.flush()


def _finding(rule: str, cid: str, severity: SeverityName, key: str, statistic: float = 5.0) -> Finding:
    hour = datetime(2024, 9, 6, 7)
    return Finding(
        rule=rule,
        severity=severity,
        constituency_id=cid,
        title=f"{rule} in {cid}",
        description=f"What {rule} found in {cid}.",
        window_start=hour,
        window_end=hour + timedelta(hours=1),
        statistic=statistic,
        expected=1.0,
        threshold=3.5,
        hours=[hour],
        figures={"votes": 42},
        evidence_tx_ids=["tx-1", "tx-2"],
        window_key=key,
    )


def seed_alerts(url: str) -> None:
    """Two constituencies and four alerts (one of each severity, two rules on each) in ``url``."""
    engine = get_engine(url)
    upgrade_database(engine)
    with Session(engine) as db:
        db.add_all([Constituency(id="CtrA", name="Riverside"), Constituency(id="CtrB", name="Old Town")])
        db.commit()
    publish_alerts(
        engine,
        [
            _finding("votes_exceed_bulletins", "CtrA", "critical", "all"),
            _finding("unusual_spike", "CtrA", "warning", "2024-09-06T07"),
            _finding("night_activity", "CtrB", "warning", "2024-09-07"),
            _finding("integer_percentage", "CtrB", "info", "all"),
        ],
        now=NOW,
    )


@pytest.fixture
def db_url(tmp_path, monkeypatch) -> str:
    url = f"sqlite:///{tmp_path / 'ops.db'}"
    monkeypatch.setenv("ELECTION_DATABASE_URL", url)
    seed_alerts(url)
    return url


def _alerts(url: str) -> dict[str, Alert]:
    with Session(get_engine(url)) as db:
        return {a.type: a for a in db.scalars(select(Alert))}


def test_list_with_filters(db_url, capsys):
    assert main(["alerts", "list"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if line[:8].strip() and not line.startswith(("id ", "4 alert"))]
    assert [line.split()[1] for line in lines] == ["critical", "warning", "warning", "info"]  # most severe first
    assert "4 alert(s)" in out

    assert main(["alerts", "list", "--severity", "warning", "--constituency", "CtrB"]) == 0
    out = capsys.readouterr().out
    assert "night_activity" in out and "unusual_spike" not in out and "1 alert(s)" in out

    assert main(["alerts", "list", "--status", "resolved"]) == 0
    assert "No alerts match." in capsys.readouterr().out

    assert main(["alerts", "list", "--format", "json", "--rule", "unusual_spike"]) == 0
    [item] = json.loads(capsys.readouterr().out)
    assert (item["type"], item["severity"], item["details"]["evidence_tx_ids"]) == (
        "unusual_spike",
        "warning",
        ["tx-1", "tx-2"],
    )


def test_show_assign_note_status_and_snooze(db_url, capsys):
    spike = _alerts(db_url)["unusual_spike"]
    prefix = spike.id[:8]

    assert main(["alerts", "assign", prefix, "anna"]) == 0
    assert main(["alerts", "note", prefix, "Checked the hour's votes", "--author", "anna"]) == 0
    assert main(["alerts", "status", prefix, "investigating"]) == 0
    capsys.readouterr()
    assert main(["alerts", "show", spike.id]) == 0
    out = capsys.readouterr().out
    for text in (
        "unusual_spike in CtrA",
        "status:        investigating",
        "assigned to:   anna",
        "statistic:     5.0 (expected 1.0, threshold 3.5",
        "votes: 42",
        "tx-1",
        "anna: Checked the hour's votes",
    ):
        assert text in out, text

    assert main(["alerts", "status", prefix, "resolved"]) == 0
    resolved = _alerts(db_url)["unusual_spike"]
    assert resolved.status == "resolved" and resolved.resolved_at is not None

    until = (utcnow() + timedelta(days=1)).replace(microsecond=0)
    assert main(["alerts", "snooze", prefix, "--until", until.isoformat()]) == 0
    snoozed = _alerts(db_url)["unusual_spike"]
    assert (snoozed.status, snoozed.snoozed_until, snoozed.resolved_at) == ("snoozed", until, None)
    assert main(["alerts", "snooze", prefix, "--until", "2h"]) == 0
    snoozed_until = _alerts(db_url)["unusual_spike"].snoozed_until
    assert snoozed_until is not None and snoozed_until > utcnow() + timedelta(minutes=119)

    assert main(["alerts", "assign", prefix, "-"]) == 0
    after = _alerts(db_url)["unusual_spike"]
    assert after.assigned_to is None and after.notes[0]["author"] == "anna"


@pytest.mark.parametrize(
    "argv, message",
    [
        (["alerts", "show", "no-such-alert"], "not found"),
        (["alerts", "assign", "0000", "anna"], "not found"),
        (["alerts", "note", "no-such-alert", "text"], "not found"),
        (["alerts", "status", "{id}", "closed"], "status must be one of active, investigating, resolved, snoozed"),
        (["alerts", "status", "{id}", "snoozed"], "alerts snooze ID --until"),
        (["alerts", "snooze", "{id}", "--until", "tomorrow"], "--until must be an ISO 8601 time"),
        (["alerts", "snooze", "{id}", "--until", "2000-01-01T00:00"], "--until must be in the future"),
        (["alerts", "list", "--severity", "high"], "severity must be one of critical, warning, info"),
        (["alerts", "note", "{id}", "   "], "note must not be empty"),
    ],
)
def test_clear_errors(db_url, capsys, argv, message):
    alert_id = _alerts(db_url)["night_activity"].id
    before = _alerts(db_url)["night_activity"]
    assert main([a.replace("{id}", alert_id) for a in argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("election-pipeline: error:") and message in err
    after = _alerts(db_url)["night_activity"]
    assert (after.status, after.notes, after.assigned_to) == (before.status, before.notes, before.assigned_to)


def test_ambiguous_prefix_is_refused(db_url, capsys):
    engine = get_engine(db_url)
    with Session(engine) as db:  # two alerts whose ids share a prefix
        for n, alert in enumerate(db.scalars(select(Alert).where(Alert.constituency_id == "CtrB"))):
            give_alert_id(db, alert, f"abcd{n}-same-prefix")
        db.commit()
    assert main(["alerts", "show", "abcd"]) == 2
    assert "ambiguous" in capsys.readouterr().err
    assert main(["alerts", "show", "abcd1"]) == 0


def test_parse_until():
    now = datetime(2024, 9, 7, 12)
    assert parse_until("30m", now) == datetime(2024, 9, 7, 12, 30)
    assert parse_until("1.5d", now) == datetime(2024, 9, 9, 0)
    assert parse_until("2024-09-07T18:00+03:00") == datetime(2024, 9, 7, 15)
    assert parse_until("2024-09-07T18:00") == datetime(2024, 9, 7, 18)


def test_cli_edits_survive_two_materialisations(tmp_path, monkeypatch, capsys):
    """The real graph on a real Dagster instance: an analyst works on the critical alert
    through the CLI between runs, and two more materialisations change none of it."""
    ws = make_workspace(tmp_path / "ws")
    drop_all(ws)
    settings = ws.settings()
    monkeypatch.setenv("ELECTION_DATABASE_URL", settings.database_url)
    assets = [reference_data, raw_transactions, hourly_stats, constituency_metrics, alerts, *ALL_CHECKS]
    with dg.DagsterInstance.ephemeral() as instance:
        assert dg.materialize(assets, resources=build_resources(settings), instance=instance).success
        engine = get_engine(settings.database_url)
        with Session(engine) as db:
            critical = db.scalars(
                select(Alert).where(Alert.type == "votes_exceed_bulletins", Alert.constituency_id == CONTRACT_B)
            ).one()
        assert main(["alerts", "assign", critical.id, "boris"]) == 0
        assert main(["alerts", "note", critical.id, "Asked the commission for the paper log", "--author", "boris"]) == 0
        assert main(["alerts", "status", critical.id, "investigating"]) == 0
        with Session(engine) as db:
            before = sorted((a.id, a.fingerprint) for a in db.scalars(select(Alert)))

        for _ in range(2):
            assert dg.materialize(assets, resources=build_resources(settings), instance=instance).success
        with Session(engine) as db:
            after = db.get(Alert, critical.id)
            assert after is not None
            assert (after.status, after.assigned_to) == ("investigating", "boris")
            assert [n["text"] for n in after.notes] == ["Asked the commission for the paper log"]
            assert sorted((a.id, a.fingerprint) for a in db.scalars(select(Alert))) == before
    capsys.readouterr()
