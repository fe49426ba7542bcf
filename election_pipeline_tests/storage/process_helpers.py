"""Helpers of the storage tests that drive the pipeline as separate processes, the way an
operator or the Dagster daemon does: environment for a workspace, the CLI as a
subprocess, the stages a run calls as a subprocess of their own (:func:`stages`), and a
snapshot of every figure the pipeline publishes."""

from __future__ import annotations

import argparse
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


def stages(*, group_max_files: int | None = None, transactions_chunk: int | None = None) -> list[str]:
    """A process running :func:`run_stages` with this interpreter (settings from its
    environment, see :func:`pipeline_env`)."""
    args = []
    if group_max_files is not None:
        args += ["--group-max-files", str(group_max_files)]
    if transactions_chunk is not None:
        args += ["--transactions-chunk", str(transactions_chunk)]
    return [
        sys.executable,
        "-c",
        "import sys; from election_pipeline_tests.storage.process_helpers import run_stages; "
        "sys.exit(run_stages(sys.argv[1:]))",
        *args,
    ]


def run_stages(argv: list[str]) -> int:
    """The stages a whole run calls, in the order of the Dagster graph, without Dagster:
    reference data, the ingest (DuckDB), ``publish_file_records``, hourly stats, metrics, alerts,
    ``publish_transactions``. ``--group-max-files`` and ``--transactions-chunk`` set the module
    constants ``ingest_files.GROUP_MAX_FILES`` and ``publish.TRANSACTIONS_CHUNK`` (files per
    DuckDB transaction, transactions per operational commit)."""
    from election_pipeline.analytics.raw_store import open_warehouse
    from election_pipeline.db.session import upgrade_database
    from election_pipeline.settings import load_settings
    from election_pipeline.stages import ingest_files, publish
    from election_pipeline.stages.alerts import publish_alerts
    from election_pipeline.stages.hourly import publish_hourly_stats
    from election_pipeline.stages.ingest_files import DropFolders, ingest_folder, ready_files
    from election_pipeline.stages.metrics import publish_metrics
    from election_pipeline.stages.reference import load_reference

    parser = argparse.ArgumentParser()
    parser.add_argument("--group-max-files", type=int)
    parser.add_argument("--transactions-chunk", type=int)
    args = parser.parse_args(argv)
    if args.group_max_files:
        ingest_files.GROUP_MAX_FILES = args.group_max_files
    if args.transactions_chunk:
        publish.TRANSACTIONS_CHUNK = args.transactions_chunk
    settings = load_settings()
    engine = get_engine(settings.database_url)
    upgrade_database(engine)
    load_reference(Path(settings.reference_dir), engine)
    folders = DropFolders.of(settings.input_dir, settings.processed_dir, settings.quarantine_dir)
    with open_warehouse(Path(settings.duckdb_path), memory_limit=settings.duckdb_memory_limit) as duck:
        summary = ingest_folder(
            ready_files(folders.input_dir, settings.file_settle_seconds),
            duck=duck,
            folders=folders,
            batch_size=settings.batch_size,
            zip_max_total_bytes=settings.zip_max_total_bytes,
            zip_max_ratio=settings.zip_max_ratio,
        )
        print(f"ingested {len(summary.outcomes)} files", flush=True)
        publish.publish_file_records(duck, engine)
        publish_hourly_stats(duck, engine)
        metrics = publish_metrics(duck, engine, settings.thresholds())
        publish_alerts(engine, metrics.findings)
        published = publish.publish_transactions(duck, engine)
        print(f"published {published.transactions} transactions", flush=True)
    return 0


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
