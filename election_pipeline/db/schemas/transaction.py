"""Transaction schemas (docs/data-model.md#schemas; docs/input-format.md#export-line).

``type`` is the contract operation in its canonical spelling (``vote``, ``blindSigIssue``,
...). ``block_height`` is optional: a block dump gives it, the 12-field export carries none.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from ...ingest.export_line import KNOWN_OPERATIONS
from ...vocabulary import Operation, OperationName
from .base import BaseSchema, UTCDateTime

#: Every operation name a transaction may have (canonical spelling).
TRANSACTION_TYPES: tuple[str, ...] = tuple(Operation)


def validate_transaction_type(value: str | None) -> str | None:
    """Return the canonical operation name (matched case-insensitively) or raise ``ValueError``."""
    if value is None:
        return None
    canonical = KNOWN_OPERATIONS.get(value.strip().lower()) if isinstance(value, str) else None
    if canonical is None:
        raise ValueError(f"type must be one of {', '.join(TRANSACTION_TYPES)} (got {value!r})")
    return canonical


class _TransactionChecks(BaseSchema):
    @field_validator("type", mode="before", check_fields=False)
    @classmethod
    def _check_type(cls, v: Any) -> Any:
        return validate_transaction_type(v)


class TransactionBase(_TransactionChecks):
    """Fields common to creating and reading a transaction."""

    tx_id: str = Field(min_length=1)
    constituency_id: str = Field(min_length=1)
    block_height: int | None = Field(default=None, ge=0)
    timestamp: UTCDateTime
    type: OperationName
    sender: str | None = None
    is_rejected: bool = False
    is_rolled_back: bool = False
    bulletins: int = Field(default=0, ge=0)
    source_file: str | None = None
    raw_data: dict[str, Any] | None = None
    operation_data: dict[str, Any] | None = None


class TransactionCreate(TransactionBase):
    """Input for a new transaction."""


class TransactionUpdate(_TransactionChecks):
    """Partial update: only the fields that are set are applied."""

    block_height: int | None = Field(default=None, ge=0)
    timestamp: UTCDateTime | None = None
    type: OperationName | None = None
    sender: str | None = None
    is_rejected: bool | None = None
    is_rolled_back: bool | None = None
    bulletins: int | None = Field(default=None, ge=0)
    source_file: str | None = None
    raw_data: dict[str, Any] | None = None
    operation_data: dict[str, Any] | None = None


class TransactionResponse(TransactionBase):
    """A transaction as stored."""

    id: str
    created_at: datetime
    updated_at: datetime


__all__ = [
    "TRANSACTION_TYPES",
    "TransactionBase",
    "TransactionCreate",
    "TransactionResponse",
    "TransactionUpdate",
    "validate_transaction_type",
]
