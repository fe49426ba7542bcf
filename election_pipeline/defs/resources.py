"""Dagster resources: the DuckDB raw store, the operational database, the drop folder and
the detection thresholds. :func:`build_resources` configures them from the ``ELECTION_*``
environment settings (see the README)."""


import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from sqlalchemy import Engine

from election_pipeline.analytics.raw_store import ensure_schema
from election_pipeline.db.session import create_tables, get_engine
from election_pipeline.detection.rules import SpikeThresholds
from election_pipeline.settings import Settings, load_settings
from election_pipeline.stages.ingest_files import DropFolders

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
    """The operational database (``ELECTION_DATABASE_URL``): SQLite file or PostgreSQL."""

    url: str

    def engine(self) -> Engine:
        engine = get_engine(self.url)
        create_tables(engine)
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


class DetectionResource(dg.ConfigurableResource):
    """Thresholds of the detection rules (``ELECTION_SPIKE_*``)."""

    spike_warning_z: float = 3.5
    spike_critical_z: float = 6.0
    spike_hour_share: float = 0.25
    spike_min_votes: int = 20

    def spike(self) -> SpikeThresholds:
        return SpikeThresholds(self.spike_warning_z, self.spike_critical_z, self.spike_hour_share, self.spike_min_votes)


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources, configured from ``settings`` (by default, the environment)."""
    s = settings or load_settings()
    return {
        "warehouse": WarehouseResource(database=s.duckdb_path),
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
            spike_warning_z=s.spike_warning_z,
            spike_critical_z=s.spike_critical_z,
            spike_hour_share=s.spike_hour_share,
            spike_min_votes=s.spike_min_votes,
        ),
    }
