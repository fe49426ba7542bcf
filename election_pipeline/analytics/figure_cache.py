"""Stored figures per constituency, kept up to date from the change log.

The hourly figures and the whole-election totals of every constituency (the SQL of
:mod:`election_pipeline.analytics.counting_sql`) are kept in DuckDB tables
(``cached_hourly``, ``cached_totals``). :func:`refresh` recomputes them only for the
constituencies the change log (:mod:`election_pipeline.analytics.change_log`) names since
the last refresh, in one DuckDB transaction together with the refresh's mark: the tables
always hold exactly what a computation over the whole raw store would give, and a run
after a small file costs the same whatever the size of the history.

Two more tables are filled on demand by the constituency-metrics stage and emptied here
for every changed constituency: the candidate transactions of the voting-window rules
(``cached_late``, with the window they were selected for) and the evidence transaction
ids of findings (``cached_evidence``).

Without a mark (a new store, or after :func:`rebuild`) everything is recomputed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import duckdb
import pandas as pd

from election_pipeline.analytics import change_log, raw_store
from election_pipeline.analytics.counting_sql import LIVE, LIVE_HOURLY_SQL, LIVE_TOTALS_SQL

#: The reader name of the cache in ``change_marks``.
MARK = "figure_cache"

SCHEMA = """
-- The same columns as the frozen figures of retired constituencies (raw_store), with which
-- they are read together (UNION ALL).
CREATE TABLE IF NOT EXISTS cached_hourly AS SELECT * FROM retired_hourly LIMIT 0;
CREATE TABLE IF NOT EXISTS cached_totals AS SELECT * FROM retired_totals LIMIT 0;
CREATE TABLE IF NOT EXISTS cached_late (
    constituency_id VARCHAR NOT NULL,
    tx_id           VARCHAR NOT NULL,
    ts              TIMESTAMP NOT NULL,
    operation       VARCHAR NOT NULL,
    rejected        BOOLEAN NOT NULL
);
-- The window cached_late was selected for, per constituency (NULLs: no known window).
CREATE TABLE IF NOT EXISTS cached_late_windows (
    constituency_id VARCHAR NOT NULL,
    start_utc       TIMESTAMP,
    end_utc         TIMESTAMP
);
CREATE TABLE IF NOT EXISTS cached_evidence (
    constituency_id VARCHAR NOT NULL,
    kind            VARCHAR NOT NULL,
    window_start    TIMESTAMP,
    window_end      TIMESTAMP,
    tx_ids          VARCHAR[] NOT NULL
);
"""

_PER_CONSTITUENCY = ["cached_hourly", "cached_totals", "cached_late", "cached_late_windows", "cached_evidence"]

#: Standing transactions of the live (not retired) constituencies listed in ``_refreshing``.
_CHANGED_SOURCE = (
    "(SELECT * FROM standing_transactions WHERE constituency_id IN (SELECT constituency_id FROM _refreshing) "
    "AND constituency_id NOT IN (SELECT constituency_id FROM retired_constituencies))"
)


@dataclass
class Refresh:
    """What :func:`refresh` did: ``full`` (everything recomputed) or the ``changed`` ids."""

    full: bool
    changed: list[str] = field(default_factory=list)
    seq: int = 0


def ensure_cache(conn: duckdb.DuckDBPyConnection) -> None:
    conn.execute(SCHEMA)


def refresh(conn: duckdb.DuckDBPyConnection) -> Refresh:
    """Bring the cached figures up to date with the raw store (see the module's description)."""
    ensure_cache(conn)
    upto = change_log.catch_up(conn)
    mark = change_log.mark_of(conn, MARK)
    if mark is not None and mark == upto:
        return Refresh(full=False, seq=upto)
    with raw_store.transaction(conn):
        if mark is None or mark > upto:
            for table in _PER_CONSTITUENCY:
                conn.execute(f"DELETE FROM {table}")
            conn.execute(f"INSERT INTO cached_hourly {LIVE_HOURLY_SQL.format(source=LIVE)}")
            conn.execute(f"INSERT INTO cached_totals {LIVE_TOTALS_SQL.format(source=LIVE)}")
            result = Refresh(full=True, seq=upto)
        else:
            changed = change_log.changed_since(conn, mark, upto)
            conn.register("_changed_ids", pd.DataFrame({"constituency_id": pd.Series(changed, dtype=str)}))
            try:
                conn.execute("CREATE OR REPLACE TEMP TABLE _refreshing AS SELECT constituency_id FROM _changed_ids")
            finally:
                conn.unregister("_changed_ids")
            for table in _PER_CONSTITUENCY:
                conn.execute(f"DELETE FROM {table} WHERE constituency_id IN (SELECT constituency_id FROM _refreshing)")
            # The changed constituencies' standing transactions are read once.
            conn.execute(f"CREATE OR REPLACE TEMP TABLE _refresh_source AS SELECT * FROM {_CHANGED_SOURCE}")
            conn.execute(f"INSERT INTO cached_hourly {LIVE_HOURLY_SQL.format(source='_refresh_source')}")
            conn.execute(f"INSERT INTO cached_totals {LIVE_TOTALS_SQL.format(source='_refresh_source')}")
            conn.execute("DROP TABLE _refresh_source")
            conn.execute("DROP TABLE _refreshing")
            result = Refresh(full=False, changed=changed, seq=upto)
        change_log.set_mark(conn, MARK, upto)
    return result


def rebuild(conn: duckdb.DuckDBPyConnection) -> Refresh:
    """Recompute every cached figure from the raw store."""
    change_log.ensure_change_log(conn)
    change_log.forget_mark(conn, MARK)
    return refresh(conn)
