"""JSON errors: ``{"detail": message}`` (and for a 422 the list of ``errors``) for every
failure; never a stack trace. A lookup that finds nothing is a 404, a value the functions
refuse a 422, anything unexpected a 500 logged on the server with its trace."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from election_pipeline.api.deps import ApiError, NotModified

log = logging.getLogger(__name__)


def _error(status: int, detail: str, headers: dict[str, str] | None = None, **extra: object) -> JSONResponse:
    return JSONResponse({"detail": detail, **extra}, status_code=status, headers=headers)


def _where(loc: Sequence[object]) -> str:
    return ".".join(str(p) for p in loc)


def install(app: FastAPI) -> None:
    """Register the handlers on ``app``."""

    @app.exception_handler(ApiError)
    async def api_error(_request: Request, exc: ApiError) -> Response:
        return _error(exc.status, exc.message, exc.headers)

    @app.exception_handler(NotModified)
    async def not_modified(_request: Request, exc: NotModified) -> Response:
        return Response(status_code=304, headers={"ETag": exc.etag})

    @app.exception_handler(StarletteHTTPException)
    async def http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 400:  # FastAPI could not read the body (not JSON, not UTF-8)
            return _error(422, "the request body is not valid JSON text")
        return _error(exc.status_code, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def bad_request(_request: Request, exc: RequestValidationError) -> Response:
        errors = [
            {"loc": [str(p) for p in e.get("loc", ())], "msg": str(e.get("msg")), "type": str(e.get("type"))}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{_where(e['loc'])}: {e['msg']}" for e in errors) or "invalid request"
        return _error(422, detail, errors=errors)

    @app.exception_handler(LookupError)
    async def not_found(request: Request, exc: LookupError) -> Response:
        if isinstance(exc, KeyError):  # a bug, not a missing row
            return await unexpected(request, exc)
        return _error(404, str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(ValueError)
    async def refused(_request: Request, exc: ValueError) -> Response:
        return _error(422, str(exc))

    @app.exception_handler(Exception)
    async def unexpected(request: Request, exc: Exception) -> Response:
        log.error("unexpected error answering %s %s", request.method, request.url.path, exc_info=exc)
        return _error(500, "internal error: see the server's log")
