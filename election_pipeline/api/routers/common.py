"""What every router shares: the documented error answers."""

from __future__ import annotations

from typing import Any

from election_pipeline.api.models import ErrorResponse

_ERRORS: dict[int, str] = {
    401: "no token, or not a valid one",
    403: "the token's role may not do this",
    404: "no such id",
    422: "a bad parameter or body",
}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses`` of a route answering these error statuses."""
    return {code: {"model": ErrorResponse, "description": _ERRORS[code]} for code in codes}


#: A cached read: 304 when the client's copy is current, plus the read errors.
READ: dict[int | str, dict[str, Any]] = {
    304: {"description": "not modified (If-None-Match)"},
    **errors(401, 403, 404, 422),
}
