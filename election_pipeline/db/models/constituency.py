"""Constituency: a voting district with its own smart contract (docs/data-model.md#constituency)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from sqlalchemy import Boolean, DateTime, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...vocabulary import ConstituencyStatus, ConstituencyType, RegisteredVotersSource
from .base import Base, TimestampMixin, utcnow

if TYPE_CHECKING:
    from .alert import Alert
    from .election import Election
    from .hourly_stats import HourlyStats
    from .transaction import Transaction


class Constituency(TimestampMixin, Base):
    """A constituency, keyed by its contract id.

    A contract that no reference file knows is still recorded (``in_reference`` false,
    ``status`` ``unknown``, no election, no registered voters) so its transactions count;
    ``workspace`` names the election workspace whose store counts it when it arrived in an
    election's own drop folder (NULL: the shared workspace; docs/architecture.md).
    ``registered_voters_source`` says where ``registered_voters`` came from:
    ``reference``, ``addVotersList`` or ``none``.
    """

    __tablename__ = "constituencies"
    __table_args__ = (
        Index("ix_constituencies_election_id", "election_id"),
        Index("ix_constituencies_region", "region"),
    )

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    election_id: Mapped[str | None] = mapped_column(ForeignKey("elections.id"))
    workspace: Mapped[str | None] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    region: Mapped[str] = mapped_column(String(255), default="", nullable=False)
    type: Mapped[str] = mapped_column(String(30), default=ConstituencyType.UNKNOWN, nullable=False)
    registered_voters: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    registered_voters_source: Mapped[str] = mapped_column(
        String(20), default=RegisteredVotersSource.NONE, nullable=False
    )
    status: Mapped[str] = mapped_column(String(20), default=ConstituencyStatus.ACTIVE, nullable=False)
    in_reference: Mapped[bool] = mapped_column(Boolean, default=True, nullable=False)
    last_update_time: Mapped[datetime | None] = mapped_column(DateTime, default=utcnow)

    bulletins_issued: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    votes_cast: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    revote_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    transaction_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    rejected_count: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    participation_rate: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)
    anomaly_score: Mapped[float] = mapped_column(Float, default=0.0, nullable=False)

    election: Mapped[Election | None] = relationship(back_populates="constituencies")
    transactions: Mapped[list[Transaction]] = relationship(back_populates="constituency")
    alerts: Mapped[list[Alert]] = relationship(back_populates="constituency")
    hourly_stats: Mapped[list[HourlyStats]] = relationship(back_populates="constituency")
