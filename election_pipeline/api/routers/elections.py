"""Elections and constituencies: ``GET /api/elections[/{id}]``, ``GET /api/constituencies[/{id}]``."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query

from election_pipeline.api.deps import DB, Cached
from election_pipeline.api.models import ConstituencyOut, ElectionOut, Page
from election_pipeline.api.params import Id, PageQuery, Text
from election_pipeline.api.routers.common import READ
from election_pipeline.db.crud import ConstituencyCRUD, ElectionCRUD
from election_pipeline.vocabulary import ConstituencyStatusName, ConstituencyTypeName

router = APIRouter(prefix="/api/elections", tags=["elections"], responses=READ)
constituencies = APIRouter(prefix="/api/constituencies", tags=["constituencies"], responses=READ)


@router.get("", response_model=Page[ElectionOut])
def list_elections(db: DB, _etag: Cached, paging: PageQuery) -> dict:
    """Every election, by id."""
    return paging.read(ElectionCRUD(db).get_multi)


@router.get("/{election_id}", response_model=ElectionOut)
def get_election(election_id: Id, db: DB, _etag: Cached) -> object:
    """One election."""
    return ElectionCRUD(db).get_or_raise(election_id)


@constituencies.get("", response_model=Page[ConstituencyOut])
def list_constituencies(
    db: DB,
    _etag: Cached,
    paging: PageQuery,
    election_id: Text = None,
    region: Text = None,
    status: Annotated[ConstituencyStatusName | None, Query()] = None,
    type: Annotated[ConstituencyTypeName | None, Query()] = None,
) -> dict:
    """Constituencies matching every filter given, by name."""
    return paging.read(
        partial(ConstituencyCRUD(db).search, election_id=election_id, region=region, status=status, type=type)
    )


@constituencies.get("/{constituency_id}", response_model=ConstituencyOut)
def get_constituency(constituency_id: Id, db: DB, _etag: Cached) -> object:
    """One constituency (its contract id) with its running figures."""
    return ConstituencyCRUD(db).get_or_raise(constituency_id)
