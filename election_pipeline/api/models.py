"""Response models of the HTTP API (Pydantic v2): the seeds' ``*Response`` schemas, extended
where the pipeline has more, and the envelopes of lists and errors.

Every instant is ISO 8601 UTC with its offset (``2024-09-06T05:00:00Z``): the database holds
naive UTC, :class:`ApiModel` writes the ``Z``, and :func:`utc_text` does the same for the
times inside the figures' JSON (``summary``, ``details``, report rows).
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime
from typing import Any, Generic, TypeVar

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, SerializationInfo, SerializerFunctionWrapHandler, field_serializer

from election_pipeline.db.schemas import (
    AlertResponse,
    ConstituencyResponse,
    ElectionResponse,
    FileProcessingJobResponse,
    TransactionResponse,
)
from election_pipeline.vocabulary import AlertStatusName

T = TypeVar("T")

#: A naive ISO 8601 instant as the pipeline writes them into JSON (UTC without an offset).
_NAIVE_ISO = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?$")
#: Keys of free text: never rewritten, whatever they hold.
_TEXT_KEYS = frozenset({"text", "title", "description", "name", "note", "author", "details_text"})


def iso_utc(value: datetime) -> str:
    """An instant (naive = UTC) as ISO 8601 UTC: ``2024-09-06T05:00:00Z``."""
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value.isoformat() + "Z"


def utc_text(value: Any, key: str | None = None) -> Any:
    """``value`` (JSON-like) with every instant as ISO 8601 UTC: datetimes, pandas
    timestamps and naive ISO strings get their ``Z``; NaN becomes ``None``. Free-text keys
    (notes, titles, names) are left alone."""
    if key in _TEXT_KEYS:
        return value
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else iso_utc(value.to_pydatetime())
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, str):
        return value + "Z" if _NAIVE_ISO.match(value) else value
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {str(k): utc_text(v, str(k)) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [utc_text(v, key) for v in value]
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        return utc_text(value.item(), key)
    return value


class ApiModel(BaseModel):
    """Base of every response: instants serialised as ISO 8601 UTC with ``Z``."""

    model_config = ConfigDict(from_attributes=True)

    @field_serializer("*", mode="wrap", when_used="json")
    def _utc(self, value: Any, handler: SerializerFunctionWrapHandler, info: SerializationInfo) -> Any:
        if isinstance(value, datetime):
            return iso_utc(value)
        return handler(value)


class ErrorResponse(BaseModel):
    """What every error answers: a message, and for a bad parameter what was wrong where."""

    detail: str = Field(description="what went wrong, for a person")
    errors: list[dict[str, Any]] | None = Field(
        default=None, description="for a 422: each bad parameter (loc, msg, type)"
    )


class Page(ApiModel, Generic[T]):
    """One page of a list: ``items`` from ``skip`` on, at most ``limit``; ``has_more`` says
    whether a next page (``skip + limit``) has anything."""

    items: list[T]
    skip: int
    limit: int
    has_more: bool


class HealthResponse(ApiModel):
    """Whether the database answers, its schema revision, and when the pipeline last wrote
    figures (the latest hourly, election-metrics or file-job write)."""

    status: str = Field(description="ok, or error when the database does not answer")
    database: str = Field(description="reachable or unreachable")
    revision: str | None = None
    latest_materialisation: datetime | None = None


class ElectionOut(ElectionResponse, ApiModel):
    """An election (dates UTC)."""


class ConstituencyOut(ConstituencyResponse, ApiModel):
    """A constituency with its running figures."""


class TransactionOut(TransactionResponse, ApiModel):
    """A stored transaction."""


class FileJobOut(FileProcessingJobResponse, ApiModel):
    """One processing attempt of an input file."""


class AlertEventOut(ApiModel):
    """One change to an alert: when, who, what kind, and each field's old and new value."""

    id: str
    at: datetime
    actor: str
    action: str
    changes: dict[str, Any]

    @field_serializer("changes", when_used="json")
    def _changes_utc(self, value: dict[str, Any]) -> dict[str, Any]:
        return utc_text(value)


class AlertOut(AlertResponse, ApiModel):
    """An alert as stored (``details`` holds its figures, window and evidence ids)."""


class AlertDetailOut(AlertOut):
    """An alert with the stored transactions behind it and its audit trail."""

    evidence: list[TransactionOut] = Field(default_factory=list)
    history: list[AlertEventOut] = Field(default_factory=list)


