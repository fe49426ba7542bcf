"""HourlyStats: one constituency's figures for one UTC hour (docs/data-model.md#hourlystats)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import DateTime, Float, ForeignKey, Index, Integer
from sqlalchemy.orm import Mapped, mapped_column, relationship

from .base import Base, TimestampMixin, UUIDMixin

if TYPE_CHECKING:
    from .constituency import Constituency
    from .election import Election


class HourlyStats(UUIDMixin, TimestampMixin, Base):
    """Figures of the hour ``[hour, hour + 1h)`` (UTC) for one constituency.

    ``votes_cast`` counts voter keys whose *first* accepted vote fell in this hour;
    ``revote_count`` the later accepted votes of keys that had voted before.
    ``participation_rate`` is cumulative: distinct voters up to the end of this hour over
    registered voters, in percent. ``bulletin_velocity``/``vote_velocity`` are per minute,
    averaged over the hour. ``timestamp`` is the instant of the hour's last transaction.
    """

    __tablename__ = "hourly_stats"
    __table_args__ = (
        Index("ix_hourly_stats_constituency_id_hour", "constituency_id", "hour", unique=True),
        Index("ix_hourly_stats_election_id_hour", "election_id", "hour"),
        Index("ix_hourly_stats_updated_at", "updated_at"),  # the API's data version: max(updated_at)
    )

    constituency_id: Mapped[str] = mapped_column(ForeignKey("constituencies.id"), nullable=False)
    election_id: Mapped[str | None] = mapped_column(ForeignKey("elections.id"))
    hour: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    timestamp: Mapped[datetime | None] = mapped_column(DateTime)
    bulletins_issued: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    votes_cast: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    revote_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    transaction_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cumulative_bulletins: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    cumulative_votes: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    bulletin_velocity: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    vote_velocity: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    participation_rate: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    anomaly_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)

    constituency: Mapped[Constituency] = relationship(back_populates="hourly_stats")
    election: Mapped[Election | None] = relationship(back_populates="hourly_stats")
