"""Recovery from runs whose process was killed (``kill -9``, out-of-memory killer, power cut).

A killed run cannot report its own end: Dagster keeps it ``STARTED`` and keeps the DuckDB
pool slot its step held, so every later DuckDB step would wait for that slot forever.
(Run monitoring cannot see a dead process of the default run launcher.)

So every run records, on first use of the operational database, the process that executes
it (host, process id and process start time, as run tags). Before doing any work, every
run looks for runs of *this host* still marked as running whose process is gone, marks
them failed with the reason, and frees their pool slots. The data side needs nothing
special: every write of the pipeline is keyed and committed per file, so the next run
simply finishes the work (``stages/ingest_files.py``).
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import socket
import sys

import dagster as dg

log = logging.getLogger(__name__)

TAG_HOST = "election/worker_host"
TAG_PID = "election/worker_pid"
TAG_START = "election/worker_start"
_RUNNING = [dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.CANCELING]


def _process_start(pid: int) -> str | None:
    """The start time of process ``pid`` (clock ticks since boot), None when it does not exist."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return fields[19]  # field 22 of proc(5), counted after the command name
    except (OSError, IndexError):
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return None
        except PermissionError:
            return ""
        return ""  # alive, start time unknown (no /proc)


#: The function of Dagster's multiprocess executor that runs a step in a process of its own.
_STEP_PROCESS_ENTRY = "_execute_command_in_child_process"


def _in_step_process() -> bool:
    """Whether this code runs in a step process of the multiprocess executor (Dagster calls it
    from :data:`_STEP_PROCESS_ENTRY`), not in the run worker itself."""
    frame = sys._getframe()
    while frame is not None:
        if frame.f_code.co_name == _STEP_PROCESS_ENTRY:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def run_worker_pid() -> int:
    """The process executing the run: this one (in-process executor; also when a code server
    started the run worker with ``multiprocessing``, as under the daemon), or the run worker
    that started this step process (multiprocess executor)."""
    parent = multiprocessing.parent_process()
    if _in_step_process() and parent is not None and parent.pid:
        return parent.pid
    return os.getpid()


def record_run_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    """Tag ``run`` with the process that executes it (once)."""
    if run.tags.get(TAG_PID):
        return
    pid = run_worker_pid()
    start = _process_start(pid) or ""
    instance.add_run_tags(run.run_id, {TAG_HOST: socket.gethostname(), TAG_PID: str(pid), TAG_START: start})


def is_dead(run: dg.DagsterRun, host: str | None = None) -> bool:
    """Whether ``run`` was executed on this host by a process that no longer exists."""
    host = host or socket.gethostname()
    if run.tags.get(TAG_HOST) != host or not run.tags.get(TAG_PID):
        return False
    start = _process_start(int(run.tags[TAG_PID]))
    if start is None:
        return True
    recorded = run.tags.get(TAG_START, "")
    return bool(recorded and start and recorded != start)  # the pid was reused by another process


def release_dead_runs(instance: dg.DagsterInstance, current_run_id: str | None = None) -> list[str]:
    """Mark failed every run of this host whose process is gone and free its pool slots.
    Returns their run ids."""
    released = []
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=_RUNNING), limit=200):
        if run.run_id == current_run_id or not is_dead(run):
            continue
        message = (
            f"The process of this run (pid {run.tags[TAG_PID]} on {run.tags[TAG_HOST]}) no longer exists: "
            "it was killed. Marked failed and its DuckDB pool slot freed by a later run; that run "
            "finishes the work (every write is keyed, nothing is counted twice)."
        )
        instance.report_run_failed(run, message)
        if instance.event_log_storage.supports_global_concurrency_limits:
            instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        log.warning("Run %s was killed mid-way; marked failed and its pool slots freed", run.run_id)
        released.append(run.run_id)
    return released
