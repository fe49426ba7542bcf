"""The notifications outbox: one row per alert state change worth telling people about, and
one row per channel and target it is delivered to (docs/data-model.md, "Tables added by this
project"; README, "Notifications")."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from .base import Base, TimestampMixin, UUIDMixin, utcnow


class AlertNotification(UUIDMixin, Base):
    """An alert's state change to notify (the outbox), written by the ``alerts`` step in the
    same transaction as the change itself: ``change`` is ``created``, ``reopened`` or
    ``escalated`` (its severity rose while it was open), ``severity`` the alert's severity
    then (``previous_severity`` before an escalation), ``reason`` why it reopened or rose.

    ``change_key`` makes it unique (``created:<alert id>``, ``reopened:<event id>``,
    ``escalated:<event id>``), so a re-run cannot record the same change twice. The
    ``alert_notifications`` step looks at each row once (``dispatched_at``): it plans one
    delivery per channel and target configured then, or records why it sends nothing
    (``skip_reason``: below ``ELECTION_NOTIFY_MIN_SEVERITY``, no channel configured). The id is
    the idempotency key the receivers get."""

    __tablename__ = "alert_notifications"
    __table_args__ = (Index("ix_alert_notifications_dispatched_at", "dispatched_at"),)

    alert_id: Mapped[str] = mapped_column(ForeignKey("alerts.id"), nullable=False)
    change_key: Mapped[str] = mapped_column(String(120), unique=True, nullable=False)
    change: Mapped[str] = mapped_column(String(20), nullable=False)
    severity: Mapped[str] = mapped_column(String(20), nullable=False)
    previous_severity: Mapped[str | None] = mapped_column(String(20))
    reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(DateTime, default=utcnow, nullable=False)
    dispatched_at: Mapped[datetime | None] = mapped_column(DateTime)
    skip_reason: Mapped[str | None] = mapped_column(String(255))


class NotificationDelivery(UUIDMixin, TimestampMixin, Base):
    """One notification to one target: a webhook (``channel`` ``webhook``; ``target`` names
    its host only, ``target_key`` is the SHA-256 of its URL, which is a secret and stored
    nowhere) or the email to every recipient (``email``; ``target`` the recipients).

    ``status``: ``pending`` (not tried yet), ``failed`` (the last attempt failed; tried again
    from ``next_attempt_at``, by a later run) or ``sent`` (at ``sent_at``; never sent again).
    ``attempts`` counts every try, ``last_error`` says why the last one failed.
    ``lease_until`` keeps two overlapping runs from sending the same delivery."""

    __tablename__ = "notification_deliveries"
    __table_args__ = (
        UniqueConstraint("notification_id", "channel", "target_key", name="uq_notification_deliveries_target"),
        Index("ix_notification_deliveries_status", "status"),
    )

    notification_id: Mapped[str] = mapped_column(ForeignKey("alert_notifications.id"), nullable=False)
    channel: Mapped[str] = mapped_column(String(20), nullable=False)
    target_key: Mapped[str] = mapped_column(String(64), nullable=False)
    target: Mapped[str] = mapped_column(Text, nullable=False)
    status: Mapped[str] = mapped_column(String(20), default="pending", nullable=False)
    attempts: Mapped[int] = mapped_column(Integer, default=0, nullable=False)
    last_error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None] = mapped_column(DateTime)
    lease_until: Mapped[datetime | None] = mapped_column(DateTime)
    sent_at: Mapped[datetime | None] = mapped_column(DateTime)
