"""Moving an election's rows from the shared DuckDB store into its own workspace's store
(``election-pipeline workspace add``; docs/architecture.md#several-elections-at-once).

What moves, for the election's constituencies: their transactions, rollback lines (and the
rollback lines of other contracts that cancel one of their transactions: copied, since they
cancel it there too), conflicting copies and the figures the retention job froze
(``retired_*``). What is copied, for every file that gave them a row: its ledger entry and job
(so the same file dropped again into the election's folder is known), its rejected lines and
its blocks. Everything arrives under one change-log number of the new store, with no reader
mark set, so the workspace's first run looks at every constituency and publishes whatever the
operational database still lacks (every write there is keyed: nothing is published twice).

The order makes a stop anywhere safe: (1) the rows are copied into the new store in one
DuckDB transaction (a new store left by an earlier stopped attempt is made again from
nothing); (2) the caller writes the workspace's marker, from which on the shared workspace no
longer counts the election's constituencies; (3) :func:`remove_moved` deletes them from the
shared store in one transaction and logs them as changed there. A stop between (2) and (3)
leaves rows in the shared store that no run reads; running the command again finishes (3).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from election_pipeline.analytics import change_log, raw_store
from election_pipeline.analytics.duck_frames import registered

log = logging.getLogger(__name__)

#: Tables whose rows belong to a constituency (``constituency_id``): moved.
BY_CONSTITUENCY = (
    "raw_transactions",
    "raw_rollbacks",
    "raw_conflicts",
    "retired_constituencies",
    "retired_hourly",
    "retired_totals",
)
#: Tables whose rows belong to a file (``file_hash``): copied for the files of the moved rows.
BY_FILE = ("file_ledger", "file_jobs", "raw_rejected", "raw_blocks")
_TARGET = "moving_target"


@dataclass
class MoveReport:
    """Rows copied into the new store and removed from the shared one, per table."""

    copied: dict[str, int] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)

    def lines(self) -> list[str]:
        out = [f"copied {n:,} rows of {t}" for t, n in self.copied.items() if n]
        out += [f"removed {n:,} rows of {t} from the shared store" for t, n in self.removed.items() if n]
        return out or ["nothing to move: the shared store holds no row of this election"]


def _columns(duck: duckdb.DuckDBPyConnection, database: str, table: str) -> list[str]:
    rows = duck.execute(
        "SELECT column_name FROM duckdb_columns() WHERE database_name = ? AND table_name = ? ORDER BY column_index",
        [database, table],
    ).fetchall()
    return [r[0] for r in rows]


def copy_election(shared: duckdb.DuckDBPyConnection, target: Path, constituency_ids: Iterable[str]) -> MoveReport:
    """Make the store ``target`` afresh holding the rows of ``constituency_ids`` found in the
    ``shared`` store (see the module docstring, step 1)."""
    report = MoveReport()
    ids = sorted(set(constituency_ids))
    for path in (target, target.with_name(target.name + ".wal")):
        path.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    with duckdb.connect(str(target)) as fresh:
        raw_store.ensure_schema(fresh)
        change_log.ensure_change_log(fresh)
    source = shared.execute("SELECT current_database()").fetchall()[0][0]
    shared.execute(f"ATTACH '{target}' AS {_TARGET}")
    try:
        with registered(shared, "_moving", pd.DataFrame({"constituency_id": ids})):
            shared.execute(
                "CREATE OR REPLACE TEMP TABLE _moving_tx AS SELECT tx_id, file_hash FROM raw_transactions "
                "WHERE constituency_id IN (SELECT constituency_id FROM _moving)"
            )
            shared.execute(
                "CREATE OR REPLACE TEMP TABLE _moving_files AS SELECT DISTINCT file_hash FROM ("
                "SELECT file_hash FROM _moving_tx UNION ALL "
                "SELECT file_hash FROM raw_rollbacks WHERE constituency_id IN (SELECT constituency_id FROM _moving) "
                "UNION ALL SELECT file_hash FROM raw_conflicts "
                "WHERE constituency_id IN (SELECT constituency_id FROM _moving))"
            )
            shared.execute("BEGIN TRANSACTION")
            try:
                seq = int(
                    shared.execute(
                        f"UPDATE {_TARGET}.change_log_state SET last_seq = last_seq + 1 RETURNING last_seq"
                    ).fetchall()[0][0]
                )
                for table in BY_CONSTITUENCY + BY_FILE:
                    cols = [c for c in _columns(shared, _TARGET, table) if c in _columns(shared, source, table)]
                    picked = ", ".join("? AS seq" if c == "seq" else c for c in cols)
                    params = [seq] if "seq" in cols else []
                    if table in BY_FILE:
                        key = "content_hash" if table == "file_ledger" else "file_hash"
                        where = f"{key} IN (SELECT file_hash FROM _moving_files)"
                    elif table == "raw_rollbacks":
                        where = (
                            "constituency_id IN (SELECT constituency_id FROM _moving) "
                            "OR tx_id IN (SELECT tx_id FROM _moving_tx)"
                        )
                    else:
                        where = "constituency_id IN (SELECT constituency_id FROM _moving)"
                    names = ", ".join(cols)
                    shared.execute(
                        f"INSERT INTO {_TARGET}.{table} ({names}) SELECT {picked} FROM {source}.{table} WHERE {where}",
                        params,
                    )
                    report.copied[table] = int(
                        shared.execute(f"SELECT count(*) FROM {_TARGET}.{table}").fetchall()[0][0]
                    )
                shared.execute("COMMIT")
            except BaseException:
                shared.execute("ROLLBACK")
                raise
    finally:
        shared.execute(f"DETACH {_TARGET}")
        shared.execute("DROP TABLE IF EXISTS _moving_tx")
        shared.execute("DROP TABLE IF EXISTS _moving_files")
    return report


def remove_moved(shared: duckdb.DuckDBPyConnection, constituency_ids: Iterable[str], election: str) -> MoveReport:
    """Delete the rows of ``constituency_ids`` from the shared store and log them as changed
    there (step 3 of the module docstring); the files' rows stay (they may hold other
    constituencies' lines too)."""
    report = MoveReport()
    ids = sorted(set(constituency_ids))
    if not ids:
        return report
    with registered(shared, "_moved", pd.DataFrame({"constituency_id": ids})), raw_store.transaction(shared):
        for table in BY_CONSTITUENCY:
            n = shared.execute(
                f"SELECT count(*) FROM {table} WHERE constituency_id IN (SELECT constituency_id FROM _moved)"
            ).fetchall()[0][0]
            shared.execute(f"DELETE FROM {table} WHERE constituency_id IN (SELECT constituency_id FROM _moved)")
            report.removed[table] = int(n)
        change_log.record_changes(shared, ids, f"moved to the workspace of election {election}")
    return report
