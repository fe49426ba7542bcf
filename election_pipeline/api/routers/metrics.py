"""``GET /api/metrics/...``: a constituency's metrics (whole election and by period), an
election's stored metrics and its constituencies, and the dashboard: the functions of
``election-pipeline report`` (the same answers)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response

from election_pipeline.analytics.period_metrics import election_scope
from election_pipeline.api.deps import Cached, EngineDep, cached_json
from election_pipeline.api.models import (
    ConstituencyMetricsOut,
    DashboardDetailedOut,
    DashboardSummaryOut,
    ElectionMetricsOut,
    Page,
    PeriodMetricsOut,
    utc_text,
)
from election_pipeline.api.params import Id, PageQuery, Time, time_range
from election_pipeline.api.routers.common import READ
from election_pipeline.cli.report import constituency_report, constituency_rows
from election_pipeline.stages.election_metrics import dashboard_summary, stored_election_metrics

router = APIRouter(prefix="/api/metrics", tags=["metrics"], responses=READ)


@router.get("/constituency/{constituency_id}", response_model=ConstituencyMetricsOut)
def constituency_metrics(request: Request, constituency_id: Id, engine: EngineDep, etag: Cached) -> Response:
    """The constituency's totals (registered voters, bulletins, voters, revotes, rejected,
    participation, issued-but-not-voted, anomaly score, open alerts) and its activity by
    local hour of day over the whole election."""

    def build() -> dict:
        report = utc_text(constituency_report(engine, constituency_id))
        return {"constituency": report["constituency"], "hourly_activity_pattern": report["hourly_activity_pattern"]}

    return cached_json(request, etag, ConstituencyMetricsOut, build)


@router.get("/constituency/{constituency_id}/time-period", response_model=PeriodMetricsOut)
def constituency_metrics_by_period(
    request: Request,
    constituency_id: Id,
    engine: EngineDep,
    etag: Cached,
    period: Annotated[Literal["hour", "day", "week", "month"], Query()] = "day",
    start_time: Time = None,
    end_time: Time = None,
) -> Response:
    """The constituency's figures per hour, day, week (from Monday) or month of its
    election's local calendar, over ``[start_time, end_time)``."""
    start, end = time_range(start_time, end_time)

    def build() -> dict:
        report = utc_text(constituency_report(engine, constituency_id, period, start, end))
        return {
            "constituency_id": report["constituency"]["id"],
            "timezone": report["constituency"]["timezone"],
            "period": period,
            "from": report["from"],
            "to": report["to"],
            "periods": report["by_period"],
        }

    return cached_json(request, etag, PeriodMetricsOut, build)


@router.get("/election/{election_id}", response_model=ElectionMetricsOut)
def election_metrics(request: Request, election_id: Id, engine: EngineDep, etag: Cached) -> Response:
    """The election's stored metrics (``election_metrics``) with its dashboard ``summary``."""
    return cached_json(
        request, etag, ElectionMetricsOut, lambda: utc_text(stored_election_metrics(engine, election_id))
    )


@router.get("/election/{election_id}/constituencies", response_model=Page[dict])
def election_constituencies(election_id: Id, engine: EngineDep, _etag: Cached, paging: PageQuery) -> dict:
    """The election's constituencies with their totals and open alerts, the most anomalous first."""
    election_scope(engine, election_id)  # LookupError (404) for an unknown election
    rows = utc_text(constituency_rows(engine, election_id))
    return paging.cut(rows)


@router.get("/dashboard/summary", response_model=DashboardSummaryOut)
def dashboard(request: Request, engine: EngineDep, etag: Cached) -> Response:
    """Every election at a glance."""
    return cached_json(request, etag, DashboardSummaryOut, lambda: utc_text(dashboard_summary(engine)))


@router.get("/dashboard/detailed", response_model=DashboardDetailedOut)
def dashboard_detailed(engine: EngineDep, _etag: Cached) -> dict:
    """The summary, and the stored metrics of every election that has them."""
    summary = dashboard_summary(engine)
    elections = []
    for e in summary["per_election"]:
        if e["constituencies"] is not None:
            elections.append(stored_election_metrics(engine, e["id"]))
    return utc_text({"summary": summary, "elections": elections})
