"""Constituency CRUD (docs/data-model.md#crud)."""

from __future__ import annotations

from sqlalchemy import select

from ..models import Constituency
from ..schemas.base import check_choice, utc_now
from ..schemas.constituency import (
    CONSTITUENCY_STATUSES,
    CONSTITUENCY_TYPES,
    ConstituencyCreate,
    ConstituencyUpdate,
)
from .base import BaseCRUD


def participation_rate(votes: int, registered: int) -> float:
    """``votes / registered * 100``; 0 when there are no registered voters."""
    return votes / registered * 100 if registered > 0 else 0.0


class ConstituencyCRUD(BaseCRUD[Constituency, ConstituencyCreate, ConstituencyUpdate]):
    """Constituencies, keyed by contract id."""

    model = Constituency
    create_schema = ConstituencyCreate
    update_schema = ConstituencyUpdate

    def get_by_election(self, *, election_id: str) -> list[Constituency]:
        """Constituencies of one election, by name."""
        stmt = (
            select(Constituency)
            .where(Constituency.election_id == election_id)
            .order_by(Constituency.name, Constituency.id)
        )
        return self._list(stmt)

    def get_by_region(self, *, region: str) -> list[Constituency]:
        """Constituencies of one region, by name."""
        stmt = select(Constituency).where(Constituency.region == region).order_by(Constituency.name, Constituency.id)
        return self._list(stmt)

    def get_by_status(self, *, status: str) -> list[Constituency]:
        """Constituencies with this status (``ValueError`` for an unknown status)."""
        check_choice(status, CONSTITUENCY_STATUSES, "status")
        stmt = select(Constituency).where(Constituency.status == status).order_by(Constituency.name, Constituency.id)
        return self._list(stmt)

    def get_by_type(self, *, type: str) -> list[Constituency]:
        """Constituencies of this type (``ValueError`` for an unknown type)."""
        check_choice(type, CONSTITUENCY_TYPES, "type")
        stmt = select(Constituency).where(Constituency.type == type).order_by(Constituency.name, Constituency.id)
        return self._list(stmt)

    def search(
        self,
        *,
        election_id: str | None = None,
        region: str | None = None,
        status: str | None = None,
        type: str | None = None,
        skip: int = 0,
        limit: int | None = 100,
    ) -> list[Constituency]:
        """Constituencies matching every filter given (``ValueError`` for an unknown status
        or type), by name then id; ``limit`` of them after the first ``skip``."""
        check_choice(status, CONSTITUENCY_STATUSES, "status")
        check_choice(type, CONSTITUENCY_TYPES, "type")
        stmt = select(Constituency)
        for column, value in (
            (Constituency.election_id, election_id),
            (Constituency.region, region),
            (Constituency.status, status),
            (Constituency.type, type),
        ):
            if value is not None:
                stmt = stmt.where(column == value)
        stmt = stmt.order_by(Constituency.name, Constituency.id).offset(skip)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._list(stmt)

    def update_metrics(self, *, id: str, bulletins: int, votes: int) -> Constituency:
        """Set bulletins issued and votes cast, recompute the participation rate
        (votes / registered voters x 100, 0 without registered voters) and stamp
        ``last_update_time``. :class:`NotFoundError` for an unknown id."""
        if bulletins < 0 or votes < 0:
            raise ValueError(f"bulletins and votes must be >= 0 (got {bulletins}, {votes})")
        obj = self.get_or_raise(id)
        values = {
            "bulletins_issued": bulletins,
            "votes_cast": votes,
            "participation_rate": participation_rate(votes, obj.registered_voters or 0),
            "last_update_time": utc_now(),
        }
        return self._apply(obj, values)


__all__ = ["ConstituencyCRUD", "participation_rate"]
