"""``GET /api/transactions``: stored transactions, oldest first."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from election_pipeline.api.deps import DB, Cached
from election_pipeline.api.models import Page, TransactionOut
from election_pipeline.api.params import PageQuery, Text, Time, time_range
from election_pipeline.api.routers.common import READ
from election_pipeline.db.crud import TransactionCRUD
from election_pipeline.vocabulary import OperationName

router = APIRouter(prefix="/api/transactions", tags=["transactions"], responses=READ)


@router.get("", response_model=Page[TransactionOut])
def list_transactions(
    db: DB,
    _etag: Cached,
    paging: PageQuery,
    constituency_id: Text = None,
    type: Annotated[OperationName | None, Query(description="the contract operation")] = None,
    start_time: Time = None,
    end_time: Time = None,
    block_height: Annotated[int | None, Query(ge=0, le=2**63 - 1)] = None,
) -> dict:
    """Transactions matching every filter given, ``start_time <= timestamp < end_time``, oldest first."""
    start, end = time_range(start_time, end_time)
    search = partial(
        TransactionCRUD(db).search,
        constituency_id=constituency_id,
        type=type,
        start_time=start,
        end_time=end,
        block_height=block_height,
    )
    return paging.read(search)
