"""The hourly figures and whole-election totals per constituency, read from the stored figures
(:mod:`election_pipeline.analytics.figure_cache`) or, to verify those, computed from every raw
transaction with the counting rules (:mod:`election_pipeline.analytics.counting_sql`); and the
standing transactions behind an alert.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from election_pipeline.analytics.counting_sql import HOURLY_SQL, TOTALS_SQL
from election_pipeline.analytics.figure_cache import refresh


def hourly_figures(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per constituency and UTC hour that has at least one standing transaction.

    Read from the stored figures (:mod:`election_pipeline.analytics.figure_cache`), which are
    first brought up to date for the constituencies that changed; equal to
    :func:`hourly_figures_from_raw`."""
    refresh(conn)
    return _hourly_frame(
        conn.execute(
            "SELECT * FROM cached_hourly UNION ALL SELECT * FROM retired_hourly ORDER BY constituency_id, hour"
        ).df()
    )


def hourly_figures_from_raw(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """:func:`hourly_figures` computed from every raw transaction (what the stored figures
    must equal; used to verify them)."""
    return _hourly_frame(conn.execute(HOURLY_SQL).df())


def _hourly_frame(frame: pd.DataFrame) -> pd.DataFrame:
    for col in ("hour", "timestamp"):
        frame[col] = pd.to_datetime(frame[col])
    return frame


def constituency_totals(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Whole-election totals per constituency (``votes_cast`` = distinct voter keys), from the
    stored figures brought up to date first (see :func:`hourly_figures`)."""
    refresh(conn)
    return conn.execute(
        "SELECT * FROM cached_totals UNION ALL SELECT * FROM retired_totals ORDER BY constituency_id"
    ).df()


def constituency_totals_from_raw(conn: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """:func:`constituency_totals` computed from every raw transaction."""
    return conn.execute(TOTALS_SQL).df()


def evidence_tx_ids(
    conn: duckdb.DuckDBPyConnection,
    constituency_id: str,
    hour_start: pd.Timestamp | None,
    hour_end: pd.Timestamp | None,
    operation: str | None = None,
    limit: int = 20,
) -> list[str]:
    """Up to ``limit`` standing transaction ids behind an alert, oldest first."""
    clauses = ["constituency_id = ?"]
    params: list[object] = [constituency_id]
    if hour_start is not None:
        clauses.append("ts >= ?")
        params.append(pd.Timestamp(hour_start).to_pydatetime())
    if hour_end is not None:
        clauses.append("ts < ?")
        params.append(pd.Timestamp(hour_end).to_pydatetime())
    if operation is not None:
        clauses.append("operation = ?")
        params.append(operation)
    sql = f"SELECT tx_id FROM standing_transactions WHERE {' AND '.join(clauses)} ORDER BY ts, tx_id LIMIT {int(limit)}"
    return [r[0] for r in conn.execute(sql, params).fetchall()]
