"""Every read endpoint on the database the pipeline filled (conftest.py), SQLite then
PostgreSQL: the exact figures computed by hand in conftest.py, filters, pagination, 404 for
an unknown id and 422 for a bad parameter."""

from __future__ import annotations

import pytest

from election_pipeline.db.session import head_revision

from .conftest import C1, C2, E1, Api


def test_health_needs_no_token_and_names_the_latest_materialisation(api: Api):
    response = api.client.get("/api/health")
    assert response.status_code == 200
    body = response.json()
    # the database the pipeline migrated is at the newest migration
    assert body["status"] == "ok" and body["database"] == "reachable" and body["revision"] == head_revision()
    assert body["latest_materialisation"].endswith("Z")


def test_elections_and_one_election(api: Api):
    page = api.get("/api/elections")
    assert [e["id"] for e in page["items"]] == [E1] and page["has_more"] is False
    election = api.get(f"/api/elections/{E1}")
    assert election["name"] == "Test election" and election["timezone"] == "Europe/Moscow"
    # 08:00 and 20:00 in Moscow (UTC+3) are 05:00 and 17:00 UTC, written with their Z.
    assert (election["start_date"], election["end_date"]) == ("2024-09-06T05:00:00Z", "2024-09-08T17:00:00Z")
    assert election["total_constituencies"] == 2


def test_constituencies_with_their_figures_and_filters(api: Api):
    page = api.get("/api/constituencies", election_id=E1)
    by_id = {c["id"]: c for c in page["items"]}
    assert set(by_id) == {C1, C2}
    c1 = by_id[C1]
    assert (c1["registered_voters"], c1["bulletins_issued"], c1["votes_cast"], c1["revote_count"]) == (10, 5, 3, 1)
    assert (c1["rejected_count"], c1["transaction_count"], c1["participation_rate"]) == (1, 7, 30.0)
    c2 = by_id[C2]
    assert (c2["bulletins_issued"], c2["votes_cast"], c2["transaction_count"], c2["participation_rate"]) == (
        1,
        3,
        4,
        75.0,
    )
    assert [c["id"] for c in api.get("/api/constituencies", region="South")["items"]] == [C2]
    assert [c["id"] for c in api.get("/api/constituencies", type="urban")["items"]] == [C1]
    assert api.get("/api/constituencies", status="offline")["items"] == []
    assert api.get(f"/api/constituencies/{C2}")["name"] == "Hillside"


def test_transactions_filtered_by_constituency_type_time_and_paged(api: Api):
    c1 = api.get("/api/transactions", constituency_id=C1)["items"]
    assert [t["tx_id"] for t in c1] == ["B1", "V1", "V2", "V3", "B2", "V4", "V5"]  # oldest first
    assert [t["is_rejected"] for t in c1] == [False, False, False, True, False, False, False]
    assert c1[0]["timestamp"] == "2024-09-06T07:05:00Z" and c1[0]["bulletins"] == 3
    votes = api.get("/api/transactions", constituency_id=C1, type="vote")["items"]
    assert [t["tx_id"] for t in votes] == ["V1", "V2", "V3", "V4", "V5"]
    window = api.get("/api/transactions", start_time="2024-09-06T10:05:00+03:00", end_time="2024-09-06T07:20:00Z")[
        "items"
    ]
    assert [t["tx_id"] for t in window] == ["B1", "V1"]  # [07:05, 07:20) UTC: V2 at 07:20 is out
    # Instants that fall just outside years 1-9999 once in UTC are before or after everything.
    assert api.get("/api/transactions", end_time="0001-01-01T00:00:00+00:01")["items"] == []
    after = api.get("/api/transactions", start_time="0001-01-01T00:00:00+00:01", end_time="9999-12-31T23:30-01:00")
    assert len(after["items"]) == 11 and after["has_more"] is False  # everything
    first = api.get("/api/transactions", limit=4)
    second = api.get("/api/transactions", limit=4, skip=8)
    assert len(first["items"]) == 4 and first["has_more"] is True
    assert len(second["items"]) == 3 and second["has_more"] is False  # 11 in all
    assert api.get("/api/transactions", block_height=5)["items"] == []
    # C2 came as a block dump: its transactions name their blocks; C1's export carries none.
    assert [t["tx_id"] for t in api.get("/api/transactions", block_height=42)["items"]] == ["W2", "W3"]
    assert {t["tx_id"]: t["block_height"] for t in api.get("/api/transactions", constituency_id=C2)["items"]} == {
        "B3": 41,
        "W1": 41,
        "W2": 42,
        "W3": 42,
    }
    assert {t["block_height"] for t in c1} == {None}


