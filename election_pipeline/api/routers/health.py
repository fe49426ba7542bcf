"""``GET /api/health``: no token needed."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from election_pipeline.api.deps import engine_of
from election_pipeline.api.models import HealthResponse
from election_pipeline.api.routers.common import errors
from election_pipeline.db.models import ElectionMetrics, FileProcessingJob, HourlyStats
from election_pipeline.db.session import current_revision

router = APIRouter(prefix="/api", tags=["health"])


@router.get(
    "/health",
    response_model=HealthResponse,
    responses={503: {"model": HealthResponse, "description": "the database does not answer"}, **errors(422)},
)
def health(request: Request) -> HealthResponse | JSONResponse:
    """Whether the operational database answers, its schema revision and the time of the
    pipeline's latest write of figures (hourly stats, election metrics, a finished file)."""
    try:
        with Session(engine_of(request)) as db:
            stamps = db.execute(
                select(
                    select(func.max(HourlyStats.updated_at)).scalar_subquery(),
                    select(func.max(ElectionMetrics.updated_at)).scalar_subquery(),
                    select(func.max(FileProcessingJob.completed_at)).scalar_subquery(),
                )
            ).one()
            revision = current_revision(db.connection())
    except SQLAlchemyError:
        body = HealthResponse(status="error", database="unreachable")
        return JSONResponse(body.model_dump(mode="json"), status_code=503)
    latest = max((s for s in stamps if s is not None), default=None)
    return HealthResponse(status="ok", database="reachable", revision=revision, latest_materialisation=latest)
