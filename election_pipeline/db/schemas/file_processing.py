"""FileProcessingJob schemas (docs/data-model.md#schemas): one attempt at one input file."""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from ...vocabulary import FileJobStatus, FileJobStatusName
from .base import BaseSchema, UTCDateTime, check_choice

FILE_JOB_STATUSES: tuple[str, ...] = tuple(FileJobStatus)


class _FileJobChecks(BaseSchema):
    @field_validator("status", mode="before", check_fields=False)
    @classmethod
    def _check_status(cls, v: Any) -> Any:
        return check_choice(v, FILE_JOB_STATUSES, "status")


class FileProcessingJobBase(_FileJobChecks):
    """Fields common to creating and reading a job."""

    filename: str = Field(min_length=1)
    status: FileJobStatusName = "processing"
    details: str | None = None
    transactions_processed: int = Field(default=0, ge=0)
    rejected_lines: int = Field(default=0, ge=0)
    file_hash: str | None = None
    stored_path: str | None = None
    started_at: UTCDateTime | None = None
    completed_at: UTCDateTime | None = None


class FileProcessingJobCreate(FileProcessingJobBase):
    """Input for a new job; ``started_at`` defaults to now."""


class FileProcessingJobUpdate(_FileJobChecks):
    """Partial update: only the fields that are set are applied."""

    status: FileJobStatusName | None = None
    details: str | None = None
    transactions_processed: int | None = Field(default=None, ge=0)
    rejected_lines: int | None = Field(default=None, ge=0)
    file_hash: str | None = None
    stored_path: str | None = None
    completed_at: UTCDateTime | None = None


class FileProcessingJobResponse(FileProcessingJobBase):
    """A job as stored."""

    id: str
    started_at: UTCDateTime


__all__ = [
    "FILE_JOB_STATUSES",
    "FileProcessingJobBase",
    "FileProcessingJobCreate",
    "FileProcessingJobResponse",
    "FileProcessingJobUpdate",
]
