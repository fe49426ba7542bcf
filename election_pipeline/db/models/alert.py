"""Alert: a detected anomaly or data problem that an observer should look at (docs/data-model.md#alert)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import DateTime, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ...vocabulary import AlertStatus
from .base import Base, TimestampMixin, UUIDMixin

if TYPE_CHECKING:
    from .constituency import Constituency


class Alert(UUIDMixin, TimestampMixin, Base):
    """An alert. ``fingerprint`` (rule, constituency and hour or window) makes it unique, so
    rematerialising updates it in place instead of duplicating it; ``status``, ``notes``
    and ``assigned_to`` belong to the analyst and are never reset by the pipeline."""

    __tablename__ = "alerts"
    __table_args__ = (
        Index("ix_alerts_constituency_id_status", "constituency_id", "status"),
        Index("ix_alerts_severity_status", "severity", "status"),
        Index("ix_alerts_detected_at", "detected_at"),
    )

    constituency_id: Mapped[str] = mapped_column(ForeignKey("constituencies.id"), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    type: Mapped[str] = mapped_column(String(60), nullable=False)
    severity: Mapped[str] = mapped_column(String(20), nullable=False)
    status: Mapped[str] = mapped_column(String(20), default=AlertStatus.ACTIVE, nullable=False)
    title: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(Text)
    details: Mapped[dict[str, Any] | None] = mapped_column(nullable=True)
    notes: Mapped[list[Any]] = mapped_column(default=list, nullable=False)
    detected_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    resolved_at: Mapped[datetime | None] = mapped_column(DateTime)
    snoozed_until: Mapped[datetime | None] = mapped_column(DateTime)
    assigned_to: Mapped[str | None] = mapped_column(String(255))

    constituency: Mapped[Constituency] = relationship(back_populates="alerts")
