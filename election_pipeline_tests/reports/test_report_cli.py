"""``election-pipeline report ...`` as a person or a script calls it, on the database of conftest.py."""

import csv
import io
import json

import pytest

from election_pipeline.cli import main
from election_pipeline.stages.election_metrics import publish_election_metrics
from election_pipeline_tests.builders import THRESHOLDS

from .conftest import C1, CX, E1


@pytest.fixture
def db(metrics_db, monkeypatch):
    monkeypatch.setenv("ELECTION_DATABASE_URL", metrics_db.url)
    publish_election_metrics(metrics_db.engine, THRESHOLDS.offline_after_hours)
    return metrics_db


def _run(capsys, *argv: str) -> str:
    assert main(["report", *argv]) == 0
    return capsys.readouterr().out


def test_report_election_in_all_three_formats(db, capsys):
    data = json.loads(_run(capsys, "election", E1, "--format", "json"))
    assert data["election"]["participation_rate"] == 12.5
    assert data["election"]["constituencies_offline"] == 2
    assert data["election"]["summary"]["constituencies"]["never_reported"] == 1
    assert [c["id"] for c in data["constituencies"]][:2] == [C1, "CtrSouthTwo"]  # most anomalous first
    assert data["constituencies"][0]["open_alerts"] == 2 and data["constituencies"][0]["issued_not_voted"] == -3

    rows = list(csv.DictReader(io.StringIO(_run(capsys, "election", E1, "--format", "csv"))))
    assert len(rows) == 4 and rows[0]["id"] == C1 and rows[0]["votes_cast"] == "20"

    table = _run(capsys, "election", E1)
    assert "Test election" in table and "participation %        12.5" in table
    assert "offline                2" in table and "North One" in table


def test_report_constituency_by_period(db, capsys):
    data = json.loads(_run(capsys, "constituency", C1, "--period", "day", "--format", "json"))
    assert data["constituency"]["timezone"] == "Europe/Moscow"
    assert [(p["period_start"], p["votes_cast"]) for p in data["by_period"]] == [
        ("2024-09-06T00:00:00+03:00", 16),
        ("2024-09-07T00:00:00+03:00", 4),
    ]
    assert {p["local_hour"]: p["vote_share"] for p in data["hourly_activity_pattern"] if p["votes_cast"]} == {
        0: 20.0,
        8: 40.0,
        9: 30.0,
        23: 10.0,
    }

    rows = list(
        csv.DictReader(
            io.StringIO(
                _run(
                    capsys,
                    "constituency",
                    C1,
                    "--period",
                    "hour",
                    "--from",
                    "2024-09-06T20:00",
                    "--to",
                    "2024-09-07T00:00",
                    "--format",
                    "csv",
                )
            )
        )
    )
    assert [(r["period_start"], r["votes_cast"], r["cumulative_votes"]) for r in rows] == [
        ("2024-09-06T23:00:00+03:00", "2", "16"),
        ("2024-09-07T00:00:00+03:00", "4", "20"),
    ]

    table = _run(capsys, "constituency", C1, "--period", "week")
    assert "By week (local calendar, Europe/Moscow)" in table and "2024-09-02T00:00:00+03:00" in table


def test_report_hourly_for_a_constituency_and_an_election(db, capsys):
    data = json.loads(_run(capsys, "hourly", C1, "--from", "2024-09-06T20:00", "--window", "2", "--format", "json"))
    assert data["scope"] == "constituency" and data["rolling_window_hours"] == 2
    assert [
        (
            h["hour"],
            h["local_time"],
            h["votes_cast"],
            h["issued_not_voted"],
            h["vote_to_bulletin_ratio"],
            h["rolling_ratio"],
        )
        for h in data["hours"]
    ] == [
        ("2024-09-06T20:00:00", "2024-09-06 23:00", 2, 1, 1.0, 2 / 2),
        ("2024-09-06T21:00:00", "2024-09-07 00:00", 4, -3, None, 3.0),
    ]
    rows = list(csv.DictReader(io.StringIO(_run(capsys, "hourly", E1, "--to", "2024-09-06T08:00", "--format", "csv"))))
    assert [(r["hour"], r["votes_cast"], r["cumulative_votes"], r["participation_rate"]) for r in rows] == [
        ("2024-09-06T05:00:00", "12", "12", "6.0"),
        ("2024-09-06T06:00:00", "6", "18", "9.0"),
        ("2024-09-06T07:00:00", "1", "19", "9.5"),
    ]
    assert "hour by hour, UTC" in _run(capsys, "hourly", CX)


def test_report_dashboard(db, capsys):
    data = json.loads(_run(capsys, "dashboard", "--format", "json"))
    assert data["unknown_constituencies"] == 1 and data["open_alerts"]["critical"] == 1
    assert "open alerts: warning" in _run(capsys, "dashboard")


def test_report_errors_are_clear(db, capsys):
    assert main(["report", "hourly", "nope"]) == 2
    assert "no constituency or election with id 'nope'" in capsys.readouterr().err
    assert main(["report", "election", "nope"]) == 2
    assert "no election with id 'nope'" in capsys.readouterr().err
    assert main(["report", "hourly", C1, "--from", "noon"]) == 2
    assert "not an ISO 8601" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["report", "constituency", C1, "--period", "fortnight"])
