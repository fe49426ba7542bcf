"""A run killed with ``kill -9`` in the middle of ingesting, then run again, leaves exactly
the figures of one clean run. Real processes: ``election-pipeline run`` (the command
``make run`` uses) on a real Dagster instance with the DuckDB pool."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import func, select

from election_pipeline.db.models import FileProcessingJob
from election_pipeline.db.session import get_engine
from election_pipeline.defs.run_recovery import TAG_PID
from election_pipeline.sample import generate_sample

from .process_helpers import cli, copy_files, pipeline_env, snapshot, start

pytestmark = pytest.mark.slow


def _jobs(db_url: str) -> dict[str, int]:
    try:
        with get_engine(db_url).connect() as conn:
            return dict(
                conn.execute(select(FileProcessingJob.status, func.count()).group_by(FileProcessingJob.status))
                .tuples()
                .all()
            )
    except Exception:
        return {}


def _group_alive(pgid: int) -> bool:
    """Whether a live (not zombie) process of the group ``pgid`` remains."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _run_to_end(env: dict[str, str], log: Path) -> None:
    proc = start(cli("run", "--log-level", "WARNING"), env, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]


def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(tmp_path, db_url, request):
    source = tmp_path / "export"
    truth = generate_sample(source / "input", source / "reference", seed=5, constituencies=3)
    files = sorted(p.name for p in (source / "input").iterdir())

    # The clean run, in a workspace of its own (its own database).
    clean_url = (
        f"sqlite:///{tmp_path / 'clean.db'}"
        if db_url.startswith("sqlite")
        else request.getfixturevalue("postgres_database")["url"]
    )
    clean = pipeline_env(tmp_path / "clean", clean_url, tmp_path / "clean_home")
    copy_files(source / "reference", tmp_path / "clean" / "reference")
    copy_files(source / "input", tmp_path / "clean" / "input")
    _run_to_end(clean, tmp_path / "clean.log")

    # The victim: small batches, so that a file is written in several steps; killed once a
    # third of the files are done, while the next one is being written (its job "processing").
    victim = pipeline_env(tmp_path / "victim", db_url, tmp_path / "victim_home", ELECTION_BATCH_SIZE="8")
    copy_files(source / "reference", tmp_path / "victim" / "reference")
    copy_files(source / "input", tmp_path / "victim" / "input")
    proc = start(cli("run", "--log-level", "WARNING"), victim, tmp_path / "victim.log")
    deadline = time.monotonic() + 240
    while True:
        jobs = _jobs(db_url)
        if jobs.get("completed", 0) >= len(files) // 3 and jobs.get("processing"):
            break
        assert proc.poll() is None, "the run ended before it could be killed"
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.005)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the run process: no cleanup of any kind
    proc.wait(timeout=30)
    # Its parse workers (the run has over PARALLEL_MIN_FILES files) end with it.
    deadline = time.monotonic() + 15
    while _group_alive(proc.pid):
        assert time.monotonic() < deadline, "processes of the killed run are still running"
        time.sleep(0.1)
    jobs = _jobs(db_url)
    left = sorted(p.name for p in (tmp_path / "victim" / "input").iterdir())
    # Files are parsed in groups, so one or more jobs may be open at the moment of the kill.
    assert jobs.get("processing", 0) >= 1 and 0 < jobs["completed"] < len(files) and left

    # The next run on the same instance (the killed run still holds the DuckDB pool slot).
    _run_to_end(victim, tmp_path / "rerun.log")

    assert list((tmp_path / "victim" / "input").iterdir()) == []
    assert snapshot(db_url) == snapshot(clean_url)
    after = snapshot(db_url)
    assert len(after["jobs"]) == len(files) and {j[1] for j in after["jobs"]} <= {"completed", "failed"}
    assert len(after["rejected"]) == truth.malformed_lines
    expected = sorted((h["constituency_id"], h["hour"], h["transaction_count"]) for h in truth.expected_hourly)
    assert sorted((r[0], r[2], r[8]) for r in after["hourly"]) == expected
    # The killed run was found dead by the next run, marked failed and its pool slot freed.
    with dg.DagsterInstance.from_config(str(tmp_path / "victim_home")) as instance:
        runs = instance.get_runs()
        assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]
        killed = next(r for r in runs if r.status == dg.DagsterRunStatus.FAILURE)
        assert killed.tags.get(TAG_PID) == str(proc.pid)
        assert instance.event_log_storage.get_concurrency_run_ids() == set()
