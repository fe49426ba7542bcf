"""The alert workflow through the API and the command line, and its audit trail: every
change recorded with who made it (the token's name; the OS user or ``--as NAME``), what
changed from what to what, shown by ``GET /api/alerts/{id}`` and ``alerts show``; and HTTP
caching (ETag / If-None-Match) following the changes."""

from __future__ import annotations

import getpass
import json
from datetime import timedelta

from election_pipeline.cli import main
from election_pipeline.db.models import utcnow
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.stages.conftest import at, file_name, make_workspace, vote

from .conftest import C2, NOW, Api
from .test_cli_api_parity import _naive


def _alert(api: Api) -> str:
    return api.get("/api/alerts")["items"][0]["id"]


def test_triage_and_notes_through_the_api_are_in_the_history(fresh_api: Api):
    api = fresh_api
    alert = _alert(api)
    url = f"/api/alerts/{alert}"
    r = api.client.patch(url, json={"status": "investigating", "assigned_to": "anna"}, headers=api.headers("analyst"))
    assert r.status_code == 200, r.text
    assert (r.json()["status"], r.json()["assigned_to"]) == ("investigating", "anna")
    r = api.client.post(f"{url}/notes", json={"text": "Checked W1-W3: one key each."}, headers=api.headers("analyst"))
    assert r.status_code == 201 and r.json()["notes"][-1]["author"] == "analyst-tool"
    until = (utcnow() + timedelta(hours=2)).replace(microsecond=0)
    r = api.client.patch(url, json={"snoozed_until": until.isoformat() + "Z"}, headers=api.headers("admin"))
    assert r.status_code == 200 and r.json()["status"] == "snoozed"
    assert r.json()["snoozed_until"] == until.isoformat() + "Z"
    r = api.client.patch(url, json={"status": "resolved", "assigned_to": None}, headers=api.headers("analyst"))
    assert r.status_code == 200 and r.json()["resolved_at"].endswith("Z") and r.json()["assigned_to"] is None

    history = api.get(url)["history"]
    assert [(e["actor"], e["action"]) for e in history] == [
        ("analyst-tool", "triage"),
        ("analyst-tool", "note"),
        ("admin-tool", "triage"),
        ("analyst-tool", "triage"),
    ]
    assert history[0]["changes"] == {
        "status": {"from": "active", "to": "investigating"},
        "assigned_to": {"from": None, "to": "anna"},
    }
    assert history[1]["changes"]["note"] == {"from": None, "to": "Checked W1-W3: one key each."}
    assert history[2]["changes"]["status"] == {"from": "investigating", "to": "snoozed"}
    assert history[2]["changes"]["snoozed_until"] == {"from": None, "to": until.isoformat() + "Z"}
    assert history[3]["changes"]["status"] == {"from": "snoozed", "to": "resolved"}
    assert history[3]["changes"]["assigned_to"] == {"from": "anna", "to": None}
    assert set(history[3]["changes"]) == {"status", "assigned_to", "snoozed_until", "resolved_at"}
    assert all(e["at"].endswith("Z") for e in history)


def test_bad_changes_are_422_and_change_nothing(fresh_api: Api):
    api = fresh_api
    alert = _alert(api)
    url, headers = f"/api/alerts/{alert}", api.headers("analyst")
    past = (utcnow() - timedelta(hours=1)).isoformat()
    for body in (
        {},
        {"status": "closed"},
        {"status": "snoozed"},  # without snoozed_until
        {"snoozed_until": past},
        {"status": "resolved", "snoozed_until": (utcnow() + timedelta(hours=1)).isoformat()},
        {"snoozed_until": "tomorrow"},
        {"colour": "red"},
        {"assigned_to": "x" * 256},
    ):
        r = api.client.patch(url, json=body, headers=headers)
        assert r.status_code == 422, (body, r.text)
        assert r.json()["detail"]
    notes: list[dict[str, object]] = [{}, {"text": ""}, {"text": "x" * 10_001}, {"text": 5}]
    for note in notes:
        assert api.client.post(f"{url}/notes", json=note, headers=headers).status_code == 422, note
    assert (
        api.client.patch(url, content=b"{not json", headers=headers | {"content-type": "application/json"}).status_code
        == 422
    )
    assert api.client.patch("/api/alerts/nope", json={"status": "resolved"}, headers=headers).status_code == 404
    assert api.client.post("/api/alerts/nope/notes", json={"text": "x"}, headers=headers).status_code == 404
    after = api.get(url)
    assert after["status"] == "active" and after["history"] == [] and after["notes"] == []


