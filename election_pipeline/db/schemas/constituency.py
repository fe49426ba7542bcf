"""Constituency schemas (docs/data-model.md#schemas). The id is the contract id (base58)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from ...vocabulary import (
    ConstituencyStatus,
    ConstituencyStatusName,
    ConstituencyType,
    ConstituencyTypeName,
    RegisteredVotersSource,
    RegisteredVotersSourceName,
)
from .base import BaseSchema, UTCDateTime, check_choice

CONSTITUENCY_TYPES: tuple[str, ...] = tuple(ConstituencyType)
CONSTITUENCY_STATUSES: tuple[str, ...] = tuple(ConstituencyStatus)
#: Where ``registered_voters`` came from.
REGISTERED_VOTERS_SOURCES: tuple[str, ...] = tuple(RegisteredVotersSource)


def validate_contract_id(value: str | None) -> str | None:
    """A contract id is a non-empty string of ASCII letters and digits (base58)."""
    if value is None:
        return None
    if not value or not value.isascii() or not value.isalnum():
        raise ValueError(f"id must be a non-empty contract id of ASCII letters and digits (base58), got {value!r}")
    return value


class _ConstituencyChecks(BaseSchema):
    """Field checks shared by every constituency schema."""

    @field_validator("type", mode="before", check_fields=False)
    @classmethod
    def _check_type(cls, v: Any) -> Any:
        return check_choice(v, CONSTITUENCY_TYPES, "type")

    @field_validator("status", mode="before", check_fields=False)
    @classmethod
    def _check_status(cls, v: Any) -> Any:
        return check_choice(v, CONSTITUENCY_STATUSES, "status")

    @field_validator("registered_voters_source", mode="before", check_fields=False)
    @classmethod
    def _check_source(cls, v: Any) -> Any:
        return check_choice(v, REGISTERED_VOTERS_SOURCES, "registered_voters_source")


class ConstituencyBase(_ConstituencyChecks):
    """Fields common to creating and reading a constituency."""

    election_id: str | None = None
    name: str = Field(min_length=1)
    region: str = ""
    type: ConstituencyTypeName = "unknown"
    registered_voters: int = Field(default=0, ge=0)
    registered_voters_source: RegisteredVotersSourceName = "none"
    status: ConstituencyStatusName = "active"
    in_reference: bool = True


class ConstituencyCreate(ConstituencyBase):
    """Input for a new constituency; ``id`` is its contract id."""

    id: str
    last_update_time: UTCDateTime | None = None

    @field_validator("id")
    @classmethod
    def _check_id(cls, v: str) -> str:
        return validate_contract_id(v)  # type: ignore[return-value]


class ConstituencyUpdate(_ConstituencyChecks):
    """Partial update: only the fields that are set are applied."""

    election_id: str | None = None
    name: str | None = Field(default=None, min_length=1)
    region: str | None = None
    type: ConstituencyTypeName | None = None
    registered_voters: int | None = Field(default=None, ge=0)
    registered_voters_source: RegisteredVotersSourceName | None = None
    status: ConstituencyStatusName | None = None
    in_reference: bool | None = None
    last_update_time: UTCDateTime | None = None
    bulletins_issued: int | None = Field(default=None, ge=0)
    votes_cast: int | None = Field(default=None, ge=0)
    revote_count: int | None = Field(default=None, ge=0)
    transaction_count: int | None = Field(default=None, ge=0)
    rejected_count: int | None = Field(default=None, ge=0)
    participation_rate: float | None = Field(default=None, ge=0)
    anomaly_score: float | None = Field(default=None, ge=0)


class ConstituencyResponse(ConstituencyBase):
    """A constituency as stored, with its running figures."""

    id: str
    created_at: datetime
    updated_at: datetime
    last_update_time: datetime | None = None
    bulletins_issued: int
    votes_cast: int
    revote_count: int
    transaction_count: int
    rejected_count: int
    participation_rate: float
    anomaly_score: float


__all__ = [
    "CONSTITUENCY_STATUSES",
    "CONSTITUENCY_TYPES",
    "REGISTERED_VOTERS_SOURCES",
    "ConstituencyBase",
    "ConstituencyCreate",
    "ConstituencyResponse",
    "ConstituencyUpdate",
    "validate_contract_id",
]
