"""Dagster resources: the DuckDB raw store, the operational database, the drop folder and
the detection thresholds. :func:`build_resources` configures them from the ``ELECTION_*``
environment settings (see the README)."""

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from sqlalchemy import Engine

from election_pipeline.analytics.raw_store import ensure_schema
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.detection.thresholds import DetectionThresholds, SpikeThresholds
from election_pipeline.settings import Settings, load_settings
from election_pipeline.stages.ingest_files import DropFolders

from .run_recovery import record_run_worker, release_dead_runs

_LOCK_WAIT_SECONDS = 300.0


class WarehouseResource(DuckDBResource):
    """The DuckDB file holding every parsed transaction (``ELECTION_DUCKDB_PATH``).

    DuckDB allows one writer per file: the assets and checks that open it share the
    ``duckdb`` pool (limit 1), and a connection that finds the file locked by another
    process waits and retries for up to five minutes instead of failing.
    """

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        Path(self.database).parent.mkdir(parents=True, exist_ok=True)
        deadline = time.monotonic() + _LOCK_WAIT_SECONDS
        delay = 0.2
        while True:
            try:
                with self.get_connection() as conn:
                    ensure_schema(conn)
                    yield conn
                return
            except duckdb.IOException as exc:
                if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)


class OperationalDatabaseResource(dg.ConfigurableResource):
    """The operational database (``ELECTION_DATABASE_URL``): SQLite file or PostgreSQL.

    Its schema is upgraded to the newest Alembic migration on first use. In a run, it also
    records the run's process and releases runs of this host that were killed (see
    ``defs/run_recovery.py``)."""

    url: str

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        if context.instance is not None and context.run is not None:
            record_run_worker(context.instance, context.run)
            release_dead_runs(context.instance, context.run.run_id)

    def engine(self) -> Engine:
        engine = get_engine(self.url)
        upgrade_database(engine)
        return engine


class DropFolderResource(dg.ConfigurableResource):
    """Where export files arrive and where they go after processing."""

    input_dir: str
    processed_dir: str
    quarantine_dir: str
    reference_dir: str
    settle_seconds: float = 5.0
    batch_size: int = 20_000
    zip_max_total_bytes: int = 4 * 1024**3
    zip_max_ratio: int = 200

    def folders(self) -> DropFolders:
        return DropFolders.of(self.input_dir, self.processed_dir, self.quarantine_dir)


#: The documented default of every threshold, and the resource field of each threshold
#: whose setting is named differently (``ELECTION_OFFLINE_MIN_VOTES``).
_D = DetectionThresholds()
_RESOURCE_FIELD = {"offline_min_expected": "offline_min_votes"}
#: The setting each resource field takes when it is named differently.
_SETTING_OF_FIELD = {"offline_hours": "offline_after_hours"}


class DetectionResource(dg.ConfigurableResource):
    """Thresholds of the detection rules (``ELECTION_SPIKE_*``, ``ELECTION_NIGHT_*``,
    ``ELECTION_RATE_ALPHA`` ... see the README, "Detection")."""

    spike_warning_z: float = _D.spike_warning_z
    spike_critical_z: float = _D.spike_critical_z
    spike_hour_share: float = _D.spike_hour_share
    spike_min_votes: int = _D.spike_min_votes
    spike_relative_spread: float = _D.spike_relative_spread
    night_share: float = _D.night_share
    night_min_votes: int = _D.night_min_votes
    low_participation: float = _D.low_participation
    rejection_rate: float = _D.rejection_rate
    revote_rate: float = _D.revote_rate
    issued_not_voted_gap: float = _D.issued_not_voted_gap
    rate_alpha: float = _D.rate_alpha
    offline_hours: float = _D.offline_hours
    offline_min_votes: float = _D.offline_min_expected
    integer_min_voters: int = _D.integer_min_voters

    def spike(self) -> SpikeThresholds:
        return self.thresholds().spike

    def thresholds(self) -> DetectionThresholds:
        """Every rule's thresholds (a ``ValueError`` names any invalid one)."""
        return DetectionThresholds(
            **{f.name: getattr(self, _RESOURCE_FIELD.get(f.name, f.name)) for f in fields(DetectionThresholds)}
        )


class ReportsResource(dg.ConfigurableResource):
    """Where election reports are written (``ELECTION_REPORTS_DIR``) and when a silent
    constituency counts as offline (``ELECTION_OFFLINE_AFTER_HOURS``)."""

    reports_dir: str
    offline_after_hours: float = 2.0


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources, configured from ``settings`` (by default, the environment)."""
    s = settings or load_settings()
    return {
        "warehouse": WarehouseResource(
            database=s.duckdb_path, connection_config={"memory_limit": s.duckdb_memory_limit}
        ),
        "ops_db": OperationalDatabaseResource(url=s.database_url),
        "drop_folder": DropFolderResource(
            input_dir=s.input_dir,
            processed_dir=s.processed_dir,
            quarantine_dir=s.quarantine_dir,
            reference_dir=s.reference_dir,
            settle_seconds=s.file_settle_seconds,
            batch_size=s.batch_size,
            zip_max_total_bytes=s.zip_max_total_bytes,
            zip_max_ratio=s.zip_max_ratio,
        ),
        "detection": DetectionResource(
            **{name: getattr(s, _SETTING_OF_FIELD.get(name, name)) for name in DetectionResource.model_fields}
        ),
        "reports": ReportsResource(reports_dir=s.reports_folder, offline_after_hours=s.offline_after_hours),
    }
