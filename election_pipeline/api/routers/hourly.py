"""``GET /api/hourly-stats/constituency/{id}`` and ``/election/{id}``: hour by hour (UTC), as
``election-pipeline report hourly`` (the same function)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response
from sqlalchemy import Engine

from election_pipeline.api.deps import Cached, EngineDep, cached_json
from election_pipeline.api.models import HourlyStatsOut, utc_text
from election_pipeline.api.params import Id, LongPageQuery, Paging, Time, time_range
from election_pipeline.api.routers.common import READ
from election_pipeline.cli.report import MAX_WINDOW, hourly_report

router = APIRouter(prefix="/api/hourly-stats", tags=["hourly stats"], responses=READ)

Window = Annotated[int, Query(ge=1, le=MAX_WINDOW, description="rolling window in hours")]


@dataclass(frozen=True)
class HourQuery:
    """What an hourly route was asked for: the time range, the rolling window and the page."""

    start_time: str | None
    end_time: str | None
    window: int
    paging: Paging

    def report(self, engine: Engine, kind: str, scope_id: str) -> dict:
        """The hourly report of the constituency or election ``scope_id``, its hours paginated."""
        start, end = time_range(self.start_time, self.end_time)
        report = utc_text(hourly_report(engine, scope_id, self.window, start, end, kind=kind))
        return report | self.paging.cut(report.pop("hours"))


def _hour_query(paging: LongPageQuery, start_time: Time = None, end_time: Time = None, window: Window = 3) -> HourQuery:
    return HourQuery(start_time, end_time, window, paging)


Hours = Annotated[HourQuery, Depends(_hour_query)]


@router.get("/constituency/{constituency_id}", response_model=HourlyStatsOut)
def constituency_hours(
    request: Request, constituency_id: Id, engine: EngineDep, etag: Cached, query: Hours
) -> Response:
    """Every UTC hour of the constituency from its first to its last with data, in
    ``[start_time, end_time)``: counts, cumulative participation, velocities per minute,
    the votes/bulletins ratio and its rolling average over ``window`` hours."""
    return cached_json(request, etag, HourlyStatsOut, lambda: query.report(engine, "constituency", constituency_id))


@router.get("/election/{election_id}", response_model=HourlyStatsOut)
def election_hours(request: Request, election_id: Id, engine: EngineDep, etag: Cached, query: Hours) -> Response:
    """Every UTC hour of the election, each figure summed over its constituencies, in
    ``[start_time, end_time)``."""
    return cached_json(request, etag, HourlyStatsOut, lambda: query.report(engine, "election", election_id))