def test_hourly_stats_of_a_constituency_and_of_the_election(api: Api):
    c1 = api.get(f"/api/hourly-stats/constituency/{C1}")
    assert (c1["scope"], c1["timezone"], c1["registered_voters"]) == ("constituency", "Europe/Moscow", 10)
    rows = [
        (h["hour"], h["transaction_count"], h["bulletins_issued"], h["votes_cast"], h["revote_count"])
        + (h["rejected_count"], h["cumulative_votes"], h["participation_rate"], h["vote_velocity"])
        for h in c1["items"]
    ]
    assert rows == [
        ("2024-09-06T07:00:00Z", 4, 3, 2, 0, 1, 2, 20.0, round(2 / 60, 4)),
        ("2024-09-06T08:00:00Z", 3, 2, 1, 1, 0, 3, 30.0, round(1 / 60, 4)),
    ]
    assert c1["items"][0]["local_time"] == "2024-09-06 10:00"
    assert c1["items"][0]["bulletin_velocity"] == 0.05

    e1 = api.get(f"/api/hourly-stats/election/{E1}")["items"]
    assert [(h["bulletins_issued"], h["votes_cast"], h["transaction_count"]) for h in e1] == [(4, 5, 8), (2, 1, 3)]
    assert [h["participation_rate"] for h in e1] == [round(5 / 14 * 100, 4), round(6 / 14 * 100, 4)]
    assert [h["vote_to_bulletin_ratio"] for h in e1] == [1.25, 0.5]

    cut = api.get(f"/api/hourly-stats/election/{E1}", start_time="2024-09-06T08:00:00Z")
    assert [h["hour"] for h in cut["items"]] == ["2024-09-06T08:00:00Z"] and cut["from"] == "2024-09-06T08:00:00Z"
    paged = api.get(f"/api/hourly-stats/election/{E1}", limit=1)
    assert len(paged["items"]) == 1 and paged["has_more"] is True


def test_constituency_metrics_and_by_period(api: Api):
    body = api.get(f"/api/metrics/constituency/{C1}")
    totals = body["constituency"]
    assert (totals["issued_not_voted"], totals["participation_rate"], totals["open_alerts"]) == (2, 30.0, 0)
    assert totals["last_activity"] == "2024-09-06T08:20:00Z" and totals["election_id"] == E1
    pattern = {p["local_hour"]: p["votes_cast"] for p in body["hourly_activity_pattern"] if p["votes_cast"]}
    assert pattern == {10: 2, 11: 1}  # 07:00 and 08:00 UTC are 10:00 and 11:00 in Moscow

    day = api.get(f"/api/metrics/constituency/{C1}/time-period", period="day")
    assert [(p["period_start"], p["votes_cast"], p["bulletins_issued"]) for p in day["periods"]] == [
        ("2024-09-06T00:00:00+03:00", 3, 5)
    ]
    assert day["periods"][0]["period_start_utc"] == "2024-09-05T21:00:00Z"
    hours = api.get(
        f"/api/metrics/constituency/{C1}/time-period",
        period="hour",
        start_time="2024-09-06T08:00:00Z",
        end_time="2024-09-06T09:00:00Z",
    )
    assert [(p["period_start"], p["votes_cast"], p["participation_gain"]) for p in hours["periods"]] == [
        ("2024-09-06T11:00:00+03:00", 1, 10.0)
    ]
    assert (hours["from"], hours["to"]) == ("2024-09-06T08:00:00Z", "2024-09-06T09:00:00Z")


def test_election_metrics_its_constituencies_and_the_dashboard(api: Api):
    m = api.get(f"/api/metrics/election/{E1}")
    assert (m["registered_voters"], m["bulletins_issued"], m["votes_cast"], m["transaction_count"]) == (14, 6, 6, 11)
    assert m["participation_rate"] == round(6 / 14 * 100, 4) and m["issued_not_voted"] == 0
    assert (m["constituencies_reporting"], m["constituencies_with_critical_alerts"], m["open_alerts_critical"]) == (
        2,
        1,
        1,
    )
    assert m["summary"]["election"]["start_date"] == "2024-09-06T05:00:00Z"

    rows = api.get(f"/api/metrics/election/{E1}/constituencies")["items"]
    assert [(r["id"], r["open_alerts"], r["issued_not_voted"]) for r in rows] == [(C2, 1, -2), (C1, 0, 2)]

    s = api.get("/api/metrics/dashboard/summary")
    assert (s["elections"], s["constituencies"], s["votes_cast"], s["participation_rate"]) == (1, 2, 6, 42.8571)
    assert s["open_alerts"] == {"critical": 1, "warning": 0, "info": 0} and s["files"] == {"completed": 3}
    d = api.get("/api/metrics/dashboard/detailed")
    assert d["summary"] == s and [e["election_id"] for e in d["elections"]] == [E1]


