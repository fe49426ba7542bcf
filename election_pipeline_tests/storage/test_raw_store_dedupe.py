"""The raw store keeps each transaction once, through the ingest's one write path
(``stages/ingest_files.py``), without an in-memory index of every id."""

from pathlib import Path

import duckdb

from election_pipeline.analytics import raw_store
from election_pipeline.stages.ingest_files import DropFolders, ingest_folder
from election_pipeline_tests.builders import INGEST_LIMITS
from election_pipeline_tests.stages.conftest import C1, at, file_name, vote


def _folders(root: Path) -> DropFolders:
    return DropFolders.of(root / "input", root / "processed", root / "quarantine")


def _drop(folders: DropFolders, name: str, tx_ids: list[str]) -> Path:
    folders.input_dir.mkdir(parents=True, exist_ok=True)
    path = folders.input_dir / name
    lines = [vote(tx_id, at(8, 1 + i % 50), f"Key{tx_id}") for i, tx_id in enumerate(tx_ids)]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def _ingest(duck: duckdb.DuckDBPyConnection, folders: DropFolders) -> dict[str, int]:
    """New transactions per file name."""
    files = sorted(folders.input_dir.iterdir())
    summary = ingest_folder(files, duck=duck, folders=folders, **INGEST_LIMITS)
    return {o.filename: o.new_transactions for o in summary.outcomes}


def test_ids_already_stored_or_repeated_in_the_batch_are_inserted_once(tmp_path):
    folders = _folders(tmp_path)
    with raw_store.open_warehouse(tmp_path / "w.duckdb") as duck:
        _drop(folders, file_name(C1, 8), ["a", "b"])
        assert _ingest(duck, folders) == {file_name(C1, 8): 2}
        # one group of three files: b and a were stored; c twice (first in the 09 file), d once
        _drop(folders, file_name(C1, 9), ["b", "c"])
        _drop(folders, file_name(C1, 10), ["c", "d", "a"])
        assert _ingest(duck, folders) == {file_name(C1, 9): 1, file_name(C1, 10): 1}
        rows = duck.execute("SELECT tx_id, source FROM raw_transactions ORDER BY 1").fetchall()
    assert rows == [("a", file_name(C1, 8)), ("b", file_name(C1, 8)), ("c", file_name(C1, 9)), ("d", file_name(C1, 10))]


def test_memory_does_not_grow_with_the_number_of_stored_ids(tmp_path):
    """Two million stored ids under a 64 MB memory limit: a primary-key index on tx_id
    (which DuckDB keeps in memory) would not fit; the digest look-up does."""
    folders = _folders(tmp_path)
    with raw_store.open_warehouse(tmp_path / "w.duckdb", memory_limit="64MB") as duck:
        duck.execute(
            "INSERT INTO raw_transactions (tx_id, constituency_id, tx_type, version, ts, operation, sender, "
            "rejected, bulletins, voters_added, source, line_number, file_hash, tx_key) "
            "SELECT 'tx' || md5(i::VARCHAR), 'C' || (i % 50), 104, 4, TIMESTAMP '2024-09-06 08:00:00', 'vote', NULL, "
            "false, 0, NULL, 'f.csv', i, 'h0', md5_number('tx' || md5(i::VARCHAR)) FROM range(2000000) r(i)"
        )
        known = [
            r[0]
            for r in duck.execute(
                "SELECT 'tx' || md5(i::VARCHAR) FROM range(2000000) r(i) WHERE i IN (7, 1999999)"
            ).fetchall()
        ]
        _drop(folders, file_name(C1, 8), known + [f"new-{i}" for i in range(2000)])
        assert _ingest(duck, folders) == {file_name(C1, 8): 2000}
        stored = raw_store.scalar(duck, "SELECT count(*) FROM raw_transactions")
    assert stored == 2_002_000


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
        "INSERT INTO raw_transactions VALUES ('a', ?, 104, 4, TIMESTAMP '2024-09-06 08:30:00', 'vote', "
        "'k', false, 0, NULL, 'f.csv', 1, 'h0')",
        [C1],
    )
    conn.close()
    folders = _folders(tmp_path)
    with raw_store.open_warehouse(path) as duck:
        _drop(folders, file_name(C1, 8), ["a", "b"])
        assert _ingest(duck, folders) == {file_name(C1, 8): 1}
        keys = duck.execute("SELECT tx_id, tx_key = md5_number(tx_id) FROM raw_transactions ORDER BY 1").fetchall()
    assert keys == [("a", True), ("b", True)]
