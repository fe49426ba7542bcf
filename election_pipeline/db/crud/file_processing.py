"""FileProcessingJob CRUD (docs/data-model.md#crud)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update

from ...vocabulary import FileJobStatus
from ..models import FileProcessingJob
from ..schemas.base import check_choice, utc_now
from ..schemas.file_processing import (
    FILE_JOB_STATUSES,
    FileProcessingJobCreate,
    FileProcessingJobUpdate,
)
from .base import BaseCRUD

_FINISHED = (FileJobStatus.COMPLETED, FileJobStatus.FAILED)


def _status_values(job: FileProcessingJob, status: str) -> dict[str, Any]:
    """Side effects of moving ``job`` to ``status``."""
    if status in _FINISHED:
        return {"status": status, "completed_at": job.completed_at or utc_now()}
    return {"status": status, "completed_at": None}


class FileProcessingJobCRUD(BaseCRUD[FileProcessingJob, FileProcessingJobCreate, FileProcessingJobUpdate]):
    """Processing attempts of input files."""

    model = FileProcessingJob
    create_schema = FileProcessingJobCreate
    update_schema = FileProcessingJobUpdate

    def get_by_status(self, *, status: str) -> list[FileProcessingJob]:
        """Jobs with this status, oldest first (``ValueError`` for an unknown status)."""
        check_choice(status, FILE_JOB_STATUSES, "status")
        stmt = (
            select(FileProcessingJob)
            .where(FileProcessingJob.status == status)
            .order_by(FileProcessingJob.started_at, FileProcessingJob.id)
        )
        return self._list(stmt)

    def list_jobs(
        self, *, status: str | None = None, skip: int = 0, limit: int | None = 100
    ) -> list[FileProcessingJob]:
        """Jobs (of one status, if given; ``ValueError`` for an unknown one), the most
        recently started first; ``limit`` of them after the first ``skip``."""
        check_choice(status, FILE_JOB_STATUSES, "status")
        stmt = select(FileProcessingJob)
        if status is not None:
            stmt = stmt.where(FileProcessingJob.status == status)
        stmt = stmt.order_by(FileProcessingJob.started_at.desc(), FileProcessingJob.id).offset(skip)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._list(stmt)

    def get_by_filename(self, *, filename: str) -> FileProcessingJob | None:
        """The latest job for this file name, or ``None``."""
        stmt = (
            select(FileProcessingJob)
            .where(FileProcessingJob.filename == filename)
            .order_by(FileProcessingJob.started_at.desc(), FileProcessingJob.id.desc())
            .limit(1)
        )
        return self.db.scalars(stmt).first()

    def update_status(self, *, id: str, status: str, details: str | None = None) -> FileProcessingJob:
        """Set the status (and ``details`` if given). ``completed``/``failed`` stamp
        ``completed_at`` if not yet set; ``processing`` clears it."""
        check_choice(status, FILE_JOB_STATUSES, "status")
        job = self.get_or_raise(id)
        values = _status_values(job, status)
        if details is not None:
            values["details"] = details
        return self._apply(job, values)

    def update(
        self,
        *,
        db_obj: FileProcessingJob,
        obj_in: FileProcessingJobUpdate | dict[str, Any],
    ) -> FileProcessingJob:
        """Apply the set fields; a status change follows the rules of :meth:`update_status`
        unless the update sets ``completed_at`` itself."""
        values = self._update_data(obj_in)
        if values.get("status") is not None:
            values = {**_status_values(db_obj, values["status"]), **values}
        return self._apply(db_obj, values)

    def increment_processed_count(self, *, id: str, count: int = 1) -> FileProcessingJob:
        """Add ``count`` (>= 0) to ``transactions_processed``, atomically in SQL."""
        if count < 0:
            raise ValueError(f"count must be >= 0 (got {count})")
        job = self.get_or_raise(id)
        self.db.execute(
            update(FileProcessingJob)
            .where(FileProcessingJob.id == id)
            .values(transactions_processed=FileProcessingJob.transactions_processed + count)
            .execution_options(synchronize_session=False)
        )
        self._commit(job)
        return job

    def mark_completed(self, *, id: str) -> FileProcessingJob:
        """Status ``completed``, ``completed_at`` now."""
        job = self.get_or_raise(id)
        return self._apply(job, {"status": FileJobStatus.COMPLETED, "completed_at": utc_now()})


__all__ = ["FileProcessingJobCRUD"]
