"""``GET /api/hourly-stats/constituency/{id}`` and ``/election/{id}``: hour by hour (UTC), as
``election-pipeline report hourly`` (the same function)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from sqlalchemy import Engine

from election_pipeline.api.deps import Cached, EngineDep
from election_pipeline.api.models import HourlyStatsOut, utc_text
from election_pipeline.api.params import Id, Limit, Skip, Time, time_range
from election_pipeline.api.routers.common import READ
from election_pipeline.cli.report import MAX_WINDOW, hourly_report

router = APIRouter(prefix="/api/hourly-stats", tags=["hourly stats"], responses=READ)

Window = Annotated[int, Query(ge=1, le=MAX_WINDOW, description="rolling window in hours")]


def _hours(
    engine: Engine,
    kind: str,
    scope_id: str,
    window: int,
    start_time: str | None,
    end_time: str | None,
    skip: int,
    limit: int,
) -> dict:
    start, end = time_range(start_time, end_time)
    report = utc_text(hourly_report(engine, scope_id, window, start, end, kind=kind))
    hours = report.pop("hours")
    more = len(hours) > skip + limit
    return report | {"items": hours[skip : skip + limit], "skip": skip, "limit": limit, "has_more": more}


@router.get("/constituency/{constituency_id}", response_model=HourlyStatsOut)
def constituency_hours(
    constituency_id: Id,
    engine: EngineDep,
    _etag: Cached,
    start_time: Time = None,
    end_time: Time = None,
    window: Window = 3,
    skip: Skip = 0,
    limit: Limit = 1000,
) -> dict:
    """Every UTC hour of the constituency from its first to its last with data, in
    ``[start_time, end_time)``: counts, cumulative participation, velocities per minute,
    the votes/bulletins ratio and its rolling average over ``window`` hours."""
    return _hours(engine, "constituency", constituency_id, window, start_time, end_time, skip, limit)


@router.get("/election/{election_id}", response_model=HourlyStatsOut)
def election_hours(
    election_id: Id,
    engine: EngineDep,
    _etag: Cached,
    start_time: Time = None,
    end_time: Time = None,
    window: Window = 3,
    skip: Skip = 0,
    limit: Limit = 1000,
) -> dict:
    """Every UTC hour of the election, each figure summed over its constituencies, in
    ``[start_time, end_time)``."""
    return _hours(engine, "election", election_id, window, start_time, end_time, skip, limit)
