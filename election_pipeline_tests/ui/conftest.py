"""The product as an observer runs it: ``dagster dev`` (webserver + daemon) on a free port.

One ``dagster dev`` process serves every test of this folder (package-scoped fixture): it
starts with a temporary ``DAGSTER_HOME`` (the project's ``dagster.yaml`` copied in) and
temporary input, processed, quarantine, reference and report folders and databases, in its
own session, and the fixture stops its whole process group afterwards, checking that no
process is left behind. The sensor looks at the input folder every second and files settle
after one second, so a dropped file is picked up within seconds.

``sensed_run`` drops the export files of ``election_pipeline_tests/scenario.py`` (plus one
unreadable line) into the input folder (written as ``*.tmp`` and renamed into place, as a careful copy does) and waits,
through GraphQL on ``/graphql``, until the sensor's run has finished.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from election_pipeline_tests.builders import CONTRACT_A, CONTRACT_B, Workspace, make_workspace
from election_pipeline_tests.scenario import A07, A08, B07, a07_lines, a08_lines, b07_lines
from election_pipeline_tests.servers import free_port, graphql_data

REPO = Path(__file__).resolve().parents[2]
DAGSTER_YAML = REPO / "election_pipeline" / "dagster.yaml"
BAD_LINE = "this;is;not;an;export;line"
STARTUP_TIMEOUT = 180.0
RUN_TIMEOUT = 300.0


@dataclass
class DagsterDev:
    """A running ``dagster dev``: its URL, folders and log."""

    url: str
    workspace: Workspace
    home: Path
    reports_dir: Path
    log_path: Path
    process: subprocess.Popen

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.workspace.root / 'ops.db'}"

    def graphql(self, query: str, variables: dict[str, Any] | None = None, timeout: float = 30.0) -> dict[str, Any]:
        return graphql_data(self.url, query, variables, timeout)

    def log_tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


RUNS_QUERY = """
query Runs { runsOrError(limit: 20) { __typename ... on Runs { results { runId status jobName tags { key value } } } } }
"""


def _wait_for_server(dev: DagsterDev) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if dev.process.poll() is not None:
            raise RuntimeError(f"dagster dev exited with {dev.process.returncode}:\n{dev.log_tail()}")
        try:
            with urllib.request.urlopen(f"{dev.url}/server_info", timeout=5) as response:
                if response.status == 200:
                    # The code location must be loaded too, not only the webserver.
                    data = dev.graphql("{ repositoriesOrError { ... on RepositoryConnection { nodes { name } } } }")
                    if data["repositoriesOrError"].get("nodes"):
                        return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(1.0)
    raise TimeoutError(f"dagster dev did not come up within {STARTUP_TIMEOUT:.0f} s:\n{dev.log_tail()}")


def _live_members(pgid: int) -> list[int]:
    """Processes of the group that are still alive (zombies waiting to be reaped do not count)."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
            alive.append(int(entry.name))
    return alive


def _stop(process: subprocess.Popen) -> list[int]:
    """Stop the whole process group; return the ids of processes that had to be killed."""
    pgid = process.pid  # start_new_session=True: the group id is the leader's pid
    killed: list[int] = []
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return killed
    with contextlib.suppress(subprocess.TimeoutExpired):
        process.wait(timeout=30)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if not _live_members(pgid):
            return killed
        time.sleep(0.3)
    killed.append(pgid)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pgid, signal.SIGKILL)
    process.wait(timeout=10)
    return killed


@pytest.fixture(scope="package")
def dagster_dev(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DagsterDev]:
    root = tmp_path_factory.mktemp("dagster_dev")
    workspace = make_workspace(root / "ws")
    workspace.write_reference({CONTRACT_A: 10, CONTRACT_B: 4})
    home = root / "dagster_home"
    home.mkdir()
    shutil.copyfile(DAGSTER_YAML, home / "dagster.yaml")
    reports_dir = root / "reports"
    s = workspace.settings()
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "ELECTION_INPUT_DIR": s.input_dir,
        "ELECTION_REFERENCE_DIR": s.reference_dir,
        "ELECTION_PROCESSED_DIR": s.processed_dir,
        "ELECTION_QUARANTINE_DIR": s.quarantine_dir,
        "ELECTION_DATABASE_URL": s.database_url,
        "ELECTION_DUCKDB_PATH": s.duckdb_path,
        "ELECTION_REPORTS_DIR": str(reports_dir),
        "ELECTION_SENSOR_INTERVAL_SECONDS": "1",
        "ELECTION_FILE_SETTLE_SECONDS": "1",
        # No run from the schedule while the test watches the sensor's run.
        "ELECTION_SCHEDULE_CRON": "0 0 1 1 *",
    }
    port = free_port()
    log_path = root / "dagster_dev.log"
    dagster = Path(sys.executable).with_name("dagster")
    command = [
        str(dagster) if dagster.exists() else sys.executable,
        *([] if dagster.exists() else ["-m", "dagster"]),
        "dev",
        "-h",
        "127.0.0.1",
        "-p",
        str(port),
        "-w",
        str(REPO / "workspace.yaml"),
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    dev = DagsterDev(f"http://127.0.0.1:{port}", workspace, home, reports_dir, log_path, process)
    try:
        _wait_for_server(dev)
        yield dev
    finally:
        killed = _stop(process)
        if killed:
            print(f"dagster dev did not stop on SIGTERM; killed its process group {killed}")
        deadline = time.monotonic() + 10
        while _live_members(process.pid) and time.monotonic() < deadline:
            time.sleep(0.3)
        leftover = _live_members(process.pid)
        assert not leftover, f"processes of dagster dev are still running: {leftover}"


@dataclass
class SensedRun:
    run_id: str
    runs: list[dict[str, Any]]


def _finished(runs: list[dict[str, Any]]) -> bool:
    return bool(runs) and all(r["status"] in ("SUCCESS", "FAILURE", "CANCELED") for r in runs)


@pytest.fixture(scope="package")
def sensed_run(dagster_dev: DagsterDev) -> SensedRun:
    """Drop the scenario's three export files and wait until the sensor's run(s) finished."""
    ws = dagster_dev.workspace
    # Line 6 of the first file cannot be read: it must end up as a rejected row, not stop the run.
    for name, lines in ((A07, a07_lines() + [BAD_LINE]), (A08, a08_lines()), (B07, b07_lines())):
        ws.drop(name + ".tmp", lines)
    for name in (A07, A08, B07):
        (ws.input / f"{name}.tmp").rename(ws.input / name)

    deadline = time.monotonic() + RUN_TIMEOUT
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = dagster_dev.graphql(RUNS_QUERY)["runsOrError"]["results"]
        if _finished(runs) and not any(ws.input.iterdir()):
            break
        time.sleep(2.0)
    else:
        raise TimeoutError(f"no finished sensor run within {RUN_TIMEOUT:.0f} s; runs: {runs}\n{dagster_dev.log_tail()}")
    return SensedRun(run_id=runs[0]["runId"], runs=runs)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """With pytest-xdist, every test using the one ``dagster dev`` goes to the same worker
    (``--dist loadgroup``), so it is started once, not once per worker."""
    for item in items:
        if "dagster_dev" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.xdist_group("dagster_dev"))
