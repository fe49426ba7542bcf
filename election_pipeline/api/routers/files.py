"""``GET /api/file-jobs``: what happened to each input file, the most recent first."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from election_pipeline.api.deps import DB, Cached
from election_pipeline.api.models import FileJobOut, Page
from election_pipeline.api.params import PageQuery
from election_pipeline.api.routers.common import READ
from election_pipeline.db.crud import FileProcessingJobCRUD
from election_pipeline.vocabulary import FileJobStatusName

router = APIRouter(prefix="/api/file-jobs", tags=["files"], responses=READ)


@router.get("", response_model=Page[FileJobOut])
def list_file_jobs(
    db: DB,
    _etag: Cached,
    paging: PageQuery,
    status: Annotated[FileJobStatusName | None, Query()] = None,
) -> dict:
    """Processing attempts of input files (of one status, if given), the most recently started first."""
    return paging.read(partial(FileProcessingJobCRUD(db).list_jobs, status=status))
