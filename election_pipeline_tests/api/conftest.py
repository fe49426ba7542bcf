"""A small election filled by the real pipeline from real export files, for the API tests, on
a SQLite file and on a PostgreSQL schema of its own.

Election E1 "Test election" (Europe/Moscow, UTC+3; voting 2024-09-06 08:00 to 2024-09-08
20:00 local, i.e. 05:00 to 17:00 UTC):

* CtrNorth1 "Riverside" (North, urban, 10 registered voters):
  - file 07:00-08:00 UTC: B1 issues 3 bulletins (07:05); V1 (voter K1, 07:10) and V2 (K2,
    07:20) vote; V3 (K3, 07:30) votes but is rejected by the contract;
  - file 08:00-09:00 UTC: B2 issues 2 bulletins (08:05); V4 (K3, 08:10: K3's first accepted
    vote) and V5 (K1 again, 08:20: a revote).
  Hand-computed: 07:00 transactions 4, bulletins 3, votes 2, rejected 1 (cumulative 3 / 2,
  participation 20 %); 08:00 transactions 3, bulletins 2, votes 1, revotes 1 (cumulative
  5 / 3, participation 30 %). Totals: bulletins 5, voters 3, revotes 1, rejected 1,
  transactions 7, participation 30.0, issued but not voted 2.
* CtrSouth2 "Hillside" (South, rural, 4 registered voters), read from a block dump of the
  node (blocks 41 and 42, two transactions each): B3 issues 1 bulletin (07:01), W1-W3
  (voters L1-L3, 07:02-07:04) vote: 3 voters for 1 bulletin, so a critical
  ``votes_exceed_bulletins`` alert. Participation 75.0, issued but not voted -2. Block 41
  holds B3 and W1, block 42 W2 and W3.
* The election: 14 registered, 6 bulletins, 6 voters (participation 6 / 14 = 42.857 %);
  07:00 UTC bulletins 4, votes 5, transactions 8; 08:00 bulletins 2, votes 1, revotes 1,
  transactions 3.

The stages run as the asset graph runs them (ingest, publish, hourly stats, constituency
metrics with detection, alerts, election metrics), at a fixed instant (:data:`NOW`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from election_pipeline.api import create_app
from election_pipeline.api.tokens import create_token
from election_pipeline.sample.block_dump import write_block_dump
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.election_metrics import publish_election_metrics
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline_tests.builders import THRESHOLDS
from election_pipeline_tests.conftest import new_postgres_schema
from election_pipeline_tests.stages.conftest import at, bsi, file_name, make_workspace, vote

E1 = "E1"
C1, C2 = "CtrNorth1", "CtrSouth2"
ELECTION = "E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"
#: The instant the metrics and alerts are computed at.
NOW = datetime(2024, 9, 6, 9, 30)


def fill(root: Path, url: str) -> Engine:
    """Run the pipeline's stages on the export files described above into ``url``."""
    ws = make_workspace(root, url)
    try:
        ws.write_reference(
            [ELECTION], [f"{C1},E1,Riverside,North,urban,10,active", f"{C2},E1,Hillside,South,rural,4,active"]
        )
        ws.drop(
            file_name(C1, 7),
            [
                bsi("B1", at(7, 5), 3),
                vote("V1", at(7, 10), "K1"),
                vote("V2", at(7, 20), "K2"),
                vote("V3", at(7, 30), "K3", rejected=True),
            ],
        )
        ws.drop(file_name(C1, 8), [bsi("B2", at(8, 5), 2), vote("V4", at(8, 10), "K3"), vote("V5", at(8, 20), "K1")])
        south = [
            bsi("B3", at(7, 1), 1),
            vote("W1", at(7, 2), "L1"),
            vote("W2", at(7, 3), "L2"),
            vote("W3", at(7, 4), "L3"),
        ]
        write_block_dump(
            [(C2, line) for line in south], ws.input_dir / "node-dump.jsonl", transactions_per_block=2, first_height=41
        )
        ws.ingest()
        publish_hourly_stats(ws.duck, ws.engine)
        metrics = publish_metrics(ws.duck, ws.engine, THRESHOLDS, now=NOW)
        publish_alerts(ws.engine, metrics.findings, now=NOW)
        publish_election_metrics(ws.engine, THRESHOLDS.offline_after_hours)
    finally:
        ws.close()
    return ws.engine


@dataclass
class Api:
    """The app on a filled database, and one token of each role."""

    url: str
    engine: Engine
    client: TestClient
    tokens: dict[str, str]

    def headers(self, role: str = "observer") -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[role]}"}

    def get(self, path: str, role: str = "observer", **params: Any) -> Any:
        response = self.client.get(path, headers=self.headers(role), params=params)
        assert response.status_code == 200, (path, response.status_code, response.text)
        return response.json()


def make_api(url: str, engine: Engine) -> Api:
    tokens = {}
    with Session(engine) as db:
        for role in ("observer", "analyst", "admin"):
            _row, tokens[role] = create_token(db, name=f"{role}-tool", role=role)
    app = create_app(url, public_read=False)
    return Api(url=url, engine=engine, client=TestClient(app), tokens=tokens)


def _database(kind: str, root: Path) -> Iterator[str]:
    if kind == "sqlite":
        yield f"sqlite:///{root / 'ops.db'}"
        return
    with new_postgres_schema() as url:
        yield url


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    """The filled database (read-only tests share it within a module), on each engine."""
    root = tmp_path_factory.mktemp(f"api-{request.param}")
    for url in _database(request.param, root):
        yield make_api(url, fill(root / "ws", url))


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_api(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Api]:
    """The filled database, new for each test (for the tests that change alerts)."""
    for url in _database(request.param, tmp_path):
        yield make_api(url, fill(tmp_path / "ws", url))
