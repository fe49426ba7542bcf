"""Base schema and the validators every entity schema shares (docs/data-model.md#schemas).

Every datetime stored in the operational database is naive UTC. :data:`UTCDateTime`
turns timezone-aware input into naive UTC and keeps naive input as it is (it is taken
to be UTC already). Election dates are the exception: see :mod:`.election`.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Annotated, Any, TypeVar, overload
from zoneinfo import ZoneInfo

from pydantic import AfterValidator, BaseModel, ConfigDict

from ..models.base import utcnow as utc_now

T = TypeVar("T")


class BaseSchema(BaseModel):
    """Base for every schema: builds from ORM objects (``Schema.model_validate(orm_obj)``)."""

    model_config = ConfigDict(from_attributes=True)


def check_choice(value: T, allowed: Iterable[str], field: str) -> T:
    """Return ``value`` if it is ``None`` or one of ``allowed``; else raise a ``ValueError``
    that names the allowed values."""
    allowed = tuple(allowed)
    if value is not None and value not in allowed:
        raise ValueError(f"{field} must be one of {', '.join(allowed)} (got {value!r})")
    return value


@overload
def to_naive_utc(value: datetime) -> datetime: ...
@overload
def to_naive_utc(value: None) -> None: ...
@overload
def to_naive_utc(value: datetime | None) -> datetime | None: ...
def to_naive_utc(value: datetime | None) -> datetime | None:
    """Timezone-aware -> naive UTC; naive is returned unchanged (already UTC)."""
    if value is None or value.tzinfo is None:
        return value
    return value.astimezone(UTC).replace(tzinfo=None)


@overload
def local_to_naive_utc(value: datetime, tz_name: str) -> datetime: ...
@overload
def local_to_naive_utc(value: None, tz_name: str) -> None: ...
@overload
def local_to_naive_utc(value: datetime | None, tz_name: str) -> datetime | None: ...
def local_to_naive_utc(value: datetime | None, tz_name: str) -> datetime | None:
    """Naive local time in ``tz_name`` -> naive UTC; aware values are simply converted to UTC."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=ZoneInfo(tz_name))
    return value.astimezone(UTC).replace(tzinfo=None)


def validate_timezone(value: str | None) -> str | None:
    """Check that ``value`` is an IANA time zone name known to :mod:`zoneinfo`."""
    if value is None:
        return None
    try:
        ZoneInfo(value)
    except (ValueError, KeyError, OSError):
        raise ValueError(
            f"timezone must be a valid IANA time zone name such as 'UTC' or 'Europe/Moscow' (got {value!r})"
        ) from None
    return value


def utc_iso(value: datetime | None = None) -> str:
    """An instant (default: now) as an ISO 8601 UTC string, e.g. ``2024-09-06T05:00:00+00:00``.

    Naive values are taken to be UTC.
    """
    value = value or datetime.now(UTC)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat(timespec="seconds")


def _utc_datetime(value: Any) -> Any:
    return to_naive_utc(value) if isinstance(value, datetime) else value


#: A datetime stored as naive UTC: aware input is converted, naive input is kept (UTC).
UTCDateTime = Annotated[datetime, AfterValidator(_utc_datetime)]

__all__ = [
    "BaseSchema",
    "UTCDateTime",
    "check_choice",
    "local_to_naive_utc",
    "to_naive_utc",
    "utc_iso",
    "utc_now",
    "validate_timezone",
]
