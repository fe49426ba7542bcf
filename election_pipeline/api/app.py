"""The app factory: :func:`create_app` builds the FastAPI application on an operational database."""

from __future__ import annotations

from fastapi import Depends, FastAPI

from election_pipeline.api import errors
from election_pipeline.api.deps import DataVersionGate, ResponseCache, SnapshotShortcut, known_query
from election_pipeline.api.routers import ROUTERS
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.settings import load_settings
from election_pipeline.web import install_web

DESCRIPTION = """The election-monitoring pipeline's figures and alert workflow over HTTP: elections,
constituencies, transactions, hourly stats, metrics, the dashboard, alerts (with their audit
trail) and file jobs, read from the operational database the pipeline writes.

Every endpoint but `/api/health` needs `Authorization: Bearer <token>` (made with
`election-pipeline tokens create`), unless `ELECTION_API_PUBLIC_READ=1` opens the reads.
Roles: `observer` reads, `analyst` also triages alerts, `admin` also manages tokens.
Times are ISO 8601 UTC; lists are paginated with `skip` and `limit` (at most 1,000); errors
are JSON `{"detail": message}`. Reads carry an `ETag`: send it back in `If-None-Match` to get
`304 Not Modified` while nothing changed."""


def create_app(database_url: str | None = None, *, public_read: bool | None = None) -> FastAPI:
    """The API on ``database_url`` (default: ``ELECTION_DATABASE_URL``), its schema brought to
    the newest migration first. ``public_read`` overrides ``ELECTION_API_PUBLIC_READ``."""
    settings = load_settings()
    engine = get_engine(database_url or settings.database_url)
    upgrade_database(engine)
    app = FastAPI(
        title="Election pipeline API",
        version="1",
        description=DESCRIPTION,
        openapi_url="/openapi.json",
        docs_url="/docs",
        redoc_url=None,
        dependencies=[Depends(known_query)],
    )
    app.state.engine = engine
    app.state.response_cache = ResponseCache()
    app.state.version_shortcut = SnapshotShortcut()
    app.state.version_gate = DataVersionGate()
    app.state.public_read = settings.api_public_read if public_read is None else public_read
    errors.install(app)
    for router in ROUTERS:
        app.include_router(router)
    install_web(app)  # the triage page at / (docs/web.md)
    return app
