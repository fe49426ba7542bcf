"""Query and path parameters shared by the routes, with their limits (a bad one is a 422)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Path, Query

from election_pipeline.api.deps import ApiError
from election_pipeline.db.schemas.base import to_naive_utc

#: The largest page.
MAX_LIMIT = 1_000
#: The largest ``skip`` (the databases' 32-bit integers).
MAX_SKIP = 2**31 - 1
#: No NUL or other control character in text parameters (PostgreSQL refuses NUL).
TEXT_PATTERN = r"^[^\x00-\x1f\x7f]*$"

Skip = Annotated[int, Query(ge=0, le=MAX_SKIP, description="how many items to pass over")]
Limit = Annotated[int, Query(ge=1, le=MAX_LIMIT, description=f"at most this many items (1 to {MAX_LIMIT})")]
#: An optional text filter.
Text = Annotated[str | None, Query(min_length=1, max_length=255, pattern=TEXT_PATTERN)]
#: An id in the path.
Id = Annotated[str, Path(min_length=1, max_length=255, pattern=TEXT_PATTERN)]
Time = Annotated[
    datetime | None, Query(description="ISO 8601 instant, e.g. 2024-09-06T10:00:00Z (without an offset: UTC)")
]


def time_range(start: datetime | None, end: datetime | None) -> tuple[datetime | None, datetime | None]:
    """``[start, end)`` as naive UTC; a 422 unless ``start`` is before ``end``."""
    try:
        start, end = to_naive_utc(start), to_naive_utc(end)
    except OverflowError:
        raise ApiError(422, "start_time and end_time must lie between the years 1 and 9999 in UTC") from None
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "start_time must be before end_time (the range is [start_time, end_time))")
    return start, end


def page(items: list, skip: int, limit: int) -> dict:
    """A page from ``limit + 1`` items read: the first ``limit`` and whether there are more."""
    return {"items": items[:limit], "skip": skip, "limit": limit, "has_more": len(items) > limit}