class AlertPatch(BaseModel):
    """The analyst's changes: any of ``status``, ``assigned_to`` (null unassigns) and
    ``snoozed_until`` (ISO 8601, naive = UTC; with ``status`` snoozed or alone)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"minProperties": 1})

    status: AlertStatusName | None = Field(default=None, description="active, investigating, resolved or snoozed")
    assigned_to: str | None = Field(default=None, max_length=255, pattern=r"^[^\x00-\x1f\x7f]*$")
    snoozed_until: datetime | None = None


class NoteIn(BaseModel):
    """A new investigation note (the author is the token's name)."""

    model_config = ConfigDict(extra="forbid")

    text: str = Field(min_length=1, max_length=10_000, pattern=r"^[^\x00]*$")


class HourRow(ApiModel):
    """One UTC hour of a constituency or an election (velocities per minute; participation
    cumulative, in %)."""

    model_config = ConfigDict(extra="allow")

    hour: str
    local_time: str
    bulletins_issued: int
    votes_cast: int
    revote_count: int
    rejected_count: int
    transaction_count: int
    cumulative_votes: int
    participation_rate: float
    issued_not_voted: int
    bulletin_velocity: float
    vote_velocity: float
    vote_to_bulletin_ratio: float | None = None
    rolling_vote_velocity: float | None = None
    rolling_ratio: float | None = None
    anomaly_count: int


class HourlyStatsOut(ApiModel):
    """Hour by hour for a constituency or an election (a page of hours)."""

    scope: str
    id: str
    name: str
    timezone: str
    registered_voters: int
    start_time: datetime | None = Field(default=None, alias="from")
    end_time: datetime | None = Field(default=None, alias="to")
    rolling_window_hours: int
    items: list[HourRow]
    skip: int
    limit: int
    has_more: bool

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ConstituencyMetricsOut(ApiModel):
    """A constituency's totals (``constituency``, as ``report constituency``) and its
    activity by local hour of day over the whole election."""

    constituency: dict[str, Any]
    hourly_activity_pattern: list[dict[str, Any]]


class PeriodMetricsOut(ApiModel):
    """A constituency's figures per period of its election's local calendar."""

    constituency_id: str
    timezone: str
    period: str
    start_time: datetime | None = Field(default=None, alias="from")
    end_time: datetime | None = Field(default=None, alias="to")
    periods: list[dict[str, Any]]

    model_config = ConfigDict(populate_by_name=True, serialize_by_alias=True)


class ElectionMetricsOut(ApiModel):
    """An election's stored metrics (``election_metrics``), with the dashboard ``summary``."""

    model_config = ConfigDict(extra="allow")

    election_id: str
    total_constituencies: int
    constituencies_reporting: int
    constituencies_offline: int
    constituencies_with_critical_alerts: int
    registered_voters: int
    bulletins_issued: int
    votes_cast: int
    revote_count: int
    rejected_count: int
    transaction_count: int
    participation_rate: float
    issued_not_voted: int
    first_activity: datetime | None = None
    last_activity: datetime | None = None
    open_alerts_critical: int
    open_alerts_warning: int
    open_alerts_info: int
    summary: dict[str, Any] | None = None
    created_at: datetime
    updated_at: datetime


class DashboardSummaryOut(ApiModel):
    """Every election at a glance (as ``report dashboard``)."""

    elections: int
    elections_by_status: dict[str, int]
    constituencies: int
    unknown_constituencies: int
    registered_voters: int
    bulletins_issued: int
    votes_cast: int
    transaction_count: int
    participation_rate: float
    open_alerts: dict[str, int]
    open_alerts_by_rule: dict[str, int]
    alerts_by_status: dict[str, int]
    files: dict[str, int]
    rejected_lines: int
    last_activity: str | None = None
    per_election: list[dict[str, Any]]


class DashboardDetailedOut(ApiModel):
    """The summary, and each election's stored metrics in full."""

    summary: DashboardSummaryOut
    elections: list[ElectionMetricsOut]


class TokenOut(ApiModel):
    """A token as listed (never its secret)."""

    id: str
    name: str
    role: str
    created_at: datetime
    revoked_at: datetime | None = None


__all__ = [
    "AlertDetailOut",
    "AlertEventOut",
    "AlertOut",
    "AlertPatch",
    "ApiModel",
    "ConstituencyMetricsOut",
    "ConstituencyOut",
    "DashboardDetailedOut",
    "DashboardSummaryOut",
    "ElectionMetricsOut",
    "ElectionOut",
    "ErrorResponse",
    "FileJobOut",
    "HealthResponse",
    "HourRow",
    "HourlyStatsOut",
    "NoteIn",
    "Page",
    "PeriodMetricsOut",
    "TokenOut",
    "TransactionOut",
    "iso_utc",
    "utc_text",
]
