"""Engines, sessions and schema upgrades for the operational database.

The same code runs on SQLite (the default file under ``data/``) and on PostgreSQL through
psycopg 3: only ``ELECTION_DATABASE_URL`` changes. A plain ``postgresql://`` or
``postgres://`` URL is read as ``postgresql+psycopg://``.

The schema belongs to Alembic (``election_pipeline/db/migrations``). The pipeline calls
:func:`upgrade_database` before it touches the database, so a new database is created and
an older one is brought to the current revision on start. Several processes starting at
once are serialised (a PostgreSQL advisory lock, or a lock file for the SQLite file in the temporary folder).
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path

from sqlalchemy import Connection, Engine, create_engine, event, text
from sqlalchemy.engine.interfaces import DBAPIConnection
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import ConnectionPoolEntry

from .models import Base

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
#: Key of the PostgreSQL advisory lock held while the schema is upgraded.
_PG_MIGRATION_LOCK = 7_305_011_942


class SchemaError(RuntimeError):
    """The database holds tables that Alembic does not manage and that differ from the models."""


def normalise_url(url: str) -> str:
    """``postgres://`` and ``postgresql://`` (no driver) mean psycopg 3."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and ":memory:" not in url:
        return Path(url[len(prefix) :].split("?", 1)[0])
    return None


@lru_cache(maxsize=64)
def get_engine(url: str) -> Engine:
    """One engine per URL. SQLite gets WAL, foreign keys, a busy timeout and a larger page
    cache; PostgreSQL a pool that checks connections before use (a dropped connection is
    replaced).

    Both pools keep up to 10 connections open (at most 30 on SQLite, 20 on PostgreSQL, at
    once): the API answers many requests at a time, and a pool smaller than that closes
    and reopens a connection for every request beyond it (a new PostgreSQL connection costs
    a server process). The pipeline's steps use one or two."""
    url = normalise_url(url)
    path = _sqlite_path(url)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url, connect_args={"check_same_thread": False, "timeout": 60}, pool_size=10, max_overflow=20
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: DBAPIConnection, _record: ConnectionPoolEntry) -> None:
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA busy_timeout=60000")
            # 64 MiB of page cache (default 2 MiB): inserts into the random-key indexes of a
            # table of millions of transactions would otherwise read most pages from disk.
            cur.execute("PRAGMA cache_size=-65536")
            cur.close()

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


# --------------------------------------------------------------------------------------
# Alembic
# --------------------------------------------------------------------------------------


def alembic_config(connection: Connection | None = None):  # -> alembic.config.Config
    """An Alembic configuration pointing at the project's migrations. With ``connection``,
    the migrations run on it; otherwise ``env.py`` reads ``ELECTION_DATABASE_URL``."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


@lru_cache(maxsize=1)
def head_revision() -> str:
    """The newest migration of the code (read once per process)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:
        raise SchemaError(f"no migration found in {MIGRATIONS_DIR}")
    return head


def current_revision(conn: Connection) -> str | None:
    """The revision recorded in the database (None: not managed by Alembic yet)."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def schema_differences(conn: Connection) -> list:
    """What differs between the database and the models (empty when they agree)."""
    from alembic.autogenerate import compare_metadata
    from alembic.runtime.migration import MigrationContext

    ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": False})
    return [d for d in compare_metadata(ctx, Base.metadata) if not _ignorable(d)]


def _ignorable(diff: object) -> bool:
    # The Alembic bookkeeping table is not part of the models.
    return isinstance(diff, tuple) and diff[0] == "remove_table" and diff[1].name == "alembic_version"


@contextmanager
def _migration_lock(engine: Engine) -> Iterator[Connection]:
    """A connection holding the cross-process migration lock."""
    path = _sqlite_path(str(engine.url))
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(text("SELECT pg_advisory_lock(:k)"), {"k": _PG_MIGRATION_LOCK})
            conn.commit()
            try:
                yield conn
            finally:
                conn.rollback()
                conn.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": _PG_MIGRATION_LOCK})
                conn.commit()
    elif path is not None:
        # In the temporary folder, not next to the database: nothing to clean up in data/.
        digest = hashlib.sha1(str(path.resolve()).encode()).hexdigest()[:16]
        lock_path = Path(tempfile.gettempdir()) / f"election-pipeline-migrate-{digest}.lock"
        with open(lock_path, "a+") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                with engine.connect() as conn:
                    yield conn
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)
    else:
        with engine.connect() as conn:
            yield conn


def upgrade_database(engine: Engine) -> str:
    """Bring the database to the newest migration; returns the revision it is at.

    * already at the newest revision: nothing happens (one query);
    * empty database: every migration runs;
    * older revision: the missing migrations run;
    * tables created before Alembic managed them (by ``create_all``): when they equal the
      models the database is stamped, otherwise :class:`SchemaError` explains what differs.
    """
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn) == head:
            return head
    from alembic import command

    with _migration_lock(engine) as conn:
        current = current_revision(conn)
        if current == head:
            return head
        if current is None and _has_model_tables(conn):
            diffs = schema_differences(conn)
            if diffs:
                raise SchemaError(
                    "the operational database holds tables that Alembic does not manage and that differ "
                    f"from the models ({len(diffs)} differences, first: {diffs[0]!r}); migrate it by hand "
                    "or point ELECTION_DATABASE_URL at a new database"
                )
            command.stamp(alembic_config(conn), head)
            conn.commit()
            log.info("Operational database created before migrations; stamped at revision %s", head)
            return head
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
        log.info("Operational database upgraded from %s to %s", current or "an empty schema", head)
    return head


def _has_model_tables(conn: Connection) -> bool:
    from sqlalchemy import inspect

    return bool(set(inspect(conn).get_table_names()) & set(Base.metadata.tables))


def create_tables(engine: Engine) -> None:
    """Create or upgrade the schema (kept for callers of the first version: same as
    :func:`upgrade_database`)."""
    upgrade_database(engine)


def session_factory(url: str) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), autoflush=False, expire_on_commit=False)
