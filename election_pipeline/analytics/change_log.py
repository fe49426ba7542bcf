"""Which constituencies changed in the raw store, so that a run only redoes their figures.

Every change to what counts is written down as the ids of the constituencies it touched,
under a number that only grows (``seq``):

* new transactions (the constituency of each), and rollback lines (the constituency of
  the transaction they cancel, which may be another contract's, and the rollback's own);
* the retention job retiring a constituency or removing old frozen hours.

Whoever reads the figures keeps a *mark*: the last ``seq`` it has taken into account
(table ``change_marks``, one row per reader). On its next run it looks only at the
constituencies logged after its mark, so its work follows what arrived, not the size of
the history. A reader moves its mark only after its results are stored, so a crash in
between makes the next run redo the same constituencies: work is repeated, never missed.
A reader without a mark (first run, or a new store) does everything.

How the ingest's changes reach the log. The ingest records every file whose rows it
committed in ``raw_files``, in the same DuckDB transaction as the rows. :func:`catch_up`
(called by every reader before it looks at the log) finds the files not logged yet and
logs the constituencies of their rows: exact, but it reads the raw rows' file column, so
it costs a scan of the store. When the ingest calls :func:`record_ingested` itself, in
the transaction that writes the rows, those files are logged already and the scan is not
needed. Finally, :func:`catch_up` compares the number of stored transactions and rollback
lines with the number the log accounts for: a row written some other way (by hand, by an
older version) makes it log every constituency, so nothing is ever missed.

Before all that, :func:`catch_up` removes the rows of a large file's parts whose file was
never recorded (an ingest stopped between two parts: ``analytics/ingest_parts.py``) and logs
their constituencies as changed.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime

import duckdb
import pandas as pd

from election_pipeline.analytics import ingest_parts, raw_store
from election_pipeline.analytics.duck_frames import registered

SCHEMA = """
CREATE TABLE IF NOT EXISTS change_log (
    seq             BIGINT NOT NULL,
    constituency_id VARCHAR NOT NULL,
    reason          VARCHAR NOT NULL,
    logged_at       TIMESTAMP NOT NULL
);
-- Files of raw_files whose changes are in change_log.
CREATE TABLE IF NOT EXISTS change_log_files (
    file_hash VARCHAR PRIMARY KEY,
    seq       BIGINT NOT NULL
);
-- One row: the last seq handed out, and the raw row counts the log accounts for.
CREATE TABLE IF NOT EXISTS change_log_state (
    store_id     VARCHAR NOT NULL,
    last_seq     BIGINT NOT NULL,
    transactions BIGINT NOT NULL,
    rollbacks    BIGINT NOT NULL
);
-- Per reader (a cached figure table, a check): the last seq it has taken into account.
CREATE TABLE IF NOT EXISTS change_marks (
    name       VARCHAR PRIMARY KEY,
    seq        BIGINT NOT NULL,
    updated_at TIMESTAMP NOT NULL
);
"""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def ensure_change_log(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the log's tables (a no-op when they exist)."""
    conn.execute(SCHEMA)
    if not conn.execute("SELECT 1 FROM change_log_state").fetchall():
        # A store that already holds rows is caught up from raw_files by the next catch_up.
        conn.execute("INSERT INTO change_log_state VALUES (?, 0, 0, 0)", [uuid.uuid4().hex])


def _raw_counts(conn: duckdb.DuckDBPyConnection) -> tuple[int, int]:
    row = conn.execute(
        "SELECT (SELECT count(*) FROM raw_transactions), (SELECT count(*) FROM raw_rollbacks)"
    ).fetchall()
    return int(row[0][0]), int(row[0][1])


def next_seq(conn: duckdb.DuckDBPyConnection) -> int:
    """Hand out a new seq (inside the caller's transaction)."""
    ensure_change_log(conn)
    return int(conn.execute("UPDATE change_log_state SET last_seq = last_seq + 1 RETURNING last_seq").fetchall()[0][0])


def _log(
    conn: duckdb.DuckDBPyConnection, constituency_ids: Iterable[str], reason: str, seq: int | None = None
) -> int | None:
    """Log ``constituency_ids`` under ``seq`` (a new one when not given; returned; None when
    there is nothing to log)."""
    ids = sorted({str(c) for c in constituency_ids if c is not None})
    if not ids:
        return None
    if seq is None:
        seq = next_seq(conn)
    with registered(conn, "_changed", pd.DataFrame({"constituency_id": ids})):
        conn.execute("INSERT INTO change_log SELECT ?, constituency_id, ?, ? FROM _changed", [seq, reason, _now()])
    return seq


def _set_counts(conn: duckdb.DuckDBPyConnection) -> None:
    transactions, rollbacks = _raw_counts(conn)
    conn.execute("UPDATE change_log_state SET transactions = ?, rollbacks = ?", [transactions, rollbacks])


def constituencies_of(conn: duckdb.DuckDBPyConnection, tx_ids: Iterable[str]) -> set[str]:
    """Constituencies of the stored transactions with these ids."""
    return {c for _, c in raw_store.stored_with_ids(conn, tx_ids, "constituency_id")}


