"""ElectionMetrics: the election-level figures the dashboard serves (docs/data-model.md#metrics)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, Float, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, TimestampMixin


class ElectionMetrics(TimestampMixin, Base):
    """One row per election: totals, participation, how many constituencies report, are
    offline or carry critical alerts, and the dashboard summary (``summary`` JSON)."""

    __tablename__ = "election_metrics"

    election_id: Mapped[str] = mapped_column(String(36), ForeignKey("elections.id"), primary_key=True)
    total_constituencies: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    constituencies_reporting: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    constituencies_offline: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    constituencies_with_critical_alerts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    registered_voters: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    bulletins_issued: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    votes_cast: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    revote_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    transaction_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    participation_rate: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    issued_not_voted: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    first_activity: Mapped[datetime | None] = mapped_column(DateTime)
    last_activity: Mapped[datetime | None] = mapped_column(DateTime)
    open_alerts_critical: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    open_alerts_warning: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    open_alerts_info: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    summary: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
