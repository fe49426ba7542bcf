"""A run killed with ``kill -9`` anywhere, then run again, leaves exactly the figures of one
clean run. Real processes, real files, real databases:

* the stages a run calls, as a process of their own (``process_helpers.stages``), killed in
  the middle of the ingest (between and inside the groups' DuckDB transactions) and in the
  middle of ``publish_transactions`` (after some of its commits);
* ``election-pipeline run`` (the command ``make run`` uses) on a real Dagster instance with
  the DuckDB pool, killed once the ingest has committed, while the later steps run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
from sqlalchemy import func, select

from election_pipeline.analytics import change_log
from election_pipeline.analytics.raw_store import open_warehouse
from election_pipeline.db.models import FileProcessingJob, Transaction
from election_pipeline.db.session import get_engine
from election_pipeline.defs.run_recovery import TAG_PID
from election_pipeline.sample import SampleSummary, generate_sample
from election_pipeline.stages import publish

from .process_helpers import cli, copy_files, pipeline_env, snapshot, stages, start

pytestmark = pytest.mark.slow


def _count(db_url: str, model: Any) -> int:
    """Rows of ``model`` in the operational database (-1 while it cannot be read)."""
    try:
        with get_engine(db_url).connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())
    except Exception:
        return -1


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


def _run_to_end(command: list[str], env: dict[str, str], log: Path) -> None:
    proc = start(command, env, log)
    assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path) -> None:
    """``kill -9`` the process as soon as ``ready()`` holds (polled every few milliseconds),
    then wait until no process of its group is left."""
    deadline = time.monotonic() + 240
    while not ready():
        assert proc.poll() is None, "the run ended before it could be killed:\n" + log.read_text()[-4000:]
        assert time.monotonic() < deadline, "no progress"
        time.sleep(0.002)
    os.kill(proc.pid, signal.SIGKILL)  # kill -9 of the run process: no cleanup of any kind
    assert proc.wait(timeout=30) == -signal.SIGKILL
    deadline = time.monotonic() + 15
    while _group_alive(proc.pid):
        assert time.monotonic() < deadline, "processes of the killed run are still running"
        time.sleep(0.1)


def _clean_url(tmp_path: Path, db_url: str, request: pytest.FixtureRequest, name: str) -> str:
    if db_url.startswith("sqlite"):
        return f"sqlite:///{tmp_path / f'{name}.db'}"
    return request.getfixturevalue("postgres_database")["url"]


def _workspace(tmp_path: Path, source: Path, name: str, db_url: str, **extra: str) -> dict[str, str]:
    env = pipeline_env(tmp_path / name, db_url, tmp_path / f"{name}_home", **extra)
    copy_files(source / "reference", tmp_path / name / "reference")
    copy_files(source / "input", tmp_path / name / "input")
    return env


def _assert_one_clean_run(db_url: str, clean_url: str, truth: SampleSummary, files: int) -> None:
    after = snapshot(db_url)
    assert after == snapshot(clean_url)
    assert len(after["jobs"]) == files and {j[1] for j in after["jobs"]} <= {"completed", "failed"}
    assert len(after["rejected"]) == truth.malformed_lines
    expected = sorted((h["constituency_id"], h["hour"], h["transaction_count"]) for h in truth.expected_hourly)
    assert sorted((r[0], r[2], r[8]) for r in after["hourly"]) == expected


def _sample(tmp_path: Path) -> tuple[Path, SampleSummary, int]:
    source = tmp_path / "export"
    truth = generate_sample(source / "input", source / "reference", seed=5, constituencies=3)
    return source, truth, len(list((source / "input").iterdir()))


def test_kill_9_mid_ingest_then_rerun_equals_one_clean_run(tmp_path, db_url, request):
    """The stages in a process of their own, 4 files per DuckDB transaction (about 40 groups)
    and batches of 8 lines; killed once a third of the files have left the input folder, while
    later groups are written (inside a group's transaction, or between a commit and its moves).
    Nothing is published yet (the publish steps come after the whole ingest)."""
    source, truth, files = _sample(tmp_path)
    clean_url = _clean_url(tmp_path, db_url, request, "clean")
    clean = _workspace(tmp_path, source, "clean", clean_url)
    _run_to_end(stages(group_max_files=4), clean, tmp_path / "clean.log")

    victim = _workspace(tmp_path, source, "victim", db_url, ELECTION_BATCH_SIZE="8")
    input_dir = tmp_path / "victim" / "input"
    proc = start(stages(group_max_files=4), victim, tmp_path / "victim.log")
    _kill_when(proc, lambda: len(list(input_dir.iterdir())) <= files - files // 3, tmp_path / "victim.log")
    left = len(list(input_dir.iterdir()))
    assert 0 < left < files  # killed in the middle of the ingest
    assert _count(db_url, FileProcessingJob) == 0 and _count(db_url, Transaction) == 0
    with open_warehouse(tmp_path / "victim" / "warehouse.duckdb") as duck:
        jobs = duck.execute("SELECT count(*) FROM file_jobs").fetchall()[0][0]
    # the moved files' groups are committed; at most one more group (committed, its files
    # not all moved yet); the group being written when the process died left nothing
    assert files - left <= jobs < files - left + 4

    _run_to_end(stages(group_max_files=4), victim, tmp_path / "rerun.log")
    assert list(input_dir.iterdir()) == []
    _assert_one_clean_run(db_url, clean_url, truth, files)


def test_kill_9_inside_publish_transactions_then_rerun_equals_one_clean_run(tmp_path, db_url, request):
    """The stages in a process of their own, ``publish_transactions`` committing every 10
    transactions; killed once some of them are in the operational database and not all. The
    next run publishes the whole window again (every write keyed on ``tx_id``)."""
    source, truth, files = _sample(tmp_path)
    clean_url = _clean_url(tmp_path, db_url, request, "clean")
    clean = _workspace(tmp_path, source, "clean", clean_url)
    _run_to_end(stages(), clean, tmp_path / "clean.log")
    total = _count(clean_url, Transaction)
    assert total > 1000

    victim = _workspace(tmp_path, source, "victim", db_url)
    proc = start(stages(transactions_chunk=10), victim, tmp_path / "victim.log")
    _kill_when(proc, lambda: _count(db_url, Transaction) > 0, tmp_path / "victim.log")
    published = _count(db_url, Transaction)
    assert 0 < published < total  # killed between two commits of publish_transactions
    assert published % 10 == 0  # only whole chunks were committed
    assert _count(db_url, FileProcessingJob) == files
    with open_warehouse(tmp_path / "victim" / "warehouse.duckdb") as duck:
        assert change_log.mark_of(duck, publish.TRANSACTIONS_MARK) is None  # the mark did not move
        assert change_log.mark_of(duck, publish.FILES_MARK) == change_log.last_seq(duck)

    _run_to_end(stages(transactions_chunk=10), victim, tmp_path / "rerun.log")
    assert _count(db_url, Transaction) == total
    _assert_one_clean_run(db_url, clean_url, truth, files)


def test_kill_9_of_the_dagster_run_after_the_ingest_then_rerun_equals_one_clean_run(tmp_path, db_url, request):
    """``election-pipeline run``, killed as soon as the ingest has committed and moved the
    files (the later steps, from ``publish_file_records`` to ``publish_transactions``, then
    running). The next run on the same instance finds the killed run dead, frees its DuckDB
    pool slot and finishes the work."""
    source, truth, files = _sample(tmp_path)
    clean_url = _clean_url(tmp_path, db_url, request, "clean")
    clean = _workspace(tmp_path, source, "clean", clean_url)
    run = cli("run", "--log-level", "WARNING")
    _run_to_end(run, clean, tmp_path / "clean.log")

    victim = _workspace(tmp_path, source, "victim", db_url)
    input_dir = tmp_path / "victim" / "input"
    proc = start(run, victim, tmp_path / "victim.log")
    _kill_when(proc, lambda: not any(input_dir.iterdir()), tmp_path / "victim.log")
    assert _count(db_url, Transaction) < _count(clean_url, Transaction)  # the run did not finish

    # The next run on the same instance (the killed run still holds the DuckDB pool slot).
    _run_to_end(run, victim, tmp_path / "rerun.log")
    _assert_one_clean_run(db_url, clean_url, truth, files)
    # The killed run was found dead by the next run, marked failed and its pool slot freed.
    with dg.DagsterInstance.from_config(str(tmp_path / "victim_home")) as instance:
        runs = instance.get_runs()
        assert sorted(r.status.value for r in runs) == ["FAILURE", "SUCCESS"]
        killed = next(r for r in runs if r.status == dg.DagsterRunStatus.FAILURE)
        assert killed.tags.get(TAG_PID) == str(proc.pid)
        assert instance.event_log_storage.get_concurrency_run_ids() == set()