def test_alerts_list_filters_and_detail_with_evidence(api: Api):
    alerts = api.get("/api/alerts")["items"]
    assert [(a["constituency_id"], a["type"], a["severity"], a["status"]) for a in alerts] == [
        (C2, "votes_exceed_bulletins", "critical", "active")
    ]
    assert (
        api.get("/api/alerts", election_id=E1, severity="critical", status="active", type="votes_exceed_bulletins")[
            "items"
        ]
        == alerts
    )
    for empty in ({"constituency_id": C1}, {"severity": "info"}, {"status": "resolved"}, {"election_id": "other"}):
        assert api.get("/api/alerts", **empty)["items"] == [], empty
    one = api.get(f"/api/alerts/{alerts[0]['id']}")
    assert [t["tx_id"] for t in one["evidence"]] == ["W1", "W2", "W3"]
    assert one["details"]["window_start"] == "2024-09-06T07:00:00Z" and one["history"] == []


def test_file_jobs(api: Api):
    jobs = api.get("/api/file-jobs", status="completed")["items"]
    assert sorted((j["filename"], j["transactions_processed"]) for j in jobs) == [
        (f"{C1}_2024-09-06_0700-0800.csv", 4),
        (f"{C1}_2024-09-06_0800-0900.csv", 3),
        ("node-dump.jsonl", 4),
    ]
    assert api.get("/api/file-jobs", status="failed")["items"] == []


@pytest.mark.parametrize(
    "path",
    [
        "/api/elections/nope",
        "/api/constituencies/nope",
        "/api/hourly-stats/constituency/nope",
        f"/api/hourly-stats/constituency/{E1}",  # an election is not a constituency
        f"/api/hourly-stats/election/{C1}",
        "/api/metrics/constituency/nope",
        "/api/metrics/constituency/nope/time-period",
        "/api/metrics/election/nope",
        "/api/metrics/election/nope/constituencies",
        "/api/alerts/nope",
    ],
)
def test_an_unknown_id_is_a_json_404(api: Api, path: str):
    response = api.client.get(path, headers=api.headers())
    assert response.status_code == 404, response.text
    assert "nope" in response.json()["detail"] or C1 in response.json()["detail"] or E1 in response.json()["detail"]


@pytest.mark.parametrize(
    ("path", "params", "where"),
    [
        ("/api/transactions", {"start_time": "yesterday"}, "start_time"),
        ("/api/transactions", {"end_time": "2024-13-01T00:00"}, "end_time"),
        ("/api/transactions", {"start_time": "2024-09-07T00:00Z", "end_time": "2024-09-06T00:00Z"}, "start_time"),
        ("/api/transactions", {"type": "ballot"}, "type"),
        ("/api/transactions", {"type": "VOTE"}, "type"),  # the canonical spelling only
        ("/api/transactions", {"block_height": "-1"}, "block_height"),
        ("/api/transactions", {"constituency_id": "a\x00b"}, "constituency_id"),
        ("/api/elections", {"limit": "1001"}, "limit"),
        ("/api/elections", {"limit": "0"}, "limit"),
        ("/api/elections", {"skip": "-1"}, "skip"),
        ("/api/constituencies", {"status": "sleeping"}, "status"),
        ("/api/alerts", {"severity": "fatal"}, "severity"),
        (f"/api/metrics/constituency/{C1}/time-period", {"period": "year"}, "period"),
        (f"/api/hourly-stats/election/{E1}", {"window": "0"}, "window"),
        (
            f"/api/hourly-stats/election/{E1}",
            {"start_time": "2024-09-06T09:00Z", "end_time": "2024-09-06T09:00Z"},
            "start_time",
        ),
        ("/api/file-jobs", {"status": "lost"}, "status"),
    ],
)
def test_a_bad_parameter_is_a_json_422_naming_it(api: Api, path: str, params: dict, where: str):
    response = api.client.get(path, headers=api.headers(), params=params)
    assert response.status_code == 422, response.text
    assert where in response.json()["detail"]


def test_an_unknown_or_repeated_query_parameter_is_a_422(api: Api):
    misspelt = api.client.get("/api/alerts", headers=api.headers(), params={"constituency": C1})
    assert misspelt.status_code == 422 and "'constituency'" in misspelt.json()["detail"]
    assert "constituency_id" in misspelt.json()["detail"]  # says what the endpoint takes
    twice = api.client.get("/api/alerts?severity=info&severity=critical", headers=api.headers())
    assert twice.status_code == 422 and "more than once" in twice.json()["detail"]
    assert api.client.get("/api/health?verbose=1").status_code == 422
