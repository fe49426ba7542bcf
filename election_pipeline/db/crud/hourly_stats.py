"""HourlyStats CRUD (docs/data-model.md#crud)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select

from ..models import HourlyStats
from ..schemas.base import to_naive_utc
from ..schemas.hourly_stats import HourlyStatsCreate, HourlyStatsUpdate
from .base import BaseCRUD


class HourlyStatsCRUD(BaseCRUD[HourlyStats, HourlyStatsCreate, HourlyStatsUpdate]):
    """Hourly figures per constituency, in hour order."""

    model = HourlyStats
    create_schema = HourlyStatsCreate
    update_schema = HourlyStatsUpdate

    def get_by_constituency(self, *, constituency_id: str) -> list[HourlyStats]:
        """Every hour of one constituency, earliest first."""
        stmt = select(HourlyStats).where(HourlyStats.constituency_id == constituency_id).order_by(HourlyStats.hour)
        return self._list(stmt)

    def get_by_hour_range(
        self, *, start_hour: datetime, end_hour: datetime, constituency_id: str | None = None
    ) -> list[HourlyStats]:
        """Hours with ``start_hour <= hour <= end_hour`` (both ends included; naive = UTC),
        optionally of one constituency."""
        stmt = select(HourlyStats).where(
            HourlyStats.hour >= to_naive_utc(start_hour), HourlyStats.hour <= to_naive_utc(end_hour)
        )
        if constituency_id is not None:
            stmt = stmt.where(HourlyStats.constituency_id == constituency_id)
        return self._list(stmt.order_by(HourlyStats.hour, HourlyStats.constituency_id))

    def get_latest_for_constituency(self, *, constituency_id: str) -> HourlyStats | None:
        """The most recent hour of one constituency, or ``None``."""
        stmt = (
            select(HourlyStats)
            .where(HourlyStats.constituency_id == constituency_id)
            .order_by(HourlyStats.hour.desc())
            .limit(1)
        )
        return self.db.scalars(stmt).first()


__all__ = ["HourlyStatsCRUD"]
