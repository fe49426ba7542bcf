"""Who may do what: no token 401, a bad or revoked token 401, a role too low 403, public reads
with ELECTION_API_PUBLIC_READ=1 (never the writes), and the token commands."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.api import create_app
from election_pipeline.api.tokens import hash_token
from election_pipeline.cli import main
from election_pipeline.db.models import ApiToken

from .conftest import C1, E1, Api

READS = [
    "/api/elections",
    f"/api/elections/{E1}",
    "/api/constituencies",
    f"/api/constituencies/{C1}",
    "/api/transactions",
    f"/api/hourly-stats/constituency/{C1}",
    f"/api/hourly-stats/election/{E1}",
    f"/api/metrics/constituency/{C1}",
    f"/api/metrics/constituency/{C1}/time-period",
    f"/api/metrics/election/{E1}",
    f"/api/metrics/election/{E1}/constituencies",
    "/api/metrics/dashboard/summary",
    "/api/metrics/dashboard/detailed",
    "/api/alerts",
    "/api/file-jobs",
]


@pytest.mark.parametrize("path", READS)
def test_every_read_needs_a_valid_token(api: Api, path: str):
    for headers in ({}, {"Authorization": "Bearer ep_not-a-token"}, {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = api.client.get(path, headers=headers)
        assert response.status_code == 401, (path, headers, response.text)
        assert response.headers["www-authenticate"] == "Bearer" and response.json()["detail"]
    assert api.client.get(path, headers=api.headers("observer")).status_code == 200


def test_the_schema_and_the_docs_are_public(api: Api):
    assert api.client.get("/openapi.json").json()["info"]["title"] == "Election pipeline API"
    assert api.client.get("/docs").status_code == 200


def _alert_id(api: Api) -> str:
    return api.get("/api/alerts")["items"][0]["id"]


def test_writes_need_an_analyst_and_token_management_an_admin(api: Api):
    alert = _alert_id(api)
    patch, note = f"/api/alerts/{alert}", f"/api/alerts/{alert}/notes"
    for headers, status in (({}, 401), (api.headers("observer"), 403)):
        assert api.client.patch(patch, json={"status": "investigating"}, headers=headers).status_code == status
        assert api.client.post(note, json={"text": "x"}, headers=headers).status_code == status
    response = api.client.patch(patch, json={"status": "investigating"}, headers=api.headers("observer"))
    assert response.json()["detail"] == "the role observer may not do this: it needs analyst or above"
    for role, status in (("observer", 403), ("analyst", 403), ("admin", 200)):
        assert api.client.get("/api/tokens", headers=api.headers(role)).status_code == status, role
    listed = api.get("/api/tokens", role="admin")
    assert {t["name"] for t in listed} >= {"observer-tool", "analyst-tool", "admin-tool"}
    assert all("token_hash" not in t for t in listed)
    # The alert is unchanged: no refused write went through.
    assert api.get(f"/api/alerts/{alert}")["status"] == "active"


def test_public_read_opens_the_reads_but_not_the_writes(api: Api):
    client = TestClient(create_app(api.url, public_read=True))
    for path in READS:
        assert client.get(path).status_code == 200, path
    alert = _alert_id(api)
    assert client.patch(f"/api/alerts/{alert}", json={"status": "resolved"}).status_code == 401
    assert client.post(f"/api/alerts/{alert}/notes", json={"text": "x"}).status_code == 401
    assert client.get("/api/tokens").status_code == 401
    assert client.get("/api/elections", headers={"Authorization": "Bearer wrong"}).status_code == 401


def test_public_read_from_the_environment(api: Api, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("ELECTION_API_PUBLIC_READ", "1")
    assert TestClient(create_app(api.url)).get("/api/elections").status_code == 200
    monkeypatch.setenv("ELECTION_API_PUBLIC_READ", "0")
    assert TestClient(create_app(api.url)).get("/api/elections").status_code == 401


def test_tokens_create_list_revoke_through_the_cli(fresh_api: Api, monkeypatch, capsys):
    api = fresh_api
    monkeypatch.setenv("ELECTION_DATABASE_URL", api.url)
    assert main(["tokens", "create", "--role", "analyst", "--name", "newsroom"]) == 0
    out = capsys.readouterr().out
    token = out.strip().splitlines()[-1].split()[-1]  # the last word of the last line
    assert token.startswith("ep_") and len(token) > 40
    with Session(api.engine) as db:
        row = db.scalars(select(ApiToken).where(ApiToken.name == "newsroom")).one()
        assert row.token_hash == hash_token(token) and token not in row.token_hash  # stored hashed only
    headers = {"Authorization": f"Bearer {token}"}
    assert api.client.get("/api/elections", headers=headers).status_code == 200

    assert main(["tokens", "list", "--format", "json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert {"name": "newsroom", "role": "analyst"}.items() <= next(t for t in listed if t["name"] == "newsroom").items()
    assert token not in json.dumps(listed)
    assert main(["tokens", "list"]) == 0
    table = capsys.readouterr().out
    assert "newsroom" in table and token not in table

    assert main(["tokens", "revoke", "newsroom"]) == 0
    assert "revoked" in capsys.readouterr().out
    response = api.client.get("/api/elections", headers=headers)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]

    assert main(["tokens", "revoke", "nobody-by-that-name"]) == 2
    assert "no token" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        main(["tokens", "create", "--role", "superuser", "--name", "x"])
    assert exit_info.value.code == 2


def test_an_admin_revokes_a_token_through_the_api(fresh_api: Api):
    api = fresh_api
    tokens = api.get("/api/tokens", role="admin")
    observer = next(t for t in tokens if t["name"] == "observer-tool")
    assert api.client.delete(f"/api/tokens/{observer['id']}", headers=api.headers("analyst")).status_code == 403
    response = api.client.delete(f"/api/tokens/{observer['id']}", headers=api.headers("admin"))
    assert response.status_code == 200 and response.json()["revoked_at"].endswith("Z")
    assert api.client.get("/api/elections", headers=api.headers("observer")).status_code == 401
    assert api.client.delete("/api/tokens/nope", headers=api.headers("admin")).status_code == 404
