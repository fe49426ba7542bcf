"""Alembic owns the schema: ``alembic upgrade head`` builds exactly the models' schema on
SQLite and PostgreSQL, a difference is detected, the pipeline upgrades on start, and a
downgrade/upgrade round trip works."""

from __future__ import annotations

import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import inspect, text

from election_pipeline.db.models import Base
from election_pipeline.db.session import (
    SchemaError,
    alembic_config,
    current_revision,
    get_engine,
    head_revision,
    schema_differences,
    upgrade_database,
)

REPO = Path(__file__).resolve().parents[2]


def _tables(engine) -> set[str]:
    return set(inspect(engine).get_table_names()) - {"alembic_version"}


def test_alembic_cli_upgrade_head_builds_exactly_the_models(db_url):
    """``alembic upgrade head`` from the repository root, URL from ELECTION_DATABASE_URL."""
    env = {**os.environ, "ELECTION_DATABASE_URL": db_url}
    done = subprocess.run(
        [sys.executable, "-m", "alembic", "upgrade", "head"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    engine = get_engine(db_url)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert schema_differences(conn) == []
    assert _tables(engine) == set(Base.metadata.tables)
    # `alembic check` agrees: no operation would be generated.
    check = subprocess.run(
        [sys.executable, "-m", "alembic", "check"], cwd=REPO, env=env, capture_output=True, text=True, timeout=120
    )
    assert check.returncode == 0, check.stdout + check.stderr


def test_drift_between_database_and_models_is_detected(db_url):
    engine = get_engine(db_url)
    upgrade_database(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_alerts_detected_at"))
        conn.execute(text("ALTER TABLE elections ADD COLUMN sneaky INTEGER"))
    with engine.connect() as conn:
        diffs = schema_differences(conn)
    kinds = sorted(d[0] for d in diffs)
    assert kinds == ["add_index", "remove_column"], diffs


def test_pipeline_start_upgrades_an_empty_database_and_is_then_a_no_op(db_url):
    engine = get_engine(db_url)
    assert _tables(engine) == set()
    assert upgrade_database(engine) == head_revision()
    assert _tables(engine) == set(Base.metadata.tables)
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
    assert upgrade_database(engine) == head_revision()  # second start: nothing to do


def test_downgrade_then_upgrade_round_trip(db_url):
    engine = get_engine(db_url)
    upgrade_database(engine)
    with engine.connect() as conn:
        command.downgrade(alembic_config(conn), "base")
        conn.commit()
    assert _tables(engine) == set()
    with engine.connect() as conn:
        assert current_revision(conn) is None
        command.upgrade(alembic_config(conn), "head")
        conn.commit()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert schema_differences(conn) == []


def test_database_created_before_migrations_is_stamped_when_it_matches(db_url):
    engine = get_engine(db_url)
    Base.metadata.create_all(engine)  # what the first version of the pipeline did
    assert upgrade_database(engine) == head_revision()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()


def test_database_created_before_migrations_that_differs_is_refused_with_a_reason(db_url):
    engine = get_engine(db_url)
    Base.metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_alerts_detected_at"))
    with pytest.raises(SchemaError, match="differ from the models"):
        upgrade_database(engine)


def _upgrade_in_child(url: str) -> str:
    return upgrade_database(get_engine(url))


def test_processes_starting_together_upgrade_once(db_url):
    """Four processes upgrading a new database at the same moment all succeed."""
    ctx = multiprocessing.get_context("spawn")
    pool = ctx.Pool(4)
    try:
        results = pool.map(_upgrade_in_child, [db_url] * 4)
    finally:
        # close + join, not the context manager's terminate(): a worker started with SIGTERM
        # ignored (dagster maps SIGTERM to SIGINT's handler, which a process started in the
        # background of a shell ignores) would never stop
        pool.close()
        pool.join()
    assert results == [head_revision()] * 4
    with get_engine(db_url).connect() as conn:
        assert schema_differences(conn) == []
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1


def test_the_pipeline_resource_upgrades_the_database_on_first_use(db_url):
    """What every asset does before touching the database (no create_all anywhere)."""
    from election_pipeline.defs.resources import OperationalDatabaseResource

    engine = OperationalDatabaseResource(url=db_url).engine()
    with engine.connect() as conn:
        assert current_revision(conn) == head_revision()
        assert schema_differences(conn) == []
