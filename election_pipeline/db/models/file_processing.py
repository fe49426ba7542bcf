"""FileProcessingJob, the file ledger and rejected rows: what happened to every input file."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ...vocabulary import FileJobStatus
from .base import Base, UUIDMixin, utcnow


class FileProcessingJob(UUIDMixin, Base):
    """One attempt at one file: ``processing`` -> ``completed`` or ``failed``.

    ``details`` says what was found (or why it failed); ``stored_path`` where the file was
    moved (``processed/`` or ``quarantine/``); ``file_hash`` its SHA-256.
    """

    __tablename__ = "file_processing_jobs"
    __table_args__ = (
        Index("ix_file_processing_jobs_status", "status"),
        Index("ix_file_processing_jobs_file_hash", "file_hash"),
        # The API's data version: max(started_at), max(completed_at).
        Index("ix_file_processing_jobs_started_at", "started_at"),
        Index("ix_file_processing_jobs_completed_at", "completed_at"),
    )

    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default=FileJobStatus.PROCESSING, nullable=False)
    details: Mapped[str | None] = mapped_column(Text)
    transactions_processed: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    rejected_lines: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    file_hash: Mapped[str | None] = mapped_column(String(64))
    stored_path: Mapped[str | None] = mapped_column(String(1024))
    started_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    completed_at: Mapped[datetime | None] = mapped_column(DateTime)


class FileLedgerEntry(Base):
    """The file ledger: one row per distinct file content (SHA-256) ever finished.

    A file whose hash is here has been counted (``completed``) or refused (``failed``)
    already; dropping it again changes no figure.
    """

    __tablename__ = "file_ledger"

    content_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    status: Mapped[str] = mapped_column(String(20), nullable=False)
    job_id: Mapped[str | None] = mapped_column(ForeignKey("file_processing_jobs.id"))
    size_bytes: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    stored_path: Mapped[str | None] = mapped_column(String(1024))
    recorded_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)


class RejectedRow(UUIDMixin, Base):
    """A line that could not be counted: where it was, why, and its text (docs/input-format.md#bad-input)."""

    __tablename__ = "rejected_rows"
    __table_args__ = (
        Index("ix_rejected_rows_file_hash_source_line", "file_hash", "source", "line_number", unique=True),
    )

    file_hash: Mapped[str] = mapped_column(String(64), nullable=False)
    filename: Mapped[str] = mapped_column(String(512), nullable=False)
    source: Mapped[str] = mapped_column(String(1024), nullable=False)
    line_number: Mapped[int] = mapped_column(Integer, nullable=False)
    reason: Mapped[str] = mapped_column(Text, nullable=False)
    #: The first 65,536 characters of the line.
    raw_line: Mapped[str] = mapped_column(Text, nullable=False)
    #: The whole line's length in bytes and its SHA-256 (``raw_line`` may be a prefix).
    line_length: Mapped[int | None] = mapped_column(BigInteger)
    line_sha256: Mapped[str | None] = mapped_column(String(64))
    job_id: Mapped[str | None] = mapped_column(ForeignKey("file_processing_jobs.id"))
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
