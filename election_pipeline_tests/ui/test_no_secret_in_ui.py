"""A password in ``ELECTION_DATABASE_URL`` never reaches the Dagster UI.

``dagster-webserver`` is started as an operator would, with a PostgreSQL URL holding a
password in its environment; GraphQL is then asked for what the UI's resource pages show
(every resource's configured values). The URL must appear as the name of its environment
variable only, and the password nowhere: not in the answer, not in the webserver's log,
not in the Dagster home folder it wrote.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from .conftest import DAGSTER_YAML, REPO, STARTUP_TIMEOUT, free_port

PASSWORD = "Sup3r-s3cret-pw"
URL = f"postgresql+psycopg://observer:{PASSWORD}@127.0.0.1:5432/test"

RESOURCES_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { allTopLevelResourceDetails {
    name configuredValues { key value type } } } }
  ... on PythonError { message } } } } } }
"""


def _graphql(url: str, query: str) -> dict:
    request = urllib.request.Request(
        f"{url}/graphql", data=json.dumps({"query": query}).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())


def _wait_until_loaded(url: str, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            payload = _graphql(url, RESOURCES_QUERY)
            entries = payload["data"]["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["locationOrLoadError"]:
                return payload
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, KeyError, TypeError):
            pass
        time.sleep(1.0)
    raise TimeoutError(f"dagster-webserver did not load the code location:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_the_database_password_is_not_shown_by_the_webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ELECTION_DATABASE_URL": URL,
        "ELECTION_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "ELECTION_INPUT_DIR": str(tmp_path / "input"),
    }
    port = free_port()
    log = tmp_path / "webserver.log"
    webserver = Path(sys.executable).with_name("dagster-webserver")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(webserver), "-h", "127.0.0.1", "-p", str(port), "-w", str(REPO / "workspace.yaml")],
            cwd=REPO,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        payload = _wait_until_loaded(f"http://127.0.0.1:{port}", process, log)
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()

    [entry] = payload["data"]["workspaceOrError"]["locationEntries"]
    [repository] = entry["locationOrLoadError"]["repositories"]
    resources = {r["name"]: r["configuredValues"] for r in repository["allTopLevelResourceDetails"]}
    # The URL is configured from the environment, and the UI shows the variable's name.
    assert resources["ops_db"] == [{"key": "url", "value": "ELECTION_DATABASE_URL", "type": "ENV_VAR"}]
    # The other resources are there (the answer is not empty for another reason) ...
    assert {"warehouse", "drop_folder", "detection", "reports"} <= set(resources)
    # ... and the password is nowhere: not in the answer, the log, or the files Dagster wrote.
    assert PASSWORD not in json.dumps(payload)
    assert PASSWORD not in log.read_text(errors="replace")
    for path in home.rglob("*"):
        if path.is_file():
            assert PASSWORD.encode() not in path.read_bytes(), path
