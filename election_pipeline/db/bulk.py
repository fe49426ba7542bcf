"""Bulk writes for the pipeline (Core ``executemany``, not one ORM object at a time).

``insert_ignore`` inserts rows and silently skips those whose key exists, using
``INSERT ... ON CONFLICT DO NOTHING`` on SQLite and PostgreSQL, so every write the
pipeline makes can be repeated after a crash without changing the result.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import Connection, Table, bindparam, update
from sqlalchemy.dialects import postgresql, sqlite

CHUNK = 5_000


def chunks(items: Sequence[Any], size: int = CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def insert_ignore(conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str]) -> None:
    """Insert ``rows``; rows whose ``key`` columns already exist are skipped."""
    if not rows:
        return
    dialects = {"sqlite": sqlite.insert, "postgresql": postgresql.insert}
    make_insert = dialects.get(conn.dialect.name)
    if make_insert is None:
        raise NotImplementedError(
            f"the operational database must be SQLite or PostgreSQL, not {conn.dialect.name}"
        )
    stmt = make_insert(table).on_conflict_do_nothing(index_elements=list(key))
    for part in chunks(rows):
        conn.execute(stmt, list(part))


def update_by_key(
    conn: Connection, table: Table, rows: list[dict[str, Any]], key: Sequence[str], columns: Sequence[str]
) -> None:
    """``UPDATE table SET columns WHERE key`` for each row, as one executemany per chunk."""
    if not rows:
        return
    stmt = (
        update(table)
        .where(*[table.c[k] == bindparam(f"k_{k}") for k in key])
        .values({c: bindparam(f"v_{c}") for c in columns})
    )
    params = [
        {**{f"k_{k}": r[k] for k in key}, **{f"v_{c}": r[c] for c in columns}} for r in rows
    ]
    for part in chunks(params):
        conn.execute(stmt, list(part))
