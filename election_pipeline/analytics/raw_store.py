"""The DuckDB raw store: every parsed transaction once, and every rollback line.

Transactions are keyed by ``tx_id`` (the export's ``nestedTxId``), so the same transaction
arriving in two files, or a file processed twice after a crash, is stored once. The key is
enforced by the ingest's insert (``stages/ingest_files.py``), not by a DuckDB primary key:
each group of files looks up which of its ids are stored already (through ``tx_key``, a 128-bit digest of ``tx_id`` that is cheap to
scan, then comparing the ids themselves) and inserts only the others. A primary key would
keep an in-memory index of every id, which outgrows a 1 GB memory limit between 5 and 10
million transactions; this way memory does not grow with the history. A rollback
line is kept in ``raw_rollbacks``; a transaction with a rollback "does not stand" and is
left out of every figure, whichever order the two lines arrived in.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pandas as pd

from election_pipeline.analytics.duck_frames import registered

SCHEMA = """
CREATE TABLE IF NOT EXISTS raw_transactions (
    tx_id           VARCHAR NOT NULL,
    constituency_id VARCHAR NOT NULL,
    tx_type         INTEGER NOT NULL,
    version         INTEGER,
    ts              TIMESTAMP NOT NULL,
    operation       VARCHAR NOT NULL,
    sender          VARCHAR,
    rejected        BOOLEAN NOT NULL,
    bulletins       INTEGER NOT NULL,
    voters_added    INTEGER,
    source          VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    file_hash       VARCHAR NOT NULL,
    tx_key          UHUGEINT NOT NULL,  -- md5_number(tx_id): where to look for a stored id
    seq             BIGINT,             -- the change-log number of the ingest that stored it
    fee             VARCHAR,
    fee_asset       VARCHAR,
    fail_key        VARCHAR,            -- the diff key that marks it rejected (FAIL...), if any
    block_height    BIGINT              -- the block it came in, when read from a block dump
);
-- Every block line read from a block dump (docs/input-format.md#block-dump): what the
-- completeness check (block_heights_contiguous) looks at.
CREATE TABLE IF NOT EXISTS raw_blocks (
    height          BIGINT NOT NULL,
    digest          VARCHAR NOT NULL,   -- of the block line: two digests at one height are two blocks
    transactions    INTEGER NOT NULL,   -- contract transactions it held
    skipped         INTEGER NOT NULL,   -- other transactions, skipped
    source          VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    file_hash       VARCHAR NOT NULL,
    seq             BIGINT
);
-- The parts of a large file committed before the file itself (stages/ingest_files.py): a part
-- is listed here until its file is recorded; a part still listed when no ingest runs belongs
-- to an ingest that was stopped, and its rows are removed (analytics/ingest_parts.py).
CREATE TABLE IF NOT EXISTS ingest_parts (
    seq         BIGINT PRIMARY KEY,
    file_hash   VARCHAR NOT NULL,
    filename    VARCHAR NOT NULL,
    lines       BIGINT NOT NULL,     -- lines (block-dump transactions) the part held
    recorded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS raw_rollbacks (
    tx_id           VARCHAR PRIMARY KEY,
    constituency_id VARCHAR NOT NULL,
    ts              TIMESTAMP NOT NULL,
    source          VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    file_hash       VARCHAR NOT NULL,
    seq             BIGINT
);
-- Copies of a transaction id whose content differs from the stored copy (tampered or
-- inconsistent exports): no copy of such an id stands, and each copy here is evidence.
CREATE TABLE IF NOT EXISTS raw_conflicts (
    tx_id           VARCHAR NOT NULL,
    constituency_id VARCHAR NOT NULL,
    tx_type         INTEGER NOT NULL,
    version         INTEGER,
    ts              TIMESTAMP NOT NULL,
    operation       VARCHAR NOT NULL,
    sender          VARCHAR,
    rejected        BOOLEAN NOT NULL,
    bulletins       INTEGER NOT NULL,
    voters_added    INTEGER,
    source          VARCHAR NOT NULL,
    line_number     INTEGER NOT NULL,
    file_hash       VARCHAR NOT NULL,
    seq             BIGINT,
    PRIMARY KEY (tx_id, file_hash, source, line_number)
);
-- Lines that could not be counted, with the reason (published to rejected_rows).
CREATE TABLE IF NOT EXISTS raw_rejected (
    id          VARCHAR NOT NULL,
    file_hash   VARCHAR NOT NULL,
    filename    VARCHAR NOT NULL,
    source      VARCHAR NOT NULL,
    line_number INTEGER NOT NULL,
    reason      VARCHAR NOT NULL,
    raw_line    VARCHAR NOT NULL,   -- the first 65,536 characters of the line
    line_length BIGINT NOT NULL,    -- its length in bytes
    line_sha256 VARCHAR NOT NULL,
    job_id      VARCHAR NOT NULL,
    created_at  TIMESTAMP NOT NULL,
    seq         BIGINT NOT NULL,
    PRIMARY KEY (file_hash, source, line_number)
);
-- What happened to every input file (published to file_processing_jobs).
CREATE TABLE IF NOT EXISTS file_jobs (
    id                     VARCHAR PRIMARY KEY,
    filename               VARCHAR NOT NULL,
    status                 VARCHAR NOT NULL,
    details                VARCHAR,
    transactions_processed BIGINT NOT NULL,
    rejected_lines         BIGINT NOT NULL,
    file_hash              VARCHAR,
    stored_path            VARCHAR,
    started_at             TIMESTAMP NOT NULL,
    completed_at           TIMESTAMP,
    seq                    BIGINT NOT NULL,
    moved                  BOOLEAN            -- the file reached stored_path (set after the move)
);
-- The file ledger: every file content counted or refused (published to file_ledger).
CREATE TABLE IF NOT EXISTS file_ledger (
    content_hash VARCHAR PRIMARY KEY,
    filename     VARCHAR NOT NULL,
    status       VARCHAR NOT NULL,
    job_id       VARCHAR NOT NULL,
    size_bytes   BIGINT NOT NULL,
    stored_path  VARCHAR,
    recorded_at  TIMESTAMP NOT NULL,
    seq          BIGINT NOT NULL
);
-- Entries of the drop folder that are not read (folders, FIFOs ...), each reported once.
CREATE TABLE IF NOT EXISTS noticed_entries (
    name       VARCHAR PRIMARY KEY,
    reason     VARCHAR NOT NULL,
    noticed_at TIMESTAMP NOT NULL
);
-- One row per file content whose rows are committed here, with how many of its transactions
-- were new: a re-run after a crash between the two stores' commits reports the same figure.
CREATE TABLE IF NOT EXISTS raw_files (
    file_hash        VARCHAR PRIMARY KEY,
    new_transactions BIGINT NOT NULL
);
CREATE OR REPLACE VIEW standing_transactions AS
    SELECT t.* FROM raw_transactions t
    WHERE NOT EXISTS (SELECT 1 FROM raw_rollbacks r WHERE r.tx_id = t.tx_id)
      AND NOT EXISTS (SELECT 1 FROM raw_conflicts c WHERE c.tx_id = t.tx_id);
-- Retention (stages/retention.py): a constituency whose transactions were removed keeps its
-- published figures here, so the hourly table and the constituency totals do not change.
CREATE TABLE IF NOT EXISTS retired_constituencies (
    constituency_id      VARCHAR PRIMARY KEY,
    retired_at           TIMESTAMP NOT NULL,
    transactions_removed BIGINT NOT NULL
);
CREATE TABLE IF NOT EXISTS retired_hourly (
    constituency_id      VARCHAR NOT NULL,
    hour                 TIMESTAMP NOT NULL,
    bulletins_issued     BIGINT NOT NULL,
    votes_cast           BIGINT NOT NULL,
    revote_count         BIGINT NOT NULL,
    rejected_count       BIGINT NOT NULL,
    transaction_count    BIGINT NOT NULL,
    cumulative_bulletins BIGINT NOT NULL,
    cumulative_votes     BIGINT NOT NULL,
    timestamp            TIMESTAMP,
    PRIMARY KEY (constituency_id, hour)
);
CREATE TABLE IF NOT EXISTS retired_totals (
    constituency_id            VARCHAR PRIMARY KEY,
    transaction_count          BIGINT NOT NULL,
    bulletins_issued           BIGINT NOT NULL,
    votes_cast                 BIGINT NOT NULL,
    accepted_votes             BIGINT NOT NULL,
    rejected_count             BIGINT NOT NULL,
    voters_registered_on_chain BIGINT NOT NULL,
    voting_started             TIMESTAMP,
    voting_finished            TIMESTAMP,
    first_ts                   TIMESTAMP,
    last_ts                    TIMESTAMP
);
"""


@contextmanager
def open_warehouse(
    path: str | Path, *, read_only: bool = False, memory_limit: str | None = None
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the DuckDB file (creating it and its tables when writing) and close it afterwards.
    ``memory_limit`` (e.g. ``"1GB"``) caps DuckDB's buffers; larger queries spill to disk."""
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {"memory_limit": memory_limit} if memory_limit else {}
    conn = duckdb.connect(str(path), read_only=read_only, config=config)
    try:
        if not read_only:
            ensure_schema(conn)
        yield conn
    finally:
        conn.close()


@contextmanager
def transaction(conn: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """A DuckDB transaction of our own, committed at the end and rolled back on any error, or
    the caller's when one is open already (the caller then commits)."""
    try:
        conn.begin()
    except duckdb.TransactionException:  # inside the caller's transaction: it commits
        yield
        return
    try:
        yield
        conn.commit()
    except BaseException:
        with suppress(duckdb.Error):  # the error that stopped it is the one that propagates
            conn.rollback()
        raise


def scalar(conn: duckdb.DuckDBPyConnection, sql: str, params: list | None = None):
    """The single value of a query (fetching the whole result, as DuckDB 2 requires)."""
    return conn.execute(sql, params or []).fetchall()[0][0]


def ensure_schema(conn: duckdb.DuckDBPyConnection) -> None:
    """Create the tables, and bring a store written by an earlier version up to date."""
    conn.execute(SCHEMA)
    columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_transactions'"
        ).fetchall()
    }
    if "tx_key" not in columns:  # stores created with a primary key on tx_id instead
        conn.execute("ALTER TABLE raw_transactions ADD COLUMN tx_key UHUGEINT")
        conn.execute("UPDATE raw_transactions SET tx_key = md5_number(tx_id)")
    for name in ("seq BIGINT", "fee VARCHAR", "fee_asset VARCHAR", "fail_key VARCHAR", "block_height BIGINT"):
        if name.split()[0] not in columns:  # stores written before the ingest kept these
            conn.execute(f"ALTER TABLE raw_transactions ADD COLUMN {name}")
    rollback_columns = {
        r[0]
        for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = 'raw_rollbacks'"
        ).fetchall()
    }
    if "seq" not in rollback_columns:
        conn.execute("ALTER TABLE raw_rollbacks ADD COLUMN seq BIGINT")
    # Jobs written before the column existed count as moved (NULL).
    conn.execute("ALTER TABLE file_jobs ADD COLUMN IF NOT EXISTS moved BOOLEAN")
    from election_pipeline.analytics import change_log

    change_log.ensure_change_log(conn)


def stored_with_ids(conn: duckdb.DuckDBPyConnection, tx_ids: Iterable[str], *columns: str) -> list[tuple]:
    """``(tx_id, *columns)`` of the stored transactions whose id is one of ``tx_ids``. The
    ``tx_key`` digest narrows the scan to a few candidate rows without reading every stored
    id; comparing the ids themselves makes the answer exact."""
    wanted = set(tx_ids)
    if not wanted:
        return []
    with registered(conn, "_wanted_ids", pd.DataFrame({"tx_id": list(wanted)})):
        candidates = conn.execute(
            f"SELECT {', '.join(('tx_id', *columns))} FROM raw_transactions "
            "WHERE tx_key IN (SELECT md5_number(tx_id) FROM _wanted_ids)"
        ).fetchall()
    return [row for row in candidates if row[0] in wanted]


def retired_constituency_ids(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Constituencies whose transactions the retention job removed (their figures are kept)."""
    return {r[0] for r in conn.execute("SELECT constituency_id FROM retired_constituencies").fetchall()}
