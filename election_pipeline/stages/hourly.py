"""Hourly stage: DuckDB aggregation -> the operational ``hourly_stats`` table.

The figures of every constituency and UTC hour are read from the raw store's stored
figures (:mod:`election_pipeline.analytics.figure_cache`: only the constituencies that
changed since the last run are recomputed from their transactions), compared with what
the operational database holds, and only the differences are written: new hours are
inserted, changed hours updated, and hours left with no standing transaction (all
rolled back) deleted. Running it twice writes nothing the second time.

With election workspaces (:mod:`election_pipeline.workspaces`), a run reads and writes the
hours of its scope's constituencies only: another workspace's hours are never compared, so
never deleted.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb
import pandas as pd
from sqlalchemy import Engine, delete, select, tuple_

from election_pipeline.analytics.aggregation import constituency_totals, hourly_figures
from election_pipeline.db.bulk import chunks, insert_ignore, update_by_key
from election_pipeline.db.models import Constituency, HourlyStats, utcnow
from election_pipeline.db.models.base import new_uuid
from election_pipeline.vocabulary import RegisteredVotersSource
from election_pipeline.workspaces import EVERYTHING, Scope, constituency_elections

FIGURES = [
    "election_id",
    "timestamp",
    "bulletins_issued",
    "votes_cast",
    "revote_count",
    "rejected_count",
    "transaction_count",
    "cumulative_bulletins",
    "cumulative_votes",
    "bulletin_velocity",
    "vote_velocity",
    "participation_rate",
]


@dataclass
class HourlySummary:
    rows: int
    inserted: int
    updated: int
    unchanged: int
    deleted: int
    frame: pd.DataFrame


def participation(votes: float, registered: float) -> float:
    """votes / registered x 100, rounded to 4 decimals; 0 when nobody is registered."""
    if not registered or registered <= 0:
        return 0.0
    return round(votes / registered * 100.0, 4)


def registered_voters(constituencies: pd.DataFrame, totals: pd.DataFrame) -> pd.DataFrame:
    """Registered voters per constituency: the reference figure when it gives one, else the
    voters the chain registered with ``addVotersList``, else 0 (docs/input-format.md#counting-rules). A contract
    that no reference file knows has none, so its participation is 0 (docs/input-format.md#reference-data).

    Returns columns ``id``, ``registered``, ``source``.
    """
    chain = (
        dict(zip(totals["constituency_id"], totals["voters_registered_on_chain"], strict=False)) if len(totals) else {}
    )
    rows = []
    for rec in constituencies.itertuples(index=False):
        if rec.registered_voters_source == RegisteredVotersSource.REFERENCE and rec.registered_voters > 0:
            rows.append((rec.id, int(rec.registered_voters), RegisteredVotersSource.REFERENCE))
        elif rec.in_reference and chain.get(rec.id, 0) > 0:
            rows.append((rec.id, int(chain[rec.id]), RegisteredVotersSource.ADD_VOTERS_LIST))
        else:
            rows.append((rec.id, 0, RegisteredVotersSource.NONE))
    return pd.DataFrame(rows, columns=["id", "registered", "source"])


def load_constituencies(engine: Engine, scope: Scope = EVERYTHING) -> pd.DataFrame:
    """The operational database's constituencies of ``scope``."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                Constituency.id,
                Constituency.election_id,
                Constituency.registered_voters,
                Constituency.registered_voters_source,
                Constituency.region,
                Constituency.in_reference,
                Constituency.name,
            ).where(scope.condition())
        ).all()
    return pd.DataFrame(
        rows,
        columns=[
            "id",
            "election_id",
            "registered_voters",
            "registered_voters_source",
            "region",
            "in_reference",
            "name",
        ],
    )


def in_scope(frame: pd.DataFrame, engine: Engine, scope: Scope, column: str = "constituency_id") -> pd.DataFrame:
    """The rows of ``frame`` whose constituency is in ``scope`` (one the operational database
    does not know counts as one of no known election, the shared workspace's)."""
    if scope.is_everything or frame.empty:
        return frame
    known = constituency_elections(engine)
    keep = [scope.holds(*known.get(str(c), (None, None))) for c in frame[column]]
    return frame[keep].reset_index(drop=True)


