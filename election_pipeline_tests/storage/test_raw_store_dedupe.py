"""The raw store keeps each transaction once without an in-memory index of every id."""

from datetime import datetime

import duckdb

from election_pipeline.analytics import raw_store

WHEN = datetime(2024, 9, 6, 8, 30)


def _row(tx_id: str, file_hash: str, constituency: str = "C1") -> tuple:
    return (tx_id, constituency, 104, 4, WHEN, "vote", f"key-{tx_id}", False, 0, None, "f.csv", 1, file_hash)


def _md5(text: str) -> str:
    """DuckDB's ``md5`` of ``text`` (a query's relation: never None for a SELECT)."""
    relation = duckdb.sql(f"SELECT md5('{text}')")
    assert relation is not None
    return relation.fetchall()[0][0]


def test_ids_already_stored_or_repeated_in_the_batch_are_inserted_once(tmp_path):
    with raw_store.open_warehouse(tmp_path / "w.duckdb") as duck:
        assert raw_store.insert_transactions(duck, [_row("a", "h1"), _row("b", "h1")]) == 2
        counts = raw_store.insert_transactions_by_file(
            duck, [_row("b", "h2"), _row("c", "h2"), _row("c", "h3"), _row("d", "h3"), _row("a", "h3")]
        )
        assert counts == {"h2": 1, "h3": 1}  # c first seen in h2, d in h3; a and b were stored
        rows = duck.execute("SELECT tx_id, file_hash FROM raw_transactions ORDER BY 1").fetchall()
    assert rows == [("a", "h1"), ("b", "h1"), ("c", "h2"), ("d", "h3")]


def test_memory_does_not_grow_with_the_number_of_stored_ids(tmp_path):
    """Two million stored ids under a 64 MB memory limit: a primary-key index on tx_id
    (which DuckDB keeps in memory) would not fit; the digest look-up does."""
    path = tmp_path / "w.duckdb"
    with raw_store.open_warehouse(path, memory_limit="64MB") as duck:
        duck.execute(
            "INSERT INTO raw_transactions (tx_id, constituency_id, tx_type, version, ts, operation, sender, "
            "rejected, bulletins, voters_added, source, line_number, file_hash, tx_key) SELECT 'tx' || md5(i::VARCHAR), 'C' || (i % 50), 104, 4, "
            "TIMESTAMP '2024-09-06 08:00:00', 'vote', NULL, false, 0, NULL, 'f.csv', i, 'h0', "
            "md5_number('tx' || md5(i::VARCHAR)) FROM range(2000000) r(i)"
        )
        batch = [_row("tx" + _md5(str(i)), "h1") for i in (7, 1999999)]
        batch += [_row(f"new-{i}", "h1") for i in range(20000)]
        assert raw_store.insert_transactions(duck, batch) == 20000
        stored = raw_store.scalar(duck, "SELECT count(*) FROM raw_transactions")
    assert stored == 2_020_000


def test_a_store_written_with_a_primary_key_is_upgraded(tmp_path):
    """Stores created before the digest column existed get it on open, and keep deduplicating."""
    path = tmp_path / "old.duckdb"
    # raw_transactions as the first version of the store created it: tx_id as primary key, no digest.
    old_schema = """
    CREATE TABLE raw_transactions (
        tx_id VARCHAR PRIMARY KEY, constituency_id VARCHAR NOT NULL, tx_type INTEGER NOT NULL, version INTEGER,
        ts TIMESTAMP NOT NULL, operation VARCHAR NOT NULL, sender VARCHAR, rejected BOOLEAN NOT NULL,
        bulletins INTEGER NOT NULL, voters_added INTEGER, source VARCHAR NOT NULL, line_number INTEGER NOT NULL,
        file_hash VARCHAR NOT NULL
    );
    """
    conn = duckdb.connect(str(path))
    conn.execute(old_schema)
    conn.execute(
        "INSERT INTO raw_transactions VALUES ('a', 'C1', 104, 4, TIMESTAMP '2024-09-06 08:30:00', 'vote', "
        "'k', false, 0, NULL, 'f.csv', 1, 'h0')"
    )
    conn.close()
    with raw_store.open_warehouse(path) as duck:
        assert raw_store.insert_transactions(duck, [_row("a", "h1"), _row("b", "h1")]) == 1
        keys = duck.execute("SELECT tx_id, tx_key = md5_number(tx_id) FROM raw_transactions ORDER BY 1").fetchall()
    assert keys == [("a", True), ("b", True)]
