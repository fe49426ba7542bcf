"""Transient database errors are retried with backoff by Dagster's retry policy; permanent
ones fail the step at once with a clear message. Real errors from real servers."""

from __future__ import annotations

import sqlite3
import threading
import time

import dagster as dg
import psycopg
from sqlalchemy import create_engine, text

from election_pipeline.db.errors import explain, is_transient
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.defs.assets import alerts, constituency_metrics, hourly_stats, raw_transactions, reference_data
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.resources import build_resources
from election_pipeline.defs.retries import DB_RETRY_POLICY
from election_pipeline_tests.conftest import _libpq, pg_base_url, require_postgres
from election_pipeline_tests.scenario import EXPECTED_HOURLY, drop_all, hourly_figures

ASSETS = [reference_data, raw_transactions, hourly_stats, constituency_metrics, alerts, *ALL_CHECKS]


def _error(engine, sql: str) -> BaseException:
    try:
        with engine.begin() as conn:
            conn.execute(text(sql))
    except Exception as exc:
        return exc
    raise AssertionError(f"{sql} did not fail")


def test_sqlite_locked_file_is_transient_and_missing_table_permanent(tmp_path):
    path = tmp_path / "ops.db"
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("CREATE TABLE t (x INTEGER)")
    holder.execute("BEGIN EXCLUSIVE")
    impatient = create_engine(f"sqlite:///{path}", connect_args={"timeout": 0.1})
    try:
        locked = _error(impatient, "INSERT INTO t VALUES (1)")
        assert is_transient(locked), locked
        assert "transient database error" in explain(locked)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    missing = _error(impatient, "SELECT * FROM no_such_table")
    assert not is_transient(missing)
    assert "permanent database error" in explain(missing) and "no_such_table" in explain(missing)


def test_postgresql_lock_timeout_and_dropped_connection_are_transient(postgres_schema_url):
    engine = create_engine(postgres_schema_url.replace("options=", "options=-clock_timeout%3D200%20"))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE t (x INTEGER PRIMARY KEY)"))
    with engine.connect() as holder:
        holder.execute(text("LOCK TABLE t IN ACCESS EXCLUSIVE MODE"))
        timed_out = _error(engine, "INSERT INTO t VALUES (1)")
        holder.rollback()
    assert is_transient(timed_out), timed_out
    assert "SQLSTATE 55P03" in explain(timed_out)

    # The server ends the session (what a restart or failover does).
    with engine.connect() as victim:
        pid = victim.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with psycopg.connect(_libpq(pg_base_url()), autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", [pid])
        try:
            victim.execute(text("SELECT 1"))
        except Exception as exc:
            dropped = exc
        else:
            raise AssertionError("the terminated session still answered")
    assert is_transient(dropped), dropped

    duplicate = _error(engine, "INSERT INTO t VALUES (1); INSERT INTO t VALUES (1)")
    assert not is_transient(duplicate) and "SQLSTATE 23505" in explain(duplicate)
    engine.dispose()


def _all_retry_events(instance) -> list:
    runs = instance.get_runs(limit=1)
    if not runs:
        return []
    return instance.get_records_for_run(runs[0].run_id, of_type=dg.DagsterEventType.STEP_UP_FOR_RETRY).records


def _step_events(instance, run_id: str, event_type: dg.DagsterEventType, step: str) -> list:
    records = instance.get_records_for_run(run_id, of_type=event_type).records
    return [r.event_log_entry for r in records if r.event_log_entry.step_key == step]


def test_lock_timeout_in_a_step_is_retried_and_the_run_finishes_exactly(workspace, instance, postgres_schema_url):
    """hourly_stats meets a table locked by someone else (lock_timeout 1 s, set in the URL):
    the step fails, is retried after the policy's delay once the lock is gone, and the run
    ends with the exact figures."""
    assert DB_RETRY_POLICY.delay is not None
    assert DB_RETRY_POLICY.max_retries >= 1 and DB_RETRY_POLICY.delay > 0
    url = postgres_schema_url.replace("options=", "options=-clock_timeout%3D1000%20")
    engine = get_engine(url)
    upgrade_database(engine)
    drop_all(workspace)

    holder = get_engine(postgres_schema_url).connect()
    holder.execute(text("LOCK TABLE hourly_stats IN ACCESS EXCLUSIVE MODE"))
    released = threading.Event()

    def release_after_first_failure() -> None:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if any(r for r in _all_retry_events(instance)):
                break
            time.sleep(0.2)
        holder.rollback()
        holder.close()
        released.set()

    watcher = threading.Thread(target=release_after_first_failure, daemon=True)
    watcher.start()
    started = time.monotonic()
    result = dg.materialize(
        ASSETS, resources=build_resources(workspace.settings(database_url=url)), instance=instance, raise_on_error=False
    )
    watcher.join(5)
    assert released.is_set()
    assert result.success
    retried = _step_events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY, "hourly_stats")
    assert len(retried) >= 1
    assert (
        "lock timeout"
        in str(
            retried[0].dagster_event.event_specific_data.error.cause
            or retried[0].dagster_event.event_specific_data.error
        ).lower()
    )
    assert time.monotonic() - started >= DB_RETRY_POLICY.delay * 0.5  # it waited before retrying
    assert hourly_figures(engine) == EXPECTED_HOURLY


def test_permanent_error_fails_at_once_with_a_clear_message(workspace, instance):
    """A database that does not exist is a configuration error: no retry, a readable reason."""
    assert DB_RETRY_POLICY.delay is not None
    require_postgres()
    missing_db = pg_base_url().rsplit("/", 1)[0] + "/no_such_database_for_election_tests"
    drop_all(workspace)
    started = time.monotonic()
    result = dg.materialize(
        ASSETS,
        resources=build_resources(workspace.settings(database_url=missing_db)),
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failures = _step_events(instance, result.run_id, dg.DagsterEventType.STEP_FAILURE, "reference_data")
    assert len(failures) == 1
    message = failures[0].dagster_event.event_specific_data.error.message
    assert "permanent database error" in message and "Retrying cannot help" in message
    assert 'database "no_such_database_for_election_tests" does not exist' in message
    assert _step_events(instance, result.run_id, dg.DagsterEventType.STEP_UP_FOR_RETRY, "reference_data") == []
    assert time.monotonic() - started < DB_RETRY_POLICY.delay * 2 + 20
