"""The observers' triage page, served by ``election-pipeline serve`` at ``/`` beside the API
(docs/web.md): sign-in with an API token, elections, constituencies, alerts and their triage,
live updates."""

from __future__ import annotations

from election_pipeline.web.routes import install_web

__all__ = ["install_web"]
