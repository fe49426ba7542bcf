"""The command line and the API give the same answers: the reports and the alert's details
come from the same functions (``election_pipeline.cli.report``, the alert CRUD); only the
instants differ in form (the API writes them with their ``Z``)."""

from __future__ import annotations

import json
from typing import Any

import pytest

from election_pipeline.cli import main

from .conftest import C1, C2, E1, Api


def _naive(value: Any) -> Any:
    """The API's answer with its instants written as the command line writes them."""
    if isinstance(value, str) and value.endswith("Z") and value[:4].isdigit() and "T" in value:
        return value[:-1]
    if isinstance(value, dict):
        return {k: _naive(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_naive(v) for v in value]
    return value


@pytest.fixture
def cli(api: Api, monkeypatch, capsys):
    monkeypatch.setenv("ELECTION_DATABASE_URL", api.url)

    def run(*argv: str) -> Any:
        assert main([*argv, "--format", "json"]) == 0
        return json.loads(capsys.readouterr().out)

    return run


def test_election_report_equals_the_election_metrics_and_constituencies(api: Api, cli):
    report = cli("report", "election", E1)
    metrics = _naive(api.get(f"/api/metrics/election/{E1}"))
    assert {k: v for k, v in metrics.items() if k not in ("created_at", "updated_at")} == {
        k: v for k, v in report["election"].items() if k not in ("created_at", "updated_at")
    }
    assert _naive(api.get(f"/api/metrics/election/{E1}/constituencies")["items"]) == report["constituencies"]


@pytest.mark.parametrize("period", ["hour", "day", "week", "month"])
def test_constituency_report_equals_the_constituency_metrics(api: Api, cli, period: str):
    report = cli(
        "report", "constituency", C1, "--period", period, "--from", "2024-09-06T07:00", "--to", "2024-09-06T09:00"
    )
    by_period = _naive(
        api.get(
            f"/api/metrics/constituency/{C1}/time-period",
            period=period,
            start_time="2024-09-06T07:00:00Z",
            end_time="2024-09-06T09:00:00Z",
        )
    )
    assert by_period["periods"] == report["by_period"] and by_period["timezone"] == report["constituency"]["timezone"]
    whole = cli("report", "constituency", C1)
    metrics = _naive(api.get(f"/api/metrics/constituency/{C1}"))
    assert metrics["constituency"] == whole["constituency"]
    assert metrics["hourly_activity_pattern"] == whole["hourly_activity_pattern"]


@pytest.mark.parametrize("scope", [C1, C2, E1])
def test_hourly_report_equals_the_hourly_stats(api: Api, cli, scope: str):
    report = cli("report", "hourly", scope, "--window", "2")
    kind = "election" if scope == E1 else "constituency"
    body = _naive(api.get(f"/api/hourly-stats/{kind}/{scope}", window=2))
    assert body["items"] == report["hours"] and body["scope"] == report["scope"] == kind
    assert (body["registered_voters"], body["rolling_window_hours"]) == (report["registered_voters"], 2)


def test_dashboard_report_equals_the_dashboard_summary(api: Api, cli):
    assert _naive(api.get("/api/metrics/dashboard/summary")) == cli("report", "dashboard")


def test_alerts_show_equals_the_alert_detail(api: Api, cli):
    listed = cli("alerts", "list")
    page = api.get("/api/alerts")["items"]
    assert [a["id"] for a in listed] == [a["id"] for a in page]
    alert = page[0]["id"]
    shown = cli("alerts", "show", alert)
    detail = api.get(f"/api/alerts/{alert}")
    for key in ("id", "type", "severity", "status", "title", "description", "notes", "assigned_to", "history"):
        assert _naive(detail[key]) == shown[key], key
    assert _naive(detail["details"]) == shown["details"]
    assert [t["tx_id"] for t in detail["evidence"]] == shown["details"]["evidence_tx_ids"]
