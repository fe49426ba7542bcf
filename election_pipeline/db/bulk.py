"""Bulk writes for the pipeline: the fast path of each engine, never one ORM object at a time.

* SQLite: ``executemany`` of ``INSERT ... ON CONFLICT`` / ``UPDATE`` (plain inserts at the
  driver level, values converted by their column types).
* PostgreSQL (psycopg 3): batches of :data:`COPY_MIN_ROWS` rows or more are streamed with
  ``COPY`` into a temporary staging table, then merged with one ``INSERT ... SELECT ... ON
  CONFLICT`` (or ``UPDATE ... FROM``) statement. Smaller batches use ``executemany``.

A JSON column may be given as :class:`JsonText` (the value already serialised, e.g. by a
parse worker process); the bulk paths then write the text as is instead of serialising again.

Every writer is keyed, so any write the pipeline makes can be repeated after a crash
without changing the result: ``insert_ignore`` skips rows whose key exists, ``upsert``
overwrites the given columns, ``update_by_key`` updates rows that exist.
"""

from __future__ import annotations

import itertools
import json
import operator
from collections.abc import Callable, Iterable, Sequence
from datetime import date, datetime
from typing import Any

from sqlalchemy import JSON, Connection, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

CHUNK = 5_000
#: Below this many rows a PostgreSQL write uses ``executemany``; from it on, ``COPY``.
COPY_MIN_ROWS = 200

_stage_names = itertools.count(1)


class JsonText(str):
    """A JSON column's value, already serialised to text. Cheaper to pass between processes
    than the object, and written as is by :func:`insert_ignore` / :func:`upsert`."""

    @classmethod
    def of(cls, value: Any) -> JsonText:
        return cls(json.dumps(value, separators=(",", ":"), default=_json_default))


def _plain(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``rows`` with :class:`JsonText` values decoded, for the paths that serialise themselves."""
    if not rows or not any(isinstance(v, JsonText) for v in rows[0].values()):
        return rows
    return [{k: json.loads(v) if isinstance(v, JsonText) else v for k, v in r.items()} for r in rows]


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _insert_for(conn: Connection, table: Table) -> sqlite.Insert | postgresql.Insert:
    dialects: dict[str, Callable[[Table], sqlite.Insert | postgresql.Insert]] = {
        "sqlite": sqlite.insert,
        "postgresql": postgresql.insert,
    }
    make_insert = dialects.get(conn.dialect.name)
    if make_insert is None:
        raise NotImplementedError(f"the operational database must be SQLite or PostgreSQL, not {conn.dialect.name}")
    return make_insert(table)


def uses_copy(conn: Connection, rows: Sequence[Any]) -> bool:
    """Whether a write of ``rows`` goes through ``COPY`` (PostgreSQL with psycopg 3)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg" and len(rows) >= COPY_MIN_ROWS


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str]) -> None:
    """Insert ``rows``; rows whose ``key`` columns already exist are skipped."""
    if not rows:
        return
    if uses_copy(conn, rows):
        columns = list(rows[0])
        with _staged(conn, table, columns, rows) as stage:
            cols = ", ".join(_q(c) for c in columns)
            _exec_raw(
                conn,
                f"INSERT INTO {_qt(table)} ({cols}) SELECT {cols} FROM {stage} "
                f"ON CONFLICT ({', '.join(_q(k) for k in key)}) DO NOTHING",
            )
        return
    if conn.dialect.name == "sqlite":
        _sqlite_insert_ignore(conn, table, rows, key)
        return
    stmt = _insert_for(conn, table).on_conflict_do_nothing(index_elements=list(key))
    for part in chunks(_plain(rows)):
        conn.execute(stmt, list(part))


def _sqlite_insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str]) -> None:
    """``INSERT ... ON CONFLICT DO NOTHING`` as one driver-level ``executemany``: each value
    goes through its column type's own conversion (datetimes, booleans, JSON), exactly what
    ``conn.execute(insert(table), rows)`` does, without its per-row statement machinery."""
    columns = list(rows[0])
    convert = [_keep_json_text(table.c[c].type._cached_bind_processor(conn.dialect), rows[0][c]) for c in columns]
    sql = (
        f"INSERT INTO {_qt(table)} ({', '.join(_q(c) for c in columns)}) "
        f"VALUES ({', '.join('?' for _ in columns)}) ON CONFLICT ({', '.join(_q(k) for k in key)}) DO NOTHING"
    )
    get = operator.itemgetter(*columns) if len(columns) > 1 else (lambda r: (r[columns[0]],))
    converted = [(i, _memo(f)) for i, f in enumerate(convert) if f is not None]
    for part in chunks(rows):
        params = []
        for r in part:
            values = list(get(r))
            for i, f in converted:
                values[i] = f(values[i])
            params.append(tuple(values))
        conn.exec_driver_sql(sql, params)