def test_cli_changes_are_recorded_as_the_os_user_or_as_named(fresh_api: Api, monkeypatch, capsys):
    api = fresh_api
    monkeypatch.setenv("ELECTION_DATABASE_URL", api.url)
    alert = _alert(api)
    assert main(["alerts", "assign", alert[:8], "boris"]) == 0
    assert main(["alerts", "status", alert[:8], "investigating", "--as", "night-shift"]) == 0
    assert main(["alerts", "note", alert[:8], "Looked at it", "--author", "boris", "--as", "night-shift"]) == 0
    capsys.readouterr()

    history = api.get(f"/api/alerts/{alert}")["history"]
    assert [(e["actor"], e["action"], sorted(e["changes"])) for e in history] == [
        (getpass.getuser(), "assign", ["assigned_to"]),
        ("night-shift", "status", ["status"]),
        ("night-shift", "note", ["note"]),
    ]

    assert main(["alerts", "show", alert]) == 0
    text = capsys.readouterr().out
    assert "history (3 change(s))" in text
    assert f"{getpass.getuser()} (assign): assigned_to: - -> boris" in text
    assert "night-shift (status): status: active -> investigating" in text
    assert main(["alerts", "show", alert, "--format", "json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["history"] == _naive(history)  # the CLI and the API give the same history

    assert main(["alerts", "status", alert, "resolved", "--as", ""]) == 2
    assert "--as must not be empty" in capsys.readouterr().err


def test_a_change_that_changes_nothing_records_nothing(fresh_api: Api, monkeypatch):
    api = fresh_api
    monkeypatch.setenv("ELECTION_DATABASE_URL", api.url)
    alert = _alert(api)
    assert main(["alerts", "status", alert, "active"]) == 0  # it is active already
    assert api.get(f"/api/alerts/{alert}")["history"] == []


def test_etag_gives_304_until_something_changes(fresh_api: Api):
    api = fresh_api
    alert = _alert(api)
    first = api.client.get("/api/alerts", headers=api.headers())
    tag = first.headers["etag"]
    again = api.client.get("/api/alerts", headers=api.headers() | {"If-None-Match": tag})
    assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == tag
    # Another query or another path has another ETag.
    assert api.client.get("/api/alerts?status=active", headers=api.headers()).headers["etag"] != tag
    summary = api.client.get("/api/metrics/dashboard/summary", headers=api.headers())
    assert summary.headers["etag"] != tag
    # The ETag is checked after the token: no token, no 304.
    assert api.client.get("/api/alerts", headers={"If-None-Match": tag}).status_code == 401

    api.client.patch(f"/api/alerts/{alert}", json={"status": "investigating"}, headers=api.headers("analyst"))
    changed = api.client.get("/api/alerts", headers=api.headers() | {"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag
    assert changed.json()["items"][0]["status"] == "investigating"
    dashboard = api.client.get(
        "/api/metrics/dashboard/summary", headers=api.headers() | {"If-None-Match": summary.headers["etag"]}
    )
    assert dashboard.status_code == 200 and dashboard.json()["alerts_by_status"] == {"investigating": 1}


def test_the_pipelines_own_changes_are_in_the_history_by_pipeline(fresh_api: Api, tmp_path):
    api = fresh_api
    alert = _alert(api)
    r = api.client.patch(f"/api/alerts/{alert}", json={"status": "resolved"}, headers=api.headers("analyst"))
    assert r.status_code == 200
    # A new file for Hillside: a fourth voter, still one bulletin, so 3 votes without one (was 2).
    ws = make_workspace(tmp_path / "ws", api.url)
    try:
        ws.drop(file_name(C2, 8), [vote("W4", at(8, 10), "L4")])
        ws.ingest()
        publish_hourly_stats(ws.duck, ws.engine)
        metrics = publish_metrics(ws.duck, ws.engine, THRESHOLDS, now=NOW)
        publish_alerts(ws.engine, metrics.findings, now=NOW)
    finally:
        ws.close()
    body = api.get(f"/api/alerts/{alert}")
    assert body["status"] == "active"
    events = [(e["actor"], e["action"]) for e in body["history"]]
    assert events == [("analyst-tool", "triage"), ("pipeline", "reopen"), ("pipeline", "refresh")]
    reopen, refresh = body["history"][1]["changes"], body["history"][2]["changes"]
    assert reopen["status"] == {"from": "resolved", "to": "active"}
    assert reopen["reason"]["to"] == "its statistic rose from 2 to 3"
    assert refresh["statistic"] == {"from": 2.0, "to": 3.0} and "description" in refresh
    assert body["history"][0]["at"] <= body["history"][1]["at"]  # wall-clock times, in order


def test_the_response_cache_serves_repeats_and_sees_the_next_change(fresh_api: Api, monkeypatch):
    """The summary, the alert list, the metrics and the hourly stats are kept rendered, keyed
    by their ETag: a repeat is answered from the cache with the same body, and a change in
    the data (here through the CLI, beside the API) is in the very next answer, without
    If-None-Match."""
    api = fresh_api
    monkeypatch.setenv("ELECTION_DATABASE_URL", api.url)
    alert = _alert(api)
    cache = api.client.app.state.response_cache  # type: ignore[attr-defined]
    cid = api.client.get(f"/api/alerts/{alert}", headers=api.headers()).json()["constituency_id"]
    eid = api.client.get(f"/api/constituencies/{cid}", headers=api.headers()).json()["election_id"]
    paths = ["/api/metrics/dashboard/summary", "/api/alerts?limit=100"]
    figures = [
        f"/api/metrics/constituency/{cid}",
        f"/api/metrics/constituency/{cid}/time-period?period=hour",
        f"/api/metrics/election/{eid}",
        f"/api/hourly-stats/constituency/{cid}",
        f"/api/hourly-stats/election/{eid}?window=2",
    ]
    kept = len(cache)
    first = {p: api.client.get(p, headers=api.headers()) for p in paths + figures}
    assert all(r.status_code == 200 for r in first.values())
    assert len(cache) == kept + len(paths) + len(figures)
    for p in figures:
        again = api.client.get(p, headers=api.headers())
        assert again.content == first[p].content and again.headers["etag"] == first[p].headers["etag"]
    assert len(cache) == kept + len(paths) + len(figures)
    for p in paths:
        again = api.client.get(p, headers=api.headers())
        assert again.status_code == 200 and again.content == first[p].content
        assert again.headers["etag"] == first[p].headers["etag"]
        assert again.headers["content-type"] == "application/json"
    assert len(cache) == kept + len(paths) + len(figures)
    assert first[paths[0]].json()["alerts_by_status"] == {"active": 1}
    assert first[paths[1]].json()["items"][0]["status"] == "active"

    assert main(["alerts", "status", alert, "investigating"]) == 0
    summary = api.client.get(paths[0], headers=api.headers())
    alerts = api.client.get(paths[1], headers=api.headers())
    assert summary.json()["alerts_by_status"] == {"investigating": 1}
    assert alerts.json()["items"][0]["status"] == "investigating"
    assert summary.headers["etag"] != first[paths[0]].headers["etag"]
    for p in figures:  # a new data version: computed afresh, the same figures
        fresh = api.client.get(p, headers=api.headers())
        assert fresh.headers["etag"] != first[p].headers["etag"] and fresh.json() == first[p].json()
    # The cached answer is the one FastAPI renders for the response model (no cache).
    assert summary.json() == api.client.get("/api/metrics/dashboard/detailed", headers=api.headers()).json()["summary"]
