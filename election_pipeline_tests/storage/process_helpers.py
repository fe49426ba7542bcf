"""Helpers of the storage tests that drive the pipeline as separate processes, the way an
operator or the Dagster daemon does: environment for a workspace, the CLI as a
subprocess, and a snapshot of every figure the pipeline publishes."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from sqlalchemy import select

from election_pipeline.db.models import (
    Alert,
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    HourlyStats,
    RejectedRow,
    Transaction,
)
from election_pipeline.db.session import get_engine

REPO = Path(__file__).resolve().parents[2]


def pipeline_env(root: Path, db_url: str, dagster_home: Path, **extra: str) -> dict[str, str]:
    """Environment of a pipeline working in ``root`` (input/, processed/, ... below it)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTION_")}
    env.update(
        {
            "ELECTION_INPUT_DIR": str(root / "input"),
            "ELECTION_REFERENCE_DIR": str(root / "reference"),
            "ELECTION_PROCESSED_DIR": str(root / "processed"),
            "ELECTION_QUARANTINE_DIR": str(root / "quarantine"),
            "ELECTION_REPORTS_DIR": str(root / "reports"),
            "ELECTION_DATABASE_URL": db_url,
            "ELECTION_DUCKDB_PATH": str(root / "warehouse.duckdb"),
            "ELECTION_FILE_SETTLE_SECONDS": "0",
            "DAGSTER_HOME": str(dagster_home),
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.update(extra)
    for sub in ("input", "processed", "quarantine", "reference"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    dagster_home.mkdir(parents=True, exist_ok=True)
    return env


def cli(*args: str) -> list[str]:
    """``election-pipeline <args>`` with this interpreter."""
    return [sys.executable, "-c", "import sys; from election_pipeline.cli import main; sys.exit(main())", *args]


def start(command: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start ``command`` in its own process group (so the whole group can be killed)."""
    handle = open(log, "ab")
    return subprocess.Popen(command, env=env, cwd=REPO, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True)


def kill_group(proc: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, sig)
    proc.wait(timeout=30)


def copy_files(source: Path, target: Path) -> list[str]:
    names = sorted(p.name for p in source.iterdir() if p.is_file())
    for name in names:
        shutil.copy2(source / name, target / name)
    return names


def snapshot(db_url: str) -> dict[str, Any]:
    """Every figure the pipeline publishes, without ids, paths and bookkeeping times."""
    engine = get_engine(db_url)

    def rows(*columns) -> list[tuple]:
        with engine.connect() as conn:
            return sorted((tuple(r) for r in conn.execute(select(*columns))), key=repr)

    h, c, t, r, j, f, a = HourlyStats, Constituency, Transaction, RejectedRow, FileProcessingJob, FileLedgerEntry, Alert
    return {
        "hourly": rows(
            h.constituency_id,
            h.election_id,
            h.hour,
            h.timestamp,
            h.bulletins_issued,
            h.votes_cast,
            h.revote_count,
            h.rejected_count,
            h.transaction_count,
            h.cumulative_bulletins,
            h.cumulative_votes,
            h.bulletin_velocity,
            h.vote_velocity,
            h.participation_rate,
            h.anomaly_count,
        ),
        "constituencies": rows(
            c.id,
            c.election_id,
            c.registered_voters,
            c.registered_voters_source,
            c.status,
            c.in_reference,
            c.bulletins_issued,
            c.votes_cast,
            c.revote_count,
            c.transaction_count,
            c.rejected_count,
            c.participation_rate,
            c.anomaly_score,
        ),
        "transactions": rows(
            t.tx_id,
            t.constituency_id,
            t.timestamp,
            t.type,
            t.sender,
            t.is_rejected,
            t.is_rolled_back,
            t.bulletins,
            t.source_file,
            t.raw_data,
            t.operation_data,
        ),
        "rejected": rows(r.filename, r.source, r.line_number, r.reason, r.raw_line),
        "jobs": rows(j.filename, j.status, j.transactions_processed, j.rejected_lines, j.file_hash),
        "ledger": rows(f.content_hash, f.filename, f.status, f.size_bytes),
        "alerts": rows(a.fingerprint, a.type, a.severity, a.status, a.constituency_id, a.title),
    }