def _memo(process: Any) -> Any:
    """``process`` remembering its last answer: rows of one file share ``created_at`` and
    ``updated_at``, so most conversions of those columns are a comparison."""
    last: list[Any] = [object(), None]

    def convert(value: Any) -> Any:
        if value is last[0]:
            return last[1]
        last[0], last[1] = value, process(value)
        return last[1]

    return convert


def _keep_json_text(process: Any, sample: Any) -> Any:
    """The bind processor of a column, passing :class:`JsonText` values through untouched."""
    if process is None or not isinstance(sample, JsonText):
        return process
    return lambda v: v if isinstance(v, JsonText) else process(v)


def upsert(
    conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str], columns: Sequence[str]
) -> None:
    """Insert ``rows``; where the ``key`` exists, overwrite ``columns`` instead."""
    if not rows:
        return
    if uses_copy(conn, rows):
        all_columns = list(rows[0])
        with _staged(conn, table, all_columns, rows) as stage:
            cols = ", ".join(_q(c) for c in all_columns)
            keys = ", ".join(_q(k) for k in key)
            sets = ", ".join(f"{_q(c)} = EXCLUDED.{_q(c)}" for c in columns)
            # DISTINCT ON: a key given twice in one call keeps its last row.
            _exec_raw(
                conn,
                f"INSERT INTO {_qt(table)} ({cols}) SELECT DISTINCT ON ({keys}) {cols} FROM {stage} "
                f"ORDER BY {keys}, _ord DESC ON CONFLICT ({keys}) DO UPDATE SET {sets}",
            )
        return
    ins = _insert_for(conn, table)
    stmt = ins.on_conflict_do_update(index_elements=list(key), set_={c: ins.excluded[c] for c in columns})
    for part in chunks(_plain(rows)):
        conn.execute(stmt, list(part))


def update_by_key(
    conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str], columns: Sequence[str]
) -> None:
    """``UPDATE table SET columns WHERE key`` for each row (rows whose key is absent are ignored)."""
    if not rows:
        return
    if uses_copy(conn, rows):
        wanted = list(key) + [c for c in columns if c not in key]
        with _staged(conn, table, wanted, rows) as stage:
            sets = ", ".join(f"{_q(c)} = s.{_q(c)}" for c in columns)
            where = " AND ".join(f"t.{_q(k)} = s.{_q(k)}" for k in key)
            _exec_raw(conn, f"UPDATE {_qt(table)} AS t SET {sets} FROM {stage} AS s WHERE {where}")
        return
    stmt = (
        update(table)
        .where(*[table.c[k] == bindparam(f"k_{k}") for k in key])
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    params = [{**{f"k_{k}": r[k] for k in key}, **{f"v_{c}": r[c] for c in columns}} for r in _plain(rows)]
    for part in chunks(params):
        conn.execute(stmt, list(part))


# --------------------------------------------------------------------------------------
# PostgreSQL COPY staging
# --------------------------------------------------------------------------------------


def _q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _qt(table: Table) -> str:
    return f"{_q(table.schema)}.{_q(table.name)}" if table.schema else _q(table.name)


def _exec_raw(conn: Connection, sql: str) -> None:
    with conn.connection.driver_connection.cursor() as cur:  # type: ignore[union-attr]
        cur.execute(sql)


class _staged:
    """A temporary table shaped like ``columns`` of ``table`` (plus an ordinal), filled with
    ``rows`` through ``COPY``, dropped on exit. Runs inside the caller's transaction."""

    def __init__(self, conn: Connection, table: Table, columns: list[str], rows: list[dict[str, Any]]) -> None:
        self.conn, self.table, self.columns, self.rows = conn, table, columns, rows
        self.name = f"_stage_{table.name}_{next(_stage_names)}"

    def __enter__(self) -> str:
        raw = self.conn.connection.driver_connection
        cols = ", ".join(_q(c) for c in self.columns)
        json_cols = {i for i, c in enumerate(self.columns) if _is_json(self.table, c)}
        with raw.cursor() as cur:  # type: ignore[union-attr]
            cur.execute(
                f"CREATE TEMP TABLE {self.name} ON COMMIT DROP AS "
                f"SELECT {cols}, 0::bigint AS _ord FROM {_qt(self.table)} WITH NO DATA"
            )
            with cur.copy(f"COPY {self.name} ({cols}, _ord) FROM STDIN") as copy:
                for n, row in enumerate(self.rows):
                    values = [row[c] for c in self.columns]
                    for i in json_cols:
                        if values[i] is not None and not isinstance(values[i], JsonText):
                            values[i] = json.dumps(values[i], default=_json_default)
                    values.append(n)
                    copy.write_row(values)
        return self.name

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            _exec_raw(self.conn, f"DROP TABLE IF EXISTS {self.name}")


def _is_json(table: Table, column: str) -> bool:
    col_type = table.c[column].type
    impl = col_type.dialect_impl(postgresql.dialect()) if hasattr(col_type, "dialect_impl") else col_type
    return isinstance(impl, JSON) or isinstance(col_type, JSON)


def _json_default(value: Any) -> Any:
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
