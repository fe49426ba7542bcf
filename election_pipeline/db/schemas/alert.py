"""Alert schemas (docs/data-model.md#schemas).

``notes`` is a list of :class:`AlertNote` dicts
``{"at": ISO UTC time, "text": ..., "author": ...}``.
A plain string is accepted as a note too and becomes ``{"at": now, "text": string}``.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import ConfigDict, Field, field_validator, model_validator

from ...vocabulary import AlertStatus, AlertStatusName, Severity, SeverityName
from .base import BaseSchema, UTCDateTime, check_choice, utc_iso

#: The allowed values, the most severe first.
ALERT_SEVERITIES: tuple[str, ...] = tuple(Severity)
ALERT_STATUSES: tuple[str, ...] = tuple(AlertStatus)


def make_note(text: str, author: str | None = None, at: datetime | None = None) -> dict[str, Any]:
    """A note as stored in ``Alert.notes``."""
    return {"at": utc_iso(at), "text": text, "author": author}


class AlertNote(BaseSchema):
    """One investigation note. Extra keys written by other tools are kept."""

    model_config = ConfigDict(extra="allow")

    at: str | None = None
    text: str
    author: str | None = None

    @field_validator("at", mode="before")
    @classmethod
    def _at_to_iso(cls, v: Any) -> Any:
        return utc_iso(v) if isinstance(v, datetime) else v


def _normalise_notes(value: Any) -> Any:
    if value is None:
        return []
    if isinstance(value, (str, bytes, dict)) or not isinstance(value, (list, tuple)):
        raise ValueError("notes must be a list of notes")
    return [make_note(n) if isinstance(n, str) else n for n in value]


class _AlertChecks(BaseSchema):
    @field_validator("severity", mode="before", check_fields=False)
    @classmethod
    def _check_severity(cls, v: Any) -> Any:
        return check_choice(v, ALERT_SEVERITIES, "severity")

    @field_validator("status", mode="before", check_fields=False)
    @classmethod
    def _check_status(cls, v: Any) -> Any:
        return check_choice(v, ALERT_STATUSES, "status")

    @field_validator("notes", mode="before", check_fields=False)
    @classmethod
    def _check_notes(cls, v: Any) -> Any:
        return _normalise_notes(v)


class AlertBase(_AlertChecks):
    """Fields common to creating and reading an alert."""

    constituency_id: str = Field(min_length=1)
    type: str = Field(min_length=1)
    severity: SeverityName
    status: AlertStatusName = "active"
    title: str = Field(min_length=1)
    description: str | None = None
    details: dict[str, Any] | None = None
    notes: list[AlertNote] = Field(default_factory=list)
    detected_at: UTCDateTime
    resolved_at: UTCDateTime | None = None
    snoozed_until: UTCDateTime | None = None
    assigned_to: str | None = None


class AlertCreate(AlertBase):
    """Input for a new alert.

    ``fingerprint`` (rule, constituency, hour or window) makes an alert unique; if omitted
    a unique ``manual:<type>:<constituency>:<uuid>`` value is generated.
    """

    fingerprint: str | None = None

    @model_validator(mode="after")
    def _default_fingerprint(self) -> AlertCreate:
        if not self.fingerprint:
            self.fingerprint = f"manual:{self.type}:{self.constituency_id}:{uuid.uuid4().hex}"
        return self


class AlertUpdate(_AlertChecks):
    """Partial update: only the fields that are set are applied."""

    severity: SeverityName | None = None
    status: AlertStatusName | None = None
    title: str | None = Field(default=None, min_length=1)
    description: str | None = None
    details: dict[str, Any] | None = None
    notes: list[AlertNote] | None = None
    resolved_at: UTCDateTime | None = None
    snoozed_until: UTCDateTime | None = None
    assigned_to: str | None = None


class AlertResponse(AlertBase):
    """An alert as stored."""

    id: str
    fingerprint: str
    created_at: datetime
    updated_at: datetime


__all__ = [
    "ALERT_SEVERITIES",
    "ALERT_STATUSES",
    "AlertBase",
    "AlertCreate",
    "AlertNote",
    "AlertResponse",
    "AlertUpdate",
    "make_note",
]
