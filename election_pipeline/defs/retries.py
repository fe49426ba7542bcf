"""Retries of the pipeline's steps.

Every asset has :data:`DB_RETRY_POLICY`. A step that fails on a *transient* error is
retried up to three times, after about 2, 4 and 8 seconds: the operational database
dropped the connection, a lock or statement timed out, a deadlock, the SQLite file was
locked (see :mod:`election_pipeline.db.errors`), or the DuckDB file stayed locked by
another process beyond the five-minute wait. Anything else fails the step at once,
without retries, with a message saying what is wrong: a *permanent* database error
(constraint violated, missing table, unknown database, wrong password, a schema that
differs from the models), invalid reference data, or a bug. Every write is keyed and
committed per file, so a retried step finishes the work without counting anything twice.
"""

import functools
from collections.abc import Callable
from typing import Any, TypeVar

import dagster as dg
import duckdb
from sqlalchemy import exc as sa_exc

from election_pipeline.db.errors import explain, is_transient
from election_pipeline.db.session import SchemaError

DB_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=2.0, backoff=dg.Backoff.EXPONENTIAL, jitter=dg.Jitter.PLUS_MINUS)

F = TypeVar("F", bound=Callable[..., Any])


def worth_retrying(error: BaseException) -> bool:
    """Transient database errors and a DuckDB file still locked by another process."""
    if isinstance(error, (sa_exc.DBAPIError, sa_exc.TimeoutError)):
        return is_transient(error)
    return isinstance(error, duckdb.IOException) and "lock" in str(error).lower()


def permanent_db_errors_fail(fn: F) -> F:
    """Decorate an asset body (under ``@dg.asset``): transient errors propagate, so the retry
    policy retries them; any other error becomes a :class:`dagster.Failure` that bypasses
    the policy and says whether it was the database or something else."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (dg.Failure, dg.RetryRequested, dg.DagsterError):
            raise
        except Exception as error:
            if worth_retrying(error):
                raise
            if isinstance(error, (sa_exc.DBAPIError, sa_exc.TimeoutError)):
                description = (
                    f"{fn.__name__} stopped on a {explain(error)}. Retrying cannot help: fix the "
                    "database or ELECTION_DATABASE_URL, then re-run."
                )
            elif isinstance(error, SchemaError):
                description = f"{fn.__name__}: the operational database schema is not usable: {error}"
            else:
                description = f"{fn.__name__} failed ({type(error).__name__}): {error}"
            raise dg.Failure(description=description, allow_retries=False) from error

    return wrapper  # type: ignore[return-value]
