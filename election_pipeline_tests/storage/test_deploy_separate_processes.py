"""The production layout of ``deploy/`` on one machine: the code location served by its own
``dagster code-server`` process, and the webserver and the daemon, separate processes that
reach it over gRPC (``deploy/workspace.yaml``), on the Dagster instance of
``deploy/dagster.yaml`` (PostgreSQL). Files dropped into the input folder are turned into a
run by the daemon's sensor, launched through the code server, and the figures reach the
operational database."""

from __future__ import annotations

import json
import shutil
import signal
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from dagster._core.storage.tags import GRPC_INFO_TAG

from election_pipeline.db.session import get_engine
from election_pipeline_tests.builders import make_workspace
from election_pipeline_tests.scenario import EXPECTED_HOURLY, drop_all, hourly_figures
from election_pipeline_tests.servers import free_port, graphql_data

from .process_helpers import REPO, kill_group, pipeline_env, start
from .test_dagster_on_postgres import DEPLOY_YAML, dagster_pg_env

pytestmark = pytest.mark.slow

BIN = Path(sys.executable).parent
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0

LOCATIONS_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries {
    name displayMetadata { key value } locationOrLoadError { __typename }
} } } }
"""
RUNS_QUERY = """
{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }
"""


def _wait(predicate, timeout: float, what: str, logs: list[Path]) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        try:
            value = predicate()
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            value = None
        if value:
            return value
        if time.monotonic() > deadline:
            tails = "\n".join(f"--- {p.name}\n" + p.read_text(errors="replace")[-3000:] for p in logs if p.exists())
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}\n{tails}")
        time.sleep(1.0)


def test_webserver_daemon_and_code_server_as_separate_processes_run_the_graph(
    tmp_path, postgres_database, postgres_schema_url, monkeypatch
):
    ws = make_workspace(tmp_path / "ws")
    home = tmp_path / "dagster_home"
    code_port, web_port = free_port(), free_port()
    s = ws.settings()
    env = pipeline_env(
        tmp_path / "ws",
        postgres_schema_url,
        home,
        ELECTION_INPUT_DIR=s.input_dir,
        ELECTION_REFERENCE_DIR=s.reference_dir,
        ELECTION_PROCESSED_DIR=s.processed_dir,
        ELECTION_QUARANTINE_DIR=s.quarantine_dir,
        ELECTION_DUCKDB_PATH=s.duckdb_path,
        ELECTION_SENSOR_INTERVAL_SECONDS="1",
        ELECTION_SCHEDULE_CRON="0 0 1 1 *",  # no scheduled run while the test watches the sensor's
        DAGSTER_CODE_SERVER_HOST="127.0.0.1",
        DAGSTER_CODE_SERVER_PORT=str(code_port),
        **dagster_pg_env(postgres_database["name"]),
    )
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    workspace_yaml = str(REPO / "deploy" / "workspace.yaml")
    logs = [tmp_path / name for name in ("code_server.log", "webserver.log", "daemon.log")]
    code_server = start(
        [
            str(BIN / "dagster"),
            "code-server",
            "start",
            "-h",
            "127.0.0.1",
            "-p",
            str(code_port),
            "-m",
            "election_pipeline.definitions",
            "--location-name",
            "election_pipeline",
        ],
        env,
        logs[0],
    )
    processes = [code_server]
    try:
        processes.append(
            start(
                [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(web_port), "-w", workspace_yaml],
                env,
                logs[1],
            )
        )
        processes.append(start([str(BIN / "dagster-daemon"), "run", "-w", workspace_yaml], env, logs[2]))
        url = f"http://127.0.0.1:{web_port}"

        def loaded() -> list[dict[str, Any]] | None:
            entries = graphql_data(url, LOCATIONS_QUERY)["workspaceOrError"]["locationEntries"]
            ok = entries and all(e["locationOrLoadError"]["__typename"] == "RepositoryLocation" for e in entries)
            return entries if ok else None

        [entry] = _wait(loaded, STARTUP_TIMEOUT, "the webserver to load the code location", logs)
        metadata = {m["key"]: m["value"] for m in entry["displayMetadata"]}
        # The webserver did not load the code itself: it reaches the code server's port.
        assert entry["name"] == "election_pipeline"
        assert (metadata.get("host"), metadata.get("port")) == ("127.0.0.1", str(code_port)), metadata

        drop_all(ws)  # the daemon's sensor turns the files into a run, launched through the code server

        def finished() -> list[dict[str, Any]] | None:
            runs = graphql_data(url, RUNS_QUERY)["runsOrError"]["results"]
            done = runs and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)
            return runs if done and not any(ws.input.iterdir()) else None

        runs = _wait(finished, RUN_TIMEOUT, "the sensor's run to finish", logs)
    finally:
        for proc in reversed(processes):
            if proc.poll() is None:
                kill_group(proc, signal.SIGTERM)
    assert {r["status"] for r in runs} == {"SUCCESS"}, runs
    tags = {t["key"]: t["value"] for t in runs[0]["tags"]}
    assert tags.get("dagster/sensor_name") == "input_folder_sensor"
    assert hourly_figures(get_engine(postgres_schema_url)) == EXPECTED_HOURLY
    # The daemon launched the run through the code server (the launcher records where).
    for key, value in dagster_pg_env(postgres_database["name"]).items():
        monkeypatch.setenv(key, value)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_run_by_id(runs[0]["runId"])
        assert run is not None
        assert json.loads(run.tags[GRPC_INFO_TAG]) == {"host": "127.0.0.1", "port": code_port}
