"""Election: an election event holding constituencies (docs/data-model.md#election)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...vocabulary import ElectionStatus
from .base import Base, TimestampMixin, UUIDMixin

if TYPE_CHECKING:
    from .constituency import Constituency
    from .hourly_stats import HourlyStats


class Election(UUIDMixin, TimestampMixin, Base):
    """An election. ``start_date``/``end_date`` (UTC) bound its voting window;
    ``timezone`` is the IANA zone used for local-time rules."""

    __tablename__ = "elections"

    name: Mapped[str] = mapped_column(String(255), nullable=False)
    country: Mapped[str | None] = mapped_column(String(100))
    start_date: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    end_date: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    status: Mapped[str] = mapped_column(String(20), default=ElectionStatus.ACTIVE, nullable=False)
    type: Mapped[str | None] = mapped_column(String(30))
    description: Mapped[str | None] = mapped_column(Text)
    timezone: Mapped[str] = mapped_column(String(64), default="UTC", nullable=False)
    total_constituencies: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    constituencies: Mapped[list[Constituency]] = relationship(back_populates="election")
    hourly_stats: Mapped[list[HourlyStats]] = relationship(back_populates="election")