def record_ingested(
    conn: duckdb.DuckDBPyConnection,
    file_hashes: Iterable[str],
    constituency_ids: Iterable[str],
    rollback_tx_ids: Iterable[str] = (),
    seq: int | None = None,
) -> None:
    """For the ingest, inside the DuckDB transaction that inserted the rows and recorded the
    files in ``raw_files``, after those inserts: log the constituencies of the transactions
    just inserted (``constituency_ids``) and of the stored transactions cancelled by the
    rollback lines just inserted (``rollback_tx_ids``, looked up here), and mark the files
    as logged, so that :func:`catch_up` need not scan for them."""
    ensure_change_log(conn)
    hashes = sorted(set(file_hashes))
    changed = set(constituency_ids)
    changed |= constituencies_of(conn, rollback_tx_ids)
    logged = _log(conn, changed, "ingest", seq)
    seq = logged if logged is not None else seq
    if hashes:
        with registered(conn, "_logged_files", pd.DataFrame({"file_hash": hashes})):
            conn.execute(
                "INSERT OR IGNORE INTO change_log_files SELECT file_hash, ? FROM _logged_files",
                [seq if seq is not None else 0],
            )
    _set_counts(conn)


def record_changes(conn: duckdb.DuckDBPyConnection, constituency_ids: Iterable[str], reason: str) -> None:
    """Log constituencies whose raw rows changed other than through the ingest (the retention
    job). Call it in the transaction that changes the rows, after the change."""
    ensure_change_log(conn)
    _log(conn, constituency_ids, reason)
    _set_counts(conn)


def catch_up(conn: duckdb.DuckDBPyConnection) -> int:
    """Log what the ingest committed without logging it (see the module's description) and
    return the last seq: every change up to it is in the log."""
    ensure_change_log(conn)
    with raw_store.transaction(conn):
        _log(conn, ingest_parts.discard_unfinished(conn), "unfinished ingest removed")
        unlogged = [
            r[0]
            for r in conn.execute(
                "SELECT file_hash FROM raw_files WHERE file_hash NOT IN (SELECT file_hash FROM change_log_files)"
            ).fetchall()
        ]
        expected_tx, expected_rb = (
            int(v) for v in conn.execute("SELECT transactions, rollbacks FROM change_log_state").fetchall()[0]
        )
        if unlogged:
            conn.register("_unlogged", pd.DataFrame({"file_hash": unlogged}))
            try:
                conn.execute(
                    "CREATE OR REPLACE TEMP TABLE _unlogged_tx AS SELECT tx_id, constituency_id FROM raw_transactions "
                    "WHERE file_hash IN (SELECT file_hash FROM _unlogged)"
                )
                conn.execute(
                    "CREATE OR REPLACE TEMP TABLE _unlogged_rb AS SELECT tx_id, constituency_id FROM raw_rollbacks "
                    "WHERE file_hash IN (SELECT file_hash FROM _unlogged)"
                )
                changed = {
                    r[0]
                    for r in conn.execute(
                        "SELECT constituency_id FROM _unlogged_tx UNION SELECT constituency_id FROM _unlogged_rb"
                    ).fetchall()
                }
                changed |= constituencies_of(
                    conn, [r[0] for r in conn.execute("SELECT tx_id FROM _unlogged_rb").fetchall()]
                )
                expected_tx += int(conn.execute("SELECT count(*) FROM _unlogged_tx").fetchall()[0][0])
                expected_rb += int(conn.execute("SELECT count(*) FROM _unlogged_rb").fetchall()[0][0])
                seq = _log(conn, changed, "ingest")
                conn.execute(
                    "INSERT OR IGNORE INTO change_log_files SELECT file_hash, ? FROM _unlogged",
                    [seq if seq is not None else 0],
                )
            finally:
                conn.unregister("_unlogged")
                conn.execute("DROP TABLE IF EXISTS _unlogged_tx")
                conn.execute("DROP TABLE IF EXISTS _unlogged_rb")
        if _raw_counts(conn) != (expected_tx, expected_rb):
            # Rows the log cannot account for: count every constituency as changed.
            everything = {
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT constituency_id FROM raw_transactions "
                    "UNION SELECT constituency_id FROM raw_rollbacks"
                ).fetchall()
            }
            _log(conn, everything, "unaccounted rows")
        _set_counts(conn)
        return last_seq(conn)


def last_seq(conn: duckdb.DuckDBPyConnection) -> int:
    """The last seq handed out (0: nothing logged yet)."""
    return int(conn.execute("SELECT last_seq FROM change_log_state").fetchall()[0][0])


def mark_of(conn: duckdb.DuckDBPyConnection, name: str) -> int | None:
    """The last seq the reader ``name`` has taken into account (None: it never ran)."""
    rows = conn.execute("SELECT seq FROM change_marks WHERE name = ?", [name]).fetchall()
    return int(rows[0][0]) if rows else None


def marked_at(conn: duckdb.DuckDBPyConnection, name: str) -> datetime | None:
    """When the reader ``name`` last moved its mark (UTC; None: it never did)."""
    rows = conn.execute("SELECT updated_at FROM change_marks WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def set_mark(conn: duckdb.DuckDBPyConnection, name: str, seq: int) -> None:
    """Record that ``name`` has taken every change up to ``seq`` into account."""
    conn.execute(
        "INSERT INTO change_marks VALUES (?, ?, ?) ON CONFLICT (name) DO UPDATE SET seq = excluded.seq, "
        "updated_at = excluded.updated_at",
        [name, int(seq), _now()],
    )


def forget_mark(conn: duckdb.DuckDBPyConnection, name: str) -> None:
    """Make the reader ``name`` do everything on its next run."""
    conn.execute("DELETE FROM change_marks WHERE name = ?", [name])


def changed_since(conn: duckdb.DuckDBPyConnection, mark: int, upto: int) -> list[str]:
    """Constituencies logged after ``mark`` and up to ``upto``."""
    return sorted(
        r[0]
        for r in conn.execute(
            "SELECT DISTINCT constituency_id FROM change_log WHERE seq > ? AND seq <= ?", [mark, upto]
        ).fetchall()
    )
