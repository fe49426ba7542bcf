"""The Dagster instance on PostgreSQL (``deploy/dagster.yaml``), and bursts of files with
overlapping runs through a real ``dagster-daemon``: every file processed exactly once, no
DuckDB lock error, the exact figures."""

from __future__ import annotations

import shutil
import signal
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import create_engine, func, select, text

from election_pipeline.db.models import FileLedgerEntry, FileProcessingJob
from election_pipeline.db.session import get_engine
from election_pipeline.defs.assets import alerts, constituency_metrics, hourly_stats, raw_transactions, reference_data
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.resources import build_resources
from election_pipeline.sample import generate_sample
from election_pipeline_tests.conftest import pg_base_url
from election_pipeline_tests.sample_truth import expected_hourly, published_hourly
from election_pipeline_tests.scenario import EXPECTED_HOURLY, drop_all, hourly_figures

from .process_helpers import REPO, cli, kill_group, pipeline_env, start

DEPLOY_YAML = REPO / "deploy" / "dagster.yaml"
ASSETS = [reference_data, raw_transactions, hourly_stats, constituency_metrics, alerts, *ALL_CHECKS]


def dagster_pg_env(database: str) -> dict[str, str]:
    """The DAGSTER_PG_* variables deploy/dagster.yaml reads, for ``database`` on the test server."""
    url = create_engine(pg_base_url()).url
    return {
        "DAGSTER_PG_HOST": url.host or "127.0.0.1",
        "DAGSTER_PG_PORT": str(url.port or 5432),
        "DAGSTER_PG_DB": database,
        "DAGSTER_PG_USERNAME": url.username or "postgres",
        "DAGSTER_PG_PASSWORD": url.password or "",
    }


def _span(record: dg.RunRecord, described: str = "") -> tuple[float, float]:
    """A finished run's start and end times (both set once the run has ended); ``described``
    (:func:`describe_runs`) is what a run without them prints."""
    assert record.start_time is not None and record.end_time is not None, described
    return record.start_time, record.end_time


def describe_runs(instance: dg.DagsterInstance) -> str:
    """Every run of ``instance`` with its tags, times and Dagster's own messages about its
    start and end: what a failed assertion on runs prints, so that a run that ended oddly
    (failed before it started, for one) says why."""
    kinds = {"PIPELINE_FAILURE", "PIPELINE_CANCELED", "ENGINE_EVENT", "PIPELINE_ENQUEUED", "PIPELINE_DEQUEUED"}
    lines = []
    for record in instance.get_run_records():
        run = record.dagster_run
        tags = {k: v for k, v in run.tags.items() if k.startswith(("election/", "dagster/sensor", "dagster/schedule"))}
        lines.append(
            f"run {run.run_id[:8]} {run.status.value} created {record.create_timestamp.timestamp():.1f} "
            f"start {record.start_time} end {record.end_time} {tags}"
        )
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is not None and event.event_type_value in kinds:
                lines.append(f"    {entry.timestamp:.1f} {event.event_type_value}: {(event.message or '')[:300]}")
    return "\n".join(lines)


def test_instance_on_postgres_runs_the_graph(tmp_path, workspace, postgres_database, postgres_schema_url, monkeypatch):
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    for key, value in dagster_pg_env(postgres_database["name"]).items():
        monkeypatch.setenv(key, value)
    drop_all(workspace)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        config = instance.get_concurrency_config()
        assert config.pool_config.default_pool_limit == 4  # one DuckDB step per workspace at once
        assert config.run_queue_config is not None
        assert config.run_queue_config.tag_concurrency_limits == [  # one run per workspace at once
            {"key": "election/workspace", "value": {"applyLimitPerUniqueValue": True}, "limit": 1}
        ]
        assert config.run_queue_config.max_concurrent_runs == 4
        assert not instance.nux_enabled  # no newsletter dialog over the UI
        result = dg.materialize(
            ASSETS,
            instance=instance,
            raise_on_error=False,
            resources=build_resources(workspace.settings(database_url=postgres_schema_url)),
        )
        assert result.success
        run = instance.get_run_by_id(result.run_id)
        assert run is not None
        assert run.status == dg.DagsterRunStatus.SUCCESS
    assert hourly_figures(get_engine(postgres_schema_url)) == EXPECTED_HOURLY
    # The run history is in PostgreSQL, not in files under DAGSTER_HOME.
    with get_engine(postgres_database["url"]).connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM runs")).scalar_one() == 1
        assert (
            conn.execute(text("SELECT count(*) FROM event_logs WHERE run_id = :r"), {"r": result.run_id}).scalar_one()
            > 10
        )


