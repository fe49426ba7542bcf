"""Election schemas (docs/data-model.md#schemas; fields: docs/data-model.md#election).

``start_date``/``end_date`` are stored as naive UTC. On input, timezone-aware values are
converted to UTC, and **naive values are local time in the election's ``timezone``**
(reference files give the voting window in local time, e.g. 08:00 Europe/Moscow).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from ...vocabulary import ElectionStatus, ElectionStatusName, ElectionType, ElectionTypeName
from .base import BaseSchema, UTCDateTime, check_choice, local_to_naive_utc, validate_timezone

ELECTION_STATUSES: tuple[str, ...] = tuple(ElectionStatus)
ELECTION_TYPES: tuple[str, ...] = tuple(ElectionType)
DEFAULT_TIMEZONE = "UTC"


def check_election_window(start: datetime | None, end: datetime | None) -> None:
    """Raise a ``ValueError`` unless ``end`` is after ``start`` (either may be missing)."""
    if start is not None and end is not None and end <= start:
        raise ValueError(
            f"end_date must be after start_date (start_date {start.isoformat()} UTC, end_date {end.isoformat()} UTC)"
        )


class _ElectionChecks(BaseSchema):
    """Field checks shared by every election schema."""

    @field_validator("status", mode="before", check_fields=False)
    @classmethod
    def _check_status(cls, v: Any) -> Any:
        return check_choice(v, ELECTION_STATUSES, "status")

    @field_validator("type", mode="before", check_fields=False)
    @classmethod
    def _check_type(cls, v: Any) -> Any:
        return check_choice(v, ELECTION_TYPES, "type")

    @field_validator("timezone", check_fields=False)
    @classmethod
    def _check_timezone(cls, v: str | None) -> str | None:
        return validate_timezone(v)


class ElectionBase(_ElectionChecks):
    """Fields common to creating and reading an election."""

    name: str = Field(min_length=1)
    country: str | None = None
    start_date: datetime
    end_date: datetime
    status: ElectionStatusName = "active"
    type: ElectionTypeName | None = None
    description: str | None = None
    timezone: str = DEFAULT_TIMEZONE
    total_constituencies: int = Field(default=0, ge=0)


class ElectionCreate(ElectionBase):
    """Input for a new election. ``id`` is optional (reference files give one; else a UUID)."""

    id: str | None = None

    @model_validator(mode="after")
    def _dates_to_utc(self) -> ElectionCreate:
        self.start_date = local_to_naive_utc(self.start_date, self.timezone)
        self.end_date = local_to_naive_utc(self.end_date, self.timezone)
        check_election_window(self.start_date, self.end_date)
        return self


class ElectionUpdate(_ElectionChecks):
    """Partial update: only the fields that are set are applied.

    Naive dates are local time in ``timezone`` if the update sets it, else in the zone
    given as validation context (``model_validate(data, context={"timezone": ...})``).
    If neither is known they stay naive and are listed in :attr:`pending_local_dates`;
    :class:`~election_pipeline.db.crud.ElectionCRUD` converts them with the stored zone.
    """

    name: str | None = Field(default=None, min_length=1)
    country: str | None = None
    start_date: datetime | None = None
    end_date: datetime | None = None
    status: ElectionStatusName | None = None
    type: ElectionTypeName | None = None
    description: str | None = None
    timezone: str | None = None
    total_constituencies: int | None = Field(default=None, ge=0)

    _pending_local: frozenset[str] = PrivateAttr(default_factory=frozenset)

    @model_validator(mode="after")
    def _dates_to_utc(self, info: ValidationInfo) -> ElectionUpdate:
        context: Any = info.context if isinstance(info.context, dict) else {}
        zone = self.timezone or context.get("timezone")
        pending: set[str] = set()
        for name in ("start_date", "end_date"):
            value = getattr(self, name)
            if value is None:
                continue
            if value.tzinfo is not None or zone:
                setattr(self, name, local_to_naive_utc(value, zone or "UTC"))
            else:
                pending.add(name)
        if not pending:
            check_election_window(self.start_date, self.end_date)
        self._pending_local = frozenset(pending)
        return self

    @property
    def pending_local_dates(self) -> frozenset[str]:
        """Names of date fields still in (unknown) local time, to convert with the stored zone."""
        return self._pending_local


class ElectionResponse(ElectionBase):
    """An election as stored (dates naive UTC)."""

    id: str
    start_date: UTCDateTime
    end_date: UTCDateTime
    created_at: datetime
    updated_at: datetime


__all__ = [
    "DEFAULT_TIMEZONE",
    "ELECTION_STATUSES",
    "ELECTION_TYPES",
    "ElectionBase",
    "ElectionCreate",
    "ElectionResponse",
    "ElectionUpdate",
    "check_election_window",
]
