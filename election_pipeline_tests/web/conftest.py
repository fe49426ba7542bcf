"""The triage page on the API tests' election (``election_pipeline_tests/api/conftest.py``:
E1 with CtrNorth1 "Riverside" and CtrSouth2 "Hillside", whose 3 voters for 1 bulletin are a
critical ``votes_exceed_bulletins`` alert), filled by the pipeline's stages into SQLite (and
PostgreSQL for the tests that change alerts), with
the election report drawn, and one token of each role."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from election_pipeline.api import create_app
from election_pipeline.api.tokens import create_token
from election_pipeline.stages.report import write_reports
from election_pipeline_tests.api.conftest import fill
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.conftest import new_postgres_schema


@dataclass
class Web:
    url: str
    engine: Engine
    client: TestClient
    tokens: dict[str, str]
    reports: Path

    def new_client(self) -> TestClient:
        return TestClient(self.client.app, base_url="http://testserver")

    def sign_in(self, role: str = "observer", client: TestClient | None = None) -> TestClient:
        """A client signed in with the token of ``role``."""
        client = client or self.new_client()
        form = client.get("/login")
        assert form.status_code == 200, form.text
        response = client.post(
            "/login",
            data={"token": self.tokens[role], "csrf": hidden(form.text, "csrf"), "next": "/"},
            follow_redirects=False,
        )
        assert response.status_code == 303, response.text
        return client


def hidden(html: str, name: str) -> str:
    """The value of the first hidden field ``name`` of a page."""
    match = re.search(rf'<input type="hidden" name="{name}" value="([^"]*)"', html)
    assert match, f"no hidden field {name} in the page"
    return match.group(1)


def make_web(root: Path, url: str | None = None) -> Web:
    url = url or f"sqlite:///{root / 'ops.db'}"
    engine = fill(root / "ws", url)
    reports = root / "reports"
    write_reports(engine, reports, THRESHOLDS.offline_after_hours)
    tokens = {}
    with Session(engine) as db:
        for role in ("observer", "analyst", "admin"):
            _row, tokens[role] = create_token(db, name=f"{role}-person", role=role)
    app = create_app(url, public_read=False)
    app.state.web_reports_dir = str(reports)
    return Web(url, engine, TestClient(app), tokens, reports)


@pytest.fixture(scope="module")
def web(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Web]:
    """The filled database, shared by the read-only tests of a module."""
    yield make_web(tmp_path_factory.mktemp("web"))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_web(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Web]:
    """The filled database, new for each test (for the tests that change alerts), on each engine."""
    if request.param == "sqlite":
        yield make_web(tmp_path)
        return
    with new_postgres_schema() as url:
        web = make_web(tmp_path, url)
        try:
            yield web
        finally:
            web.engine.dispose()
