"""No secret setting reaches the Dagster UI: the password in ``ELECTION_DATABASE_URL``, the
webhook URLs of ``ELECTION_ALERT_WEBHOOK_URLS`` (their path is the credential) and
``ELECTION_SMTP_PASSWORD``.

``dagster-webserver`` is started as an operator would, with those secrets in its
environment; GraphQL is then asked for what the UI's resource pages show (every resource's
configured values). Each secret must appear as the name of its environment variable only,
and its value nowhere: not in the answer, not in the webserver's log, not in the Dagster
home folder it wrote.
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

from election_pipeline_tests.servers import free_port, graphql_payload

from .conftest import DAGSTER_YAML, REPO, STARTUP_TIMEOUT

PASSWORD = "Sup3r-s3cret-pw"
URL = f"postgresql+psycopg://observer:{PASSWORD}@127.0.0.1:5432/test"
WEBHOOK_TOKEN = "T000-hook-s3cret-B111"
WEBHOOK_URLS = f"https://hooks.example.org/services/{WEBHOOK_TOKEN},https://second.example.org/{WEBHOOK_TOKEN}2"
SMTP_PASSWORD = "smtp-Pa55-w0rd-xyz"
SECRETS = (PASSWORD, WEBHOOK_TOKEN, SMTP_PASSWORD)

RESOURCES_QUERY = """
{ workspaceOrError { ... on Workspace { locationEntries { locationOrLoadError {
  ... on RepositoryLocation { repositories { allTopLevelResourceDetails {
    name configuredValues { key value type } } } }
  ... on PythonError { message } } } } } }
"""


def _wait_until_loaded(url: str, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dagster-webserver exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            payload = graphql_payload(url, RESOURCES_QUERY)
            entries = payload["data"]["workspaceOrError"]["locationEntries"]
            if entries and entries[0]["locationOrLoadError"]:
                return payload
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError, KeyError, TypeError):
            pass
        time.sleep(1.0)
    raise TimeoutError(f"dagster-webserver did not load the code location:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_no_secret_is_shown_by_the_webserver(tmp_path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(DAGSTER_YAML.read_text())
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ELECTION_DATABASE_URL": URL,
        "ELECTION_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "ELECTION_INPUT_DIR": str(tmp_path / "input"),
        "ELECTION_ALERT_WEBHOOK_URLS": WEBHOOK_URLS,
        "ELECTION_SMTP_HOST": "smtp.example.org",
        "ELECTION_SMTP_USERNAME": "observer-mail",
        "ELECTION_SMTP_PASSWORD": SMTP_PASSWORD,
        "ELECTION_SMTP_TO": "desk@example.org",
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
    # So are the notifier's secrets; its other settings show as themselves.
    notifier = {v["key"]: v for v in resources["notifier"]}
    assert notifier["webhook_urls"] == {
        "key": "webhook_urls",
        "value": "ELECTION_ALERT_WEBHOOK_URLS",
        "type": "ENV_VAR",
    }
    assert notifier["smtp_password"] == {"key": "smtp_password", "value": "ELECTION_SMTP_PASSWORD", "type": "ENV_VAR"}
    assert notifier["smtp_host"]["value"] == '"smtp.example.org"'
    # The other resources are there (the answer is not empty for another reason) ...
    assert {"warehouse", "drop_folder", "detection", "reports"} <= set(resources)
    # ... and no secret is anywhere: not in the answer, the log, or the files Dagster wrote.
    answer = json.dumps(payload)
    written = log.read_text(errors="replace")
    for secret in SECRETS:
        assert secret not in answer
        assert secret not in written
    for path in home.rglob("*"):
        if path.is_file():
            content = path.read_bytes()
            for secret in SECRETS:
                assert secret.encode() not in content, path
