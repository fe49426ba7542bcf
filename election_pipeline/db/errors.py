"""Which database errors are worth retrying.

*Transient*: the same work will most likely succeed a little later (the connection dropped,
the server is restarting or refuses connections for a moment, a lock or statement timed
out, a deadlock or serialisation conflict, SQLite's file is locked by another writer, the
connection pool is exhausted). *Permanent*: retrying cannot help (a constraint is
violated, a table or column is missing, the database does not exist, the password is
wrong, bad data): the step must fail at once with a clear message.
"""

from __future__ import annotations

from sqlalchemy import exc as sa_exc

#: SQLSTATE codes (or classes, two characters) of PostgreSQL errors that are transient.
TRANSIENT_SQLSTATES = {
    "08",  # connection exception (class)
    "40001",  # serialization_failure
    "40P01",  # deadlock_detected
    "55P03",  # lock_not_available (lock_timeout)
    "57014",  # query_canceled (statement_timeout)
    "57P01",  # admin_shutdown
    "57P02",  # crash_shutdown
    "57P03",  # cannot_connect_now (server starting up)
    "53300",  # too_many_connections
}
_SQLITE_TRANSIENT = ("database is locked", "database table is locked", "database schema has changed")
#: A failed PostgreSQL connection carries no SQLSTATE; these messages mean a wrong setting.
_CONNECT_PERMANENT = (
    "does not exist",  # database or role
    "password authentication failed",
    "no pg_hba.conf entry",
    "authentication failed",
    "invalid connection option",
    "invalid dsn",
    "could not translate host name",
)


def sqlstate(error: BaseException) -> str | None:
    """The PostgreSQL SQLSTATE of an error (or of the driver error it wraps)."""
    orig = getattr(error, "orig", error)
    return getattr(orig, "sqlstate", None) or getattr(orig, "pgcode", None)


def is_transient(error: BaseException) -> bool:
    """Whether retrying the work that raised ``error`` may succeed."""
    if isinstance(error, sa_exc.TimeoutError):  # no free connection in the pool
        return True
    if not isinstance(error, sa_exc.DBAPIError):
        return False
    if error.connection_invalidated:
        return True
    code = sqlstate(error)
    if code is not None:
        return code in TRANSIENT_SQLSTATES or code[:2] in TRANSIENT_SQLSTATES
    message = str(getattr(error, "orig", error)).lower()
    if any(text in message for text in _SQLITE_TRANSIENT):
        return True
    # A PostgreSQL driver error without SQLSTATE is a connection failure: transient when the
    # server refused, reset or closed the connection, permanent when a setting is wrong.
    module = type(getattr(error, "orig", error)).__module__
    if isinstance(error, sa_exc.OperationalError) and module.startswith(("psycopg", "psycopg2")):
        return not any(text in message for text in _CONNECT_PERMANENT)
    return False


def explain(error: BaseException) -> str:
    """One line saying what went wrong, for the analyst reading the failed step."""
    orig = getattr(error, "orig", None) or error
    first = str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__
    code = sqlstate(error)
    kind = "transient" if is_transient(error) else "permanent"
    return f"{kind} database error ({type(orig).__name__}{f', SQLSTATE {code}' if code else ''}): {first}"
