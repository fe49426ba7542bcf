"""The API's routers, one per resource; :data:`ROUTERS` lists them in the order of the docs."""

from __future__ import annotations

from election_pipeline.api.routers import alerts, elections, files, health, hourly, metrics, tokens, transactions

ROUTERS = [
    health.router,
    elections.router,
    elections.constituencies,
    transactions.router,
    hourly.router,
    metrics.router,
    alerts.router,
    files.router,
    tokens.router,
]

__all__ = ["ROUTERS"]
