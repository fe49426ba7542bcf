"""AlertEvent: the audit trail of alerts: one row per change (docs/data-model.md, "Tables added by this project")."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, UUIDMixin, utcnow


class AlertEvent(UUIDMixin, Base):
    """A change to one alert: when (``at``, UTC), who (``actor``: an API token's name, the OS
    user or ``--as NAME`` of the command line, or ``pipeline``), what kind of change
    (``action``: ``status``, ``assign``, ``snooze``, ``note``, ``update``, ``reopen``, ``wake``,
    ``refresh``, ``cleared``, ``triage``) and what changed, ``{field: {"from": old, "to": new}}``
    (a note's text is under ``note``)."""

    __tablename__ = "alert_events"
    __table_args__ = (Index("ix_alert_events_alert_id_at", "alert_id", "at"),)

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), nullable=False)
    at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    actor: Mapped[str] = mapped_column(String(255), nullable=False)
    action: Mapped[str] = mapped_column(String(30), nullable=False)
    changes: Mapped[dict[str, Any]] = mapped_column(default=dict, nullable=False)
