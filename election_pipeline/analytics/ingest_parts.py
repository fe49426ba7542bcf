"""Parts of a large file, committed before the file itself.

A file of millions of lines (a block dump, a whole-voting archive) is written in parts of at
most ``PART_MAX_LINES`` lines (``stages/ingest_files.py``), each in a DuckDB transaction of
its own under a change-log number (``seq``) of its own, so that the memory of the ingest does
not grow with the file. The file's job and ledger entry are written with its last part; until
then each committed part is listed in ``ingest_parts``.

A part still listed when no ingest is running belongs to an ingest that was stopped (killed,
out of disk) before the file was recorded: its rows are removed (:func:`discard_unfinished`,
called by every reader of the change log before it reads, and by the ingest before it
starts), so that a file is counted whole or not at all, as one written in one transaction.
The file, left in the drop folder, is read again from its start on the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import duckdb
import pandas as pd

from election_pipeline.analytics.duck_frames import registered

log = logging.getLogger(__name__)

#: The raw tables a part writes rows to (each row carries the part's ``seq``); its rejected
#: lines are kept until the file's last transaction, with its job.
PART_TABLES = ("raw_transactions", "raw_rollbacks", "raw_conflicts", "raw_blocks")


@contextmanager
def _listed(conn: duckdb.DuckDBPyConnection, seqs: Iterable[int]) -> Iterator[bool]:
    """``_part_seqs``, a table of these seqs, while the block runs; False when there are none."""
    frame = pd.DataFrame({"seq": sorted({int(s) for s in seqs})})
    with registered(conn, "_part_seqs", frame):
        yield not frame.empty


def record(conn: duckdb.DuckDBPyConnection, seq: int, file_hash: str, filename: str, lines: int) -> None:
    """List the part written under ``seq`` (inside the part's transaction)."""
    conn.execute(
        "INSERT INTO ingest_parts VALUES (?, ?, ?, ?, ?)",
        [seq, file_hash, filename, lines, datetime.now(UTC).replace(tzinfo=None)],
    )


def any_listed(conn: duckdb.DuckDBPyConnection) -> bool:
    """Whether a part is listed (outside an ingest: one whose file was never recorded)."""
    return bool(conn.execute("SELECT count(*) FROM ingest_parts").fetchall()[0][0])


def finish(conn: duckdb.DuckDBPyConnection, seqs: Iterable[int]) -> None:
    """The file of these parts is recorded (inside the transaction that records it)."""
    with _listed(conn, seqs) as some:
        if some:
            conn.execute("DELETE FROM ingest_parts WHERE seq IN (SELECT seq FROM _part_seqs)")


def discard(conn: duckdb.DuckDBPyConnection, seqs: Iterable[int]) -> set[str]:
    """Remove every row written under these parts' ``seq`` and the parts themselves; returns
    the constituencies whose rows were removed (for the change log). Run it in a transaction."""
    touched: set[str] = set()
    with _listed(conn, seqs) as some:
        if not some:
            return touched
        for table in ("raw_transactions", "raw_rollbacks", "raw_conflicts"):
            sql = f"SELECT DISTINCT constituency_id FROM {table} WHERE seq IN (SELECT seq FROM _part_seqs)"
            touched |= {r[0] for r in conn.execute(sql).fetchall()}
        for table in (*PART_TABLES, "ingest_parts"):
            conn.execute(f"DELETE FROM {table} WHERE seq IN (SELECT seq FROM _part_seqs)")
    return touched


def discard_unfinished(conn: duckdb.DuckDBPyConnection) -> set[str]:
    """Remove the parts whose file was never recorded (an ingest stopped between parts) and
    their rows, saying so in the log; returns the constituencies whose rows were removed. Only
    while no ingest runs (the ingest holds DuckDB's single writer)."""
    parts = conn.execute("SELECT seq, filename, lines FROM ingest_parts ORDER BY seq").fetchall()
    if not parts:
        return set()
    touched = discard(conn, [int(seq) for seq, _, _ in parts])
    log.warning(
        "Removed %d part(s) of %s (%s lines) committed by an ingest that stopped before the file was recorded; "
        "nothing of the file is counted until it is read again, whole",
        len(parts),
        ", ".join(sorted({str(name) for _, name, _ in parts})),
        f"{sum(int(lines) for _, _, lines in parts):,}",
    )
    return touched
