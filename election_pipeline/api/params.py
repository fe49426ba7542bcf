"""Query and path parameters shared by the routes, with their limits (a bad one is a 422)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Any

from fastapi import Depends, Path, Query

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
    str | None,
    Query(
        max_length=40,
        description="ISO 8601 instant, e.g. 2024-09-06T10:00:00Z or 2024-09-06T13:00:00+03:00 (without an offset: UTC)",
        json_schema_extra={"format": "date-time"},
    ),
]
#: An ISO 8601 date and time (at least hours and minutes), with an optional offset.
_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|z|[+-]\d{2}:?\d{2})?$")


def parse_time(text: str | None, name: str) -> datetime | None:
    """``text`` (ISO 8601 date and time, naive = UTC) as naive UTC; a 422 naming ``name``."""
    if text is None:
        return None
    try:
        if not _ISO.match(text):
            raise ValueError(text)
        moment = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise ApiError(
            422, f"{name}: not an ISO 8601 date and time such as 2024-09-06T10:00:00Z (got {text[:40]!r})"
        ) from None
    try:
        return to_naive_utc(moment)
    except OverflowError:
        # An instant just outside years 1-9999 once in UTC (0001-01-01T00:00+01:00): earlier,
        # or later, than any transaction; the range is the same.
        return datetime.min if moment.year == 1 else datetime.max


def time_range(start_time: str | None, end_time: str | None) -> tuple[datetime | None, datetime | None]:
    """``[start_time, end_time)`` as naive UTC; a 422 for a bad time or unless ``start_time``
    is before ``end_time``."""
    start, end = parse_time(start_time, "start_time"), parse_time(end_time, "end_time")
    if start is not None and end is not None and start >= end:
        raise ApiError(422, "start_time must be before end_time (the range is [start_time, end_time))")
    return start, end


@dataclass(frozen=True)
class Paging:
    """The page a list route was asked for (``skip``, ``limit``)."""

    skip: int
    limit: int

    def read(self, fetch: Callable[..., Sequence[Any]]) -> dict[str, Any]:
        """The page of what ``fetch(skip=, limit=)`` reads from the database: ``limit + 1``
        rows are read, to tell whether there are more."""
        items = fetch(skip=self.skip, limit=self.limit + 1)
        return self._page(items[: self.limit], len(items) > self.limit)

    def cut(self, rows: Sequence[Any]) -> dict[str, Any]:
        """The page of rows already in memory (all of them)."""
        return self._page(rows[self.skip : self.skip + self.limit], len(rows) > self.skip + self.limit)

    def _page(self, items: Sequence[Any], more: bool) -> dict[str, Any]:
        return {"items": list(items), "skip": self.skip, "limit": self.limit, "has_more": more}


def _paging(skip: Skip = 0, limit: Limit = 100) -> Paging:
    return Paging(skip, limit)


def _long_paging(skip: Skip = 0, limit: Limit = MAX_LIMIT) -> Paging:
    return Paging(skip, limit)


#: ``skip`` and ``limit`` (default 100).
PageQuery = Annotated[Paging, Depends(_paging)]
#: ``skip`` and ``limit`` (default 1,000: an hour-by-hour series).
LongPageQuery = Annotated[Paging, Depends(_long_paging)]
