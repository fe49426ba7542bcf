"""Dagster resources: the DuckDB raw store, the operational database, the drop folder, the
detection thresholds, the quality checks, the reports folder and the notifier.

:func:`build_resources` configures them from :class:`~election_pipeline.settings.Settings`
(the ``ELECTION_*`` environment, README "Settings"). A secret setting set in the environment
(``ELECTION_DATABASE_URL``, ``ELECTION_ALERT_WEBHOOK_URLS``, ``ELECTION_SMTP_PASSWORD``)
reaches its resource as ``dg.EnvVar``, so the Dagster UI, the run storage and the logs show
the variable's name, never the secret in it.
"""

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import duckdb
from dagster_duckdb import DuckDBResource
from pydantic import PrivateAttr
from sqlalchemy import Engine

from election_pipeline.analytics.raw_store import ensure_schema
from election_pipeline.analytics.store_lock import store_turn
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.notify.channels import SmtpConfig
from election_pipeline.notify.deliver import NotifyConfig
from election_pipeline.settings import Settings, load_settings, split_list
from election_pipeline.stages.ingest_files import DropFolders
from election_pipeline.workspaces import WORKSPACE_TAG, Scope, Workspace, shared_workspace, workspace_for_tag

from .run_recovery import record_run_worker, release_dead_runs

#: How long opening the DuckDB file waits for another process's lock before giving up.
LOCK_WAIT_SECONDS = 300.0


def is_lock_error(error: BaseException) -> bool:
    """DuckDB refused to open the file because another process holds its write lock."""
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def _run_tag(context: dg.InitResourceContext) -> str | None:
    run = context.run
    return run.tags.get(WORKSPACE_TAG) if run is not None else None


