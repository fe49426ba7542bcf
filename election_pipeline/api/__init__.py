"""The HTTP API of the pipeline (FastAPI): the operational database's figures and the alert
workflow for observers' tools, with bearer tokens, roles and an audit trail (docs/api.md).

* :mod:`.app`: :func:`create_app`, the application factory;
* :mod:`.deps`: the session, the caller's role and HTTP caching (ETag) of every route;
* :mod:`.tokens`: making, listing, revoking and checking bearer tokens;
* :mod:`.models`: the response models; :mod:`.params`: shared parameters and their limits;
* :mod:`.errors`: JSON errors (401, 403, 404, 422; never a stack trace);
* :mod:`.routers`: one router per resource.

Started with ``election-pipeline serve`` (:mod:`election_pipeline.cli.serve`).
"""

from election_pipeline.api.app import create_app

__all__ = ["create_app"]
