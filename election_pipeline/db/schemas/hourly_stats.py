"""HourlyStats schemas (docs/data-model.md#schemas): one constituency, one UTC hour."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, field_validator

from .base import BaseSchema, UTCDateTime


def validate_hour(value: datetime | None) -> datetime | None:
    """An hour bucket must start on the hour (minutes, seconds and microseconds zero)."""
    if value is not None and (value.minute or value.second or value.microsecond):
        raise ValueError(f"hour must be the start of a UTC hour (minutes and seconds zero), got {value.isoformat()}")
    return value


class _HourlyStatsChecks(BaseSchema):
    @field_validator("hour", check_fields=False)
    @classmethod
    def _check_hour(cls, v: datetime | None) -> datetime | None:
        return validate_hour(v)


class HourlyStatsBase(_HourlyStatsChecks):
    """Fields common to creating and reading hourly figures."""

    constituency_id: str = Field(min_length=1)
    election_id: str | None = None
    hour: UTCDateTime
    timestamp: UTCDateTime | None = None
    bulletins_issued: int = Field(default=0, ge=0)
    votes_cast: int = Field(default=0, ge=0)
    revote_count: int = Field(default=0, ge=0)
    rejected_count: int = Field(default=0, ge=0)
    transaction_count: int = Field(default=0, ge=0)
    cumulative_bulletins: int = Field(default=0, ge=0)
    cumulative_votes: int = Field(default=0, ge=0)
    bulletin_velocity: float = Field(default=0.0, ge=0)
    vote_velocity: float = Field(default=0.0, ge=0)
    participation_rate: float = Field(default=0.0, ge=0)
    anomaly_count: int = Field(default=0, ge=0)


class HourlyStatsCreate(HourlyStatsBase):
    """Input for new hourly figures."""


class HourlyStatsUpdate(_HourlyStatsChecks):
    """Partial update: only the fields that are set are applied."""

    election_id: str | None = None
    timestamp: UTCDateTime | None = None
    bulletins_issued: int | None = Field(default=None, ge=0)
    votes_cast: int | None = Field(default=None, ge=0)
    revote_count: int | None = Field(default=None, ge=0)
    rejected_count: int | None = Field(default=None, ge=0)
    transaction_count: int | None = Field(default=None, ge=0)
    cumulative_bulletins: int | None = Field(default=None, ge=0)
    cumulative_votes: int | None = Field(default=None, ge=0)
    bulletin_velocity: float | None = Field(default=None, ge=0)
    vote_velocity: float | None = Field(default=None, ge=0)
    participation_rate: float | None = Field(default=None, ge=0)
    anomaly_count: int | None = Field(default=None, ge=0)


class HourlyStatsResponse(HourlyStatsBase):
    """Hourly figures as stored."""

    id: str
    created_at: datetime
    updated_at: datetime


__all__ = [
    "HourlyStatsBase",
    "HourlyStatsCreate",
    "HourlyStatsResponse",
    "HourlyStatsUpdate",
    "validate_hour",
]
