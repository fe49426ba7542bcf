"""Election CRUD (docs/data-model.md#crud)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select

from ...vocabulary import ElectionStatus
from ..models import Election
from ..schemas.base import local_to_naive_utc, to_naive_utc
from ..schemas.election import ElectionCreate, ElectionUpdate, check_election_window
from .base import BaseCRUD


class ElectionCRUD(BaseCRUD[Election, ElectionCreate, ElectionUpdate]):
    """Elections. Naive input dates are local time in the election's time zone."""

    model = Election
    create_schema = ElectionCreate
    update_schema = ElectionUpdate

    def get_by_name(self, *, name: str) -> Election | None:
        """The election with this name (the oldest, if several share it)."""
        stmt = select(Election).where(Election.name == name).order_by(Election.created_at).limit(1)
        return self.db.scalars(stmt).first()

    def get_active_elections(self) -> list[Election]:
        """Elections whose status is ``active``, earliest start first."""
        stmt = select(Election).where(Election.status == ElectionStatus.ACTIVE).order_by(Election.start_date)
        return self._list(stmt)

    def get_by_date_range(self, *, start_date: datetime, end_date: datetime) -> list[Election]:
        """Elections whose voting window overlaps ``[start_date, end_date]``.

        Naive arguments are UTC; aware ones are converted.
        """
        start, end = to_naive_utc(start_date), to_naive_utc(end_date)
        stmt = (
            select(Election).where(Election.start_date <= end, Election.end_date >= start).order_by(Election.start_date)
        )
        return self._list(stmt)

    def update(self, *, db_obj: Election, obj_in: ElectionUpdate | dict[str, Any]) -> Election:
        """Apply the set fields. Naive dates without a ``timezone`` in the update are local
        time in the stored zone. The resulting window must still end after it starts."""
        if isinstance(obj_in, dict):
            obj_in = ElectionUpdate.model_validate(obj_in, context={"timezone": db_obj.timezone})
        values = obj_in.model_dump(exclude_unset=True)
        for name in obj_in.pending_local_dates:
            values[name] = local_to_naive_utc(values[name], db_obj.timezone)
        check_election_window(values.get("start_date", db_obj.start_date), values.get("end_date", db_obj.end_date))
        return self._apply(db_obj, values)


__all__ = ["ElectionCRUD"]