def _wait(predicate, timeout: float, what: str, interval: float = 1.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def daemon_env(tmp_path: Path, root: Path, db_url: str, database: str, monkeypatch, **extra: str) -> dict[str, str]:
    """The environment of a pipeline in ``root`` served by a Dagster daemon on the PostgreSQL
    instance of ``deploy/dagster.yaml`` (Dagster's tables in ``database``), which this process
    reads too; writes that instance's home and a ``workspace.yaml`` into ``tmp_path``."""
    home = tmp_path / "dagster_home"
    env = pipeline_env(root, db_url, home, ELECTION_SENSOR_INTERVAL_SECONDS="1", **dagster_pg_env(database), **extra)
    for key, value in dagster_pg_env(database).items():
        monkeypatch.setenv(key, value)  # this process reads the same instance
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    (tmp_path / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: election_pipeline.definitions\n"
        f"      working_directory: {REPO}\n      location_name: election_pipeline\n"
    )
    return env


def start_daemon(tmp_path: Path, env: dict[str, str]):
    """``dagster-daemon run`` on the ``workspace.yaml`` of :func:`daemon_env`, logging to ``daemon.log``."""
    command = [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", str(tmp_path / "workspace.yaml")]
    return start(command, env, tmp_path / "daemon.log")


def wait_for_daemon(instance: dg.DagsterInstance) -> None:
    """Until the daemon's sensor and run queue have reported in."""
    _wait(
        lambda: {"SENSOR", "QUEUED_RUN_COORDINATOR"} <= set(instance.get_daemon_heartbeats()),
        120,
        "the daemon",
        interval=0.5,
    )


@pytest.mark.slow
def test_burst_of_files_with_overlapping_runs_processed_exactly_once(
    tmp_path, postgres_database, postgres_schema_url, monkeypatch
):
    """~220 files land in four bursts while the daemon's sensor turns them into runs (several
    at once, each in its own process) and operators also start ``election-pipeline run``
    twice on the same folder. The runs take turns on the store (the run queue, one run per
    workspace; the operators' runs wait for the store's turn lock). The first and last
    bursts each wait for a run of the sensor, so both kinds of run are always exercised."""
    root = tmp_path / "ws"
    home = tmp_path / "dagster_home"
    env = daemon_env(tmp_path, root, postgres_schema_url, postgres_database["name"], monkeypatch)
    staging = tmp_path / "staging"
    truth = generate_sample(staging, root / "reference", seed=13, constituencies=4)
    files = sorted(staging.iterdir())
    assert len(files) >= 200

    daemon = start_daemon(tmp_path, env)
    operators: list = []
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for_daemon(instance)

            def sensor_runs_launched() -> int:
                return len(
                    instance.get_runs(filters=dg.RunsFilter(tags={"dagster/sensor_name": "input_folder_sensor"}))
                )

            for n, burst in enumerate([files[i::4] for i in range(4)]):
                if n == 3:
                    # The operators take every file they find, so the last burst lands once they
                    # are done: the sensor then has files of its own to request a second run for.
                    for proc in operators:
                        proc.wait(timeout=300)
                for path in burst:
                    shutil.move(str(path), root / "input" / path.name)
                if n in (1, 2):  # operators start runs by hand on the same folder, twice
                    operators.append(start(cli("run", "--log-level", "WARNING"), env, tmp_path / f"operator{n}.log"))
                if n in (0, 3):
                    _wait(
                        lambda: sensor_runs_launched() >= (1 if n == 0 else 2),
                        120,
                        "a run requested by the sensor",
                        interval=0.5,
                    )
                else:
                    time.sleep(2.5)

            def all_done() -> bool:
                busy = instance.get_runs(
                    filters=dg.RunsFilter(
                        statuses=[
                            dg.DagsterRunStatus.QUEUED,
                            dg.DagsterRunStatus.NOT_STARTED,
                            dg.DagsterRunStatus.STARTING,
                            dg.DagsterRunStatus.STARTED,
                        ]
                    )
                )
                return not busy and not any((root / "input").iterdir()) and all(p.poll() is not None for p in operators)

            _wait(all_done, 480, "every file processed and every run finished", interval=2.0)
            runs = instance.get_runs()
            statuses = sorted(r.status.value for r in runs)
            sensor_runs = [r for r in runs if r.tags.get("dagster/sensor_name") == "input_folder_sensor"]
            records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
            failed_steps = [
                e
                for r in runs
                for e in instance.all_logs(r.run_id)
                if e.dagster_event is not None
                and e.dagster_event.event_type_value in ("STEP_FAILURE", "STEP_UP_FOR_RETRY")
            ]
            described = describe_runs(instance)
    finally:
        kill_group(daemon, signal.SIGTERM) if daemon.poll() is None else None
        for proc in operators:
            if proc.poll() is None:
                kill_group(proc)
    for n, proc in zip((1, 2), operators, strict=False):
        assert proc.returncode == 0, (tmp_path / f"operator{n}.log").read_text()[-3000:]
    assert failed_steps == [], described
    assert set(statuses) == {"SUCCESS"}, described
    assert len(sensor_runs) >= 2
    by_hand = [r for r in runs if not (r.tags.get("dagster/sensor_name") or r.tags.get("dagster/schedule_name"))]
    assert len(by_hand) == 2  # the operators' runs (the schedule may have added one too)
    spans = sorted(_span(records[r.run_id], described) for r in runs)
    overlapping = [(i, j) for i in range(len(spans)) for j in range(i + 1, len(spans)) if spans[j][0] < spans[i][1]]
    shown = [(round(a - spans[0][0], 1), round(b - spans[0][0], 1)) for a, b in spans]
    print("run spans (s):", shown)
    # One overlapping pair is what this test needs; how many more depends on the machine's load.
    assert len(overlapping) >= 1, f"runs did not overlap: {shown}"

    engine = get_engine(postgres_schema_url)
    with engine.connect() as conn:
        per_file = dict(
            conn.execute(select(FileProcessingJob.filename, func.count()).group_by(FileProcessingJob.filename))
            .tuples()
            .all()
        )
        ledger = conn.execute(select(func.count()).select_from(FileLedgerEntry)).scalar_one()
    assert per_file == {p.name: 1 for p in files}  # every file processed exactly once
    assert ledger == len(files)
    assert published_hourly(engine) == expected_hourly(truth)
    assert len(list((root / "processed").iterdir())) + len(list((root / "quarantine").iterdir())) == len(files)