def compute_hourly(duck: duckdb.DuckDBPyConnection, engine: Engine, scope: Scope = EVERYTHING) -> pd.DataFrame:
    """The hourly figures (of ``scope``'s constituencies) with election, velocities and
    cumulative participation attached."""
    frame = in_scope(hourly_figures(duck), engine, scope)
    constituencies = load_constituencies(engine, scope)
    registered = registered_voters(constituencies, constituency_totals(duck))
    info = constituencies[["id", "election_id"]].merge(registered, on="id", how="left")
    frame = frame.merge(info, left_on="constituency_id", right_on="id", how="left").drop(columns=["id"])
    frame["registered"] = frame["registered"].fillna(0).astype("int64")
    frame["bulletin_velocity"] = (frame["bulletins_issued"] / 60.0).round(4)
    frame["vote_velocity"] = (frame["votes_cast"] / 60.0).round(4)
    frame["participation_rate"] = [
        participation(v, r) for v, r in zip(frame["cumulative_votes"], frame["registered"], strict=False)
    ]
    return frame


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.to_pydatetime()
    if hasattr(value, "item"):
        return value.item()
    return value


def _changed_rows(new: pd.DataFrame, old: pd.DataFrame) -> pd.Series:
    """Per row of two aligned frames: does any figure differ (floats within 1e-9)?"""
    differs = pd.Series(False, index=new.index)
    for col in FIGURES:
        a, b = new[col], old[col]
        missing = a.isna() != b.isna()
        if pd.api.types.is_float_dtype(a) or pd.api.types.is_float_dtype(b):
            values = (pd.to_numeric(a, errors="coerce") - pd.to_numeric(b, errors="coerce")).abs() > 1e-9
        else:
            values = (a != b) & a.notna() & b.notna()
        differs |= missing | values
    return differs


def _published(engine: Engine, scope: Scope) -> pd.DataFrame:
    cols = [HourlyStats.constituency_id, HourlyStats.hour] + [HourlyStats.__table__.c[c] for c in FIGURES]
    with engine.connect() as conn:
        rows = conn.execute(select(*cols).where(scope.owns(HourlyStats.constituency_id))).all()
    frame = pd.DataFrame(rows, columns=["constituency_id", "hour"] + FIGURES)
    for col in ("hour", "timestamp"):
        frame[col] = pd.to_datetime(frame[col])
    return frame


def publish_hourly_stats(duck: duckdb.DuckDBPyConnection, engine: Engine, scope: Scope = EVERYTHING) -> HourlySummary:
    """Bring ``hourly_stats`` of ``scope``'s constituencies in line with the raw store; returns
    what changed.

    The figures come from the stored figures of the raw store (only the constituencies that
    changed are recomputed there) and are compared, all at once, with the published rows."""
    frame = compute_hourly(duck, engine, scope)
    wanted = frame[["constituency_id", "hour"] + FIGURES].reset_index(drop=True)
    existing = _published(engine, scope)
    both = wanted.assign(_row=range(len(wanted))).merge(
        existing, on=["constituency_id", "hour"], how="outer", suffixes=("", "_old"), indicator=True
    )
    kept = both[both["_merge"] == "both"]
    old = kept[[f"{c}_old" for c in FIGURES]].set_axis(FIGURES, axis=1)
    changed_rows = kept.loc[_changed_rows(kept[FIGURES], old), "_row"] if len(kept) else []
    new_rows = both.loc[both["_merge"] == "left_only", "_row"]
    stale = [
        (c, _clean(h))
        for c, h in both.loc[both["_merge"] == "right_only", ["constituency_id", "hour"]].itertuples(index=False)
    ]

    now = utcnow()
    inserts = [
        {
            "id": new_uuid(),
            "constituency_id": rec["constituency_id"],
            "hour": _clean(rec["hour"]),
            "anomaly_count": 0,
            "created_at": now,
            "updated_at": now,
            **{c: _clean(rec[c]) for c in FIGURES},
        }
        for rec in wanted.iloc[new_rows.astype(int).tolist()].to_dict("records")
    ]
    updates = [
        {
            "constituency_id": rec["constituency_id"],
            "hour": _clean(rec["hour"]),
            "updated_at": now,
            **{c: _clean(rec[c]) for c in FIGURES},
        }
        for rec in wanted.iloc[[int(r) for r in changed_rows]].to_dict("records")
    ]

    with engine.begin() as conn:
        insert_ignore(conn, HourlyStats.__table__, inserts, ["constituency_id", "hour"])
        update_by_key(conn, HourlyStats.__table__, updates, ["constituency_id", "hour"], FIGURES + ["updated_at"])
        for part in chunks(stale, 500):
            conn.execute(
                delete(HourlyStats.__table__).where(
                    tuple_(HourlyStats.constituency_id, HourlyStats.hour).in_(list(part))
                )
            )
    return HourlySummary(
        rows=len(wanted),
        inserted=len(inserts),
        updated=len(updates),
        unchanged=len(wanted) - len(inserts) - len(updates),
        deleted=len(stale),
        frame=frame,
    )