class WarehouseResource(DuckDBResource):
    """The DuckDB file holding every parsed transaction of the run's workspace: the shared
    one's (``ELECTION_DUCKDB_PATH``), or, for a run tagged ``election/workspace`` with an
    election, that election's own (``ELECTION_ELECTIONS_DIR``/<election>/warehouse.duckdb;
    docs/architecture.md#several-elections-at-once).

    DuckDB allows one writer per file: Dagster's run queue starts one run per workspace at a
    time, and a step of a run started by hand waits for its turn on the store
    (``analytics/store_lock.py``); opening a file locked by another program still waits and
    retries for up to five minutes instead of failing. Only the opening is retried: an
    error raised while the connection is in use propagates as it is, and the connection is
    closed either way.
    """

    elections_dir: str = ""
    _path: str = PrivateAttr(default="")
    _scope: Scope | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        ws = workspace_for_tag(self._shared(), self.elections_dir, _run_tag(context))
        self._path = str(ws.duckdb_path)
        self._scope = Scope.of(ws, self.elections_dir)

    def scope(self) -> Scope:
        """The constituencies whose figures the run's store holds and writes."""
        if self._scope is None:
            return Scope.of(self._shared(), self.elections_dir)
        return self._scope

    def _shared(self) -> Workspace:
        """The shared workspace, as far as this resource knows it (its store)."""
        return Workspace(None, Path(), Path(), Path(), Path(self.database))

    @property
    def path(self) -> str:
        """The DuckDB file this resource opens."""
        return self._path or self.database

    def open(self) -> duckdb.DuckDBPyConnection:
        """A new read-write connection, waiting out another process's lock."""
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        config = {"custom_user_agent": "dagster", **self.connection_config}
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        delay = 0.2
        while True:
            try:
                return duckdb.connect(self.path, read_only=False, config=config)
            except duckdb.IOException as exc:
                if not is_lock_error(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    @contextmanager
    def connect(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The raw store, its schema up to date, this process's turn on it held; closed when
        the block ends."""
        with store_turn(self.path):
            conn = self.open()
            try:
                ensure_schema(conn)
                yield conn
            finally:
                conn.close()


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
    """Where export files arrive and where they go after processing, and the limits of the
    ingest (``ELECTION_INPUT_DIR``, ``ELECTION_FILE_SETTLE_SECONDS``, ``ELECTION_BATCH_SIZE``,
    ``ELECTION_ZIP_MAX_*`` ...). In a run tagged ``election/workspace`` with an election,
    the folders are that election's workspace's (``ELECTION_ELECTIONS_DIR``/<election>/)."""

    input_dir: str
    processed_dir: str
    quarantine_dir: str
    reference_dir: str
    settle_seconds: float
    batch_size: int
    zip_max_total_bytes: int
    zip_max_ratio: int
    elections_dir: str = ""
    duckdb_path: str = ""
    _tag: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        self._tag = _run_tag(context)
        self.workspace()  # an unknown workspace fails the run here, with the command that makes it

    def workspace(self) -> Workspace:
        """The run's workspace (the shared one outside a tagged run)."""
        return workspace_for_tag(shared_workspace(self), self.elections_dir, self._tag)

    def scope(self) -> Scope:
        """The constituencies the run writes figures for."""
        return Scope.of(self.workspace(), self.elections_dir)

    def folders(self) -> DropFolders:
        ws = self.workspace()
        return DropFolders.of(ws.input_dir, ws.processed_dir, ws.quarantine_dir)


class DetectionResource(dg.ConfigurableResource, DetectionThresholds):
    """Thresholds of the detection rules (``ELECTION_SPIKE_*``, ``ELECTION_NIGHT_*``,
    ``ELECTION_RATE_ALPHA`` ... see the README, "Detection and alerts"). Its fields are those
    of :class:`~election_pipeline.detection.thresholds.DetectionThresholds`, declared there
    once; :meth:`thresholds` gives them to the rules."""


class QualityChecksResource(dg.ConfigurableResource):
    """How often the blocking data-quality checks look at every constituency rather than at
    the changed ones (``ELECTION_FULL_CHECK_EVERY_MINUTES``; 0: every run)."""

    full_check_every_minutes: float


class ReportsResource(dg.ConfigurableResource):
    """Where election reports are written (``ELECTION_REPORTS_DIR``)."""

    reports_dir: str


class NotifierResource(dg.ConfigurableResource):
    """Where alert notifications go and how they are retried (``ELECTION_NOTIFY_*``,
    ``ELECTION_ALERT_WEBHOOK_URLS``, ``ELECTION_SMTP_*``, ``ELECTION_PUBLIC_URL``; README,
    "Notifications"). The webhook URLs and the SMTP password are secrets: set in the
    environment, the UI shows their variable's name only."""

    public_url: str
    min_severity: str
    webhook_urls: str
    smtp_host: str
    smtp_port: int
    smtp_username: str
    smtp_password: str
    smtp_from: str
    smtp_to: str
    smtp_starttls: bool
    timeout_seconds: float
    retries: int
    backoff_seconds: float
    max_backoff_seconds: float

    def config(self) -> NotifyConfig:
        recipients = tuple(split_list(self.smtp_to))
        smtp = (
            SmtpConfig(
                host=self.smtp_host,
                port=self.smtp_port,
                sender=self.smtp_from,
                recipients=recipients,
                username=self.smtp_username,
                password=self.smtp_password,
                starttls=self.smtp_starttls,
            )
            if self.smtp_host and recipients
            else None
        )
        return NotifyConfig(
            public_url=self.public_url,
            min_severity=self.min_severity,
            webhook_urls=tuple(split_list(self.webhook_urls)),
            smtp=smtp,
            timeout=self.timeout_seconds,
            retries=self.retries,
            backoff=self.backoff_seconds,
            max_backoff=self.max_backoff_seconds,
        )


def _value(settings: Settings, name: str) -> str | dg.EnvVar:
    """A text setting as a resource field: ``dg.EnvVar`` for a secret that comes from the
    environment (the UI then shows its name only), else the value itself. ``dg.EnvVar`` is a
    ``str`` subclass, so it fits a resource's ``str`` field; Dagster resolves it at run time."""
    value = getattr(settings, name)
    env = Settings.env_name(name)
    if value and name in Settings.secret_fields() and os.environ.get(env, "").strip() == value:
        return dg.EnvVar(env)
    return value


def build_resources(settings: Settings | None = None) -> dict[str, object]:
    """The resources, configured from ``settings`` (by default, the environment)."""
    s = settings or load_settings()
    return {
        "warehouse": WarehouseResource(
            database=s.duckdb_path,
            connection_config={"memory_limit": s.duckdb_memory_limit},
            elections_dir=s.elections_dir,
        ),
        "ops_db": OperationalDatabaseResource(url=_value(s, "database_url")),
        "drop_folder": DropFolderResource(
            input_dir=s.input_dir,
            processed_dir=s.processed_dir,
            quarantine_dir=s.quarantine_dir,
            reference_dir=s.reference_dir,
            settle_seconds=s.file_settle_seconds,
            batch_size=s.batch_size,
            zip_max_total_bytes=s.zip_max_total_bytes,
            zip_max_ratio=s.zip_max_ratio,
            elections_dir=s.elections_dir,
            duckdb_path=s.duckdb_path,
        ),
        "detection": DetectionResource(**s.thresholds().model_dump()),
        "quality_checks": QualityChecksResource(full_check_every_minutes=s.full_check_every_minutes),
        "reports": ReportsResource(reports_dir=s.reports_folder),
        "notifier": NotifierResource(
            public_url=s.public_url,
            min_severity=s.notify_min_severity,
            webhook_urls=_value(s, "alert_webhook_urls"),
            smtp_host=s.smtp_host,
            smtp_port=s.smtp_port,
            smtp_username=s.smtp_username,
            smtp_password=_value(s, "smtp_password"),
            smtp_from=s.smtp_from,
            smtp_to=s.smtp_to,
            smtp_starttls=s.smtp_starttls,
            timeout_seconds=s.notify_timeout_seconds,
            retries=s.notify_retries,
            backoff_seconds=s.notify_backoff_seconds,
            max_backoff_seconds=s.notify_max_backoff_seconds,
        ),
    }
