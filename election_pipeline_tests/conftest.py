"""Fixtures shared by every test folder.

``db_url`` runs a database test twice: on a SQLite file in ``tmp_path`` and on the
PostgreSQL server of the machine (``ELECTION_TEST_POSTGRES_URL``, by default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``), each PostgreSQL test in a schema of
its own, created before and dropped after the test. The URL selects the schema with
``options=-csearch_path=...``, so the code under test sees nothing but an ordinary URL.

The PostgreSQL half is skipped (with the reason printed) only when no server answers, and
never in CI: when ``CI`` or ``ELECTION_REQUIRE_POSTGRES`` is set, a missing server fails
the test instead.
"""

from __future__ import annotations

import contextlib
import os
import sys
import uuid
from collections.abc import Iterator
from functools import lru_cache
from typing import Any
from urllib.parse import quote

import psycopg
import pytest

from election_pipeline.db.session import get_engine

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
ENGINES = ["sqlite", "postgresql"]


def pg_base_url() -> str:
    return os.environ.get("ELECTION_TEST_POSTGRES_URL", DEFAULT_PG_URL)


def _libpq(url: str) -> str:
    """The SQLAlchemy URL as a libpq connection string (for psycopg.connect)."""
    return url.replace("postgresql+psycopg://", "postgresql://", 1)


def postgres_required() -> bool:
    return bool(os.environ.get("CI") or os.environ.get("ELECTION_REQUIRE_POSTGRES"))


@lru_cache(maxsize=1)
def postgres_unavailable() -> str | None:
    """Why the PostgreSQL server cannot be used, or None when it answers."""
    try:
        with psycopg.connect(_libpq(pg_base_url()), connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        return f"no PostgreSQL server answers at {pg_base_url()}: {str(exc).strip()}"
    return None


def require_postgres() -> None:
    """Skip (locally) or fail (in CI) when the PostgreSQL server does not answer."""
    reason = postgres_unavailable()
    if reason is None:
        return
    if postgres_required():
        pytest.fail(f"{reason} (CI / ELECTION_REQUIRE_POSTGRES is set: PostgreSQL tests may not be skipped)")
    print(f"\nSKIPPING the PostgreSQL half: {reason}", file=sys.stderr)
    pytest.skip(reason)


def _admin_execute(sql: str, *, dbname: str | None = None) -> None:
    url = _libpq(pg_base_url())
    kwargs: dict[str, Any] = {"dbname": dbname} if dbname else {}
    with psycopg.connect(url, autocommit=True, connect_timeout=5, **kwargs) as conn:
        conn.execute(sql)


def with_search_path(url: str, schema: str) -> str:
    sep = "&" if "?" in url else "?"
    return f"{url}{sep}options={quote(f'-csearch_path={schema}', safe='')}"


@contextlib.contextmanager
def new_postgres_schema() -> Iterator[str]:
    """A URL of the PostgreSQL server whose default schema is a new, empty schema, dropped
    afterwards (the test is skipped where no server answers)."""
    require_postgres()
    schema = f"t_{uuid.uuid4().hex[:16]}"
    _admin_execute(f'CREATE SCHEMA "{schema}"')
    url = with_search_path(pg_base_url(), schema)
    try:
        yield url
    finally:
        get_engine(url).dispose()
        _admin_execute(f"SET lock_timeout = '20s'; DROP SCHEMA \"{schema}\" CASCADE")


@pytest.fixture
def postgres_schema_url() -> Iterator[str]:
    """A URL of the PostgreSQL server whose default schema is a new, empty schema."""
    with new_postgres_schema() as url:
        yield url


@pytest.fixture
def postgres_database() -> Iterator[dict[str, str]]:
    """A new, empty PostgreSQL database (for the Dagster instance storage), dropped afterwards.
    Yields ``name`` and ``url`` (SQLAlchemy URL)."""
    require_postgres()
    name = f"t_{uuid.uuid4().hex[:16]}"
    _admin_execute(f'CREATE DATABASE "{name}"')
    base = pg_base_url()
    head, _, query = base.partition("?")
    url = head.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    try:
        yield {"name": name, "url": url}
    finally:
        get_engine(url).dispose()
        _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=ENGINES)
def db_url(request: pytest.FixtureRequest, tmp_path) -> Iterator[str]:
    """An empty operational database: a SQLite file, then a PostgreSQL schema of its own."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'ops.db'}"
        return
    yield request.getfixturevalue("postgres_schema_url")


@pytest.fixture
def db_url_factory(db_url: str, tmp_path) -> Iterator:
    """More empty databases on the engine of ``db_url``: ``factory(name)`` returns a new URL
    (a SQLite file ``<name>.db``, or a new PostgreSQL schema dropped after the test)."""
    schemas: list[str] = []

    def factory(name: str) -> str:
        if db_url.startswith("sqlite"):
            return f"sqlite:///{tmp_path / f'{name}.db'}"
        schema = f"t_{uuid.uuid4().hex[:16]}"
        _admin_execute(f'CREATE SCHEMA "{schema}"')
        schemas.append(schema)
        return with_search_path(pg_base_url(), schema)

    try:
        yield factory
    finally:
        for schema in schemas:
            get_engine(with_search_path(pg_base_url(), schema)).dispose()
            _admin_execute(f"SET lock_timeout = '20s'; DROP SCHEMA \"{schema}\" CASCADE")
