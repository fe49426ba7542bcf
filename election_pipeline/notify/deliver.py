"""Delivering the outbox: which alert changes are sent where, retries, and the records that
make each delivery happen exactly once.

:func:`deliver_notifications` does two things, each committed row by row:

1. **Plans** every outbox row it has not looked at yet (``dispatched_at`` empty): a change at
   or above the minimum severity gets one ``notification_deliveries`` row per target
   configured *now* (each webhook, and the email when SMTP is set up); a change below it, or
   one recorded while no channel was configured, is marked with the reason and never sent.
   So turning notifications on later does not send the alerts of the past, and a webhook
   added later gets the changes from then on.
2. **Sends** every delivery not sent yet whose next attempt is due, oldest first: up to
   ``1 + retries`` tries with exponential backoff (``backoff``, ``2 × backoff`` ...). A
   success is recorded (``sent``, ``sent_at``) right after it, before anything else is sent,
   and a sent delivery is never sent again. A delivery that still fails is ``failed``, with
   its error and the time from which a later run tries it again (the wait doubles with each
   failed try, up to ``max_backoff``); nothing is given up. Once a target has failed its
   tries, its other deliveries wait for the next run, so a receiver that is down costs one
   series of tries per run, not one per message.

Two runs at once cannot send the same delivery: each takes a lease on a delivery (a
conditional update) before sending it. The one gap left is a process killed between a
receiver's answer and the commit of ``sent``: the message is then sent again by the next
run, with the same idempotency key (the outbox row's id: ``idempotency_key`` in the
webhook's body and its ``Idempotency-Key`` header, ``X-Election-Idempotency-Key`` and the
Message-ID of the email), so a receiver can drop the copy.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine, or_, select, update
from sqlalchemy.orm import Session

from election_pipeline.db.models import AlertNotification, NotificationDelivery, utcnow
from election_pipeline.settings import webhook_label
from election_pipeline.vocabulary import SEVERITY_RANK

from .channels import DeliveryError, SmtpConfig, send_email, send_webhook
from .message import Message, build_message, one_line

PENDING, FAILED, SENT = "pending", "failed", "sent"
#: The most deliveries one run sends (the rest wait for the next run).
MAX_PER_RUN = 500


@dataclass(frozen=True)
class NotifyConfig:
    """The notification settings (``ELECTION_NOTIFY_*``, ``ELECTION_ALERT_WEBHOOK_URLS``,
    ``ELECTION_SMTP_*``, ``ELECTION_PUBLIC_URL``) as the delivery needs them."""

    public_url: str = "http://127.0.0.1:8000"
    min_severity: str = "critical"
    webhook_urls: tuple[str, ...] = field(default=(), repr=False)
    smtp: SmtpConfig | None = field(default=None, repr=False)
    timeout: float = 5.0
    retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 900.0

    def targets(self) -> list[Target]:
        """Every target configured: each webhook (a URL listed twice counts once), then the email."""
        found: dict[tuple[str, str], Target] = {}
        for url in self.webhook_urls:
            key = hashlib.sha256(url.encode()).hexdigest()
            found.setdefault(("webhook", key), Target("webhook", key, webhook_label(url), url=url))
        if self.smtp is not None and self.smtp.host and self.smtp.recipients:
            recipients = sorted(self.smtp.recipients)
            key = hashlib.sha256(f"{self.smtp.host}:{self.smtp.port}|{','.join(recipients)}".encode()).hexdigest()
            found[("email", key)] = Target("email", key, ", ".join(recipients), smtp=self.smtp)
        return list(found.values())


@dataclass(frozen=True)
class Target:
    """Where one delivery goes: a webhook (``url``, a secret) or the email (``smtp``)."""

    channel: str
    key: str
    label: str
    url: str = field(default="", repr=False)
    smtp: SmtpConfig | None = field(default=None, repr=False)

    def send(self, message: Message, timeout: float) -> str | None:
        """Send once; a warning (recipients refused) or None; :class:`DeliveryError` on failure."""
        if self.channel == "webhook":
            send_webhook(self.url, message, timeout)
            return None
        assert self.smtp is not None
        return send_email(self.smtp, message, timeout)


@dataclass
class DeliveryRecord:
    """One delivery tried in this run (or owed), for the materialisation's metadata."""

    alert_id: str
    change: str
    severity: str
    channel: str
    target: str
    status: str
    attempts: int
    error: str | None = None
    next_attempt_at: datetime | None = None
    sent_at: datetime | None = None


@dataclass
class DeliverySummary:
    """What a call of :func:`deliver_notifications` did."""

    planned: int = 0
    skipped_below_severity: int = 0
    skipped_no_channel: int = 0
    sent: list[DeliveryRecord] = field(default_factory=list)
    failed: list[DeliveryRecord] = field(default_factory=list)
    #: Deliveries not sent after this run (failed now or before, not due yet, target down,
    #: target no longer configured), oldest first.
    owed: list[DeliveryRecord] = field(default_factory=list)
    #: Targets of owed deliveries that are no longer configured (their label).
    unconfigured_targets: list[str] = field(default_factory=list)
    targets: list[str] = field(default_factory=list)


def _rank(severity: str | None) -> int:
    return SEVERITY_RANK.get(severity or "", -1)


def plan(db: Session, config: NotifyConfig, targets: list[Target], now: datetime) -> DeliverySummary:
    """Step 1: plan the outbox rows not looked at yet (see the module docstring)."""
    summary = DeliverySummary()
    ids = db.scalars(
        select(AlertNotification.id)
        .where(AlertNotification.dispatched_at.is_(None))
        .order_by(AlertNotification.created_at, AlertNotification.id)
    ).all()
    for notification_id in ids:
        notification = db.get(AlertNotification, notification_id)
        assert notification is not None
        if _rank(notification.severity) < _rank(config.min_severity):
            reason = f"below ELECTION_NOTIFY_MIN_SEVERITY ({notification.severity} < {config.min_severity})"
        elif not targets:
            reason = "no notification channel was configured"
        else:
            reason = None
        # Claim the row: another run planning at the same time finds it taken.
        claimed = db.execute(
            update(AlertNotification)
            .where(AlertNotification.id == notification_id, AlertNotification.dispatched_at.is_(None))
            .values(dispatched_at=now, skip_reason=reason)
            .execution_options(synchronize_session=False)
        )
        if claimed.rowcount != 1:  # type: ignore[attr-defined]
            db.rollback()
            continue
        if reason is None:
            for target in targets:
                db.add(
                    NotificationDelivery(
                        notification_id=notification_id,
                        channel=target.channel,
                        target_key=target.key,
                        target=target.label,
                        status=PENDING,
                        attempts=0,
                        next_attempt_at=now,
                    )
                )
            summary.planned += 1
        elif reason.startswith("below"):
            summary.skipped_below_severity += 1
        else:
            summary.skipped_no_channel += 1
        db.commit()
    return summary


def _record(d: NotificationDelivery, n: AlertNotification) -> DeliveryRecord:
    return DeliveryRecord(
        alert_id=n.alert_id,
        change=n.change,
        severity=n.severity,
        channel=d.channel,
        target=d.target,
        status=d.status,
        attempts=d.attempts,
        error=d.last_error,
        next_attempt_at=d.next_attempt_at,
        sent_at=d.sent_at,
    )


def _lease_seconds(config: NotifyConfig) -> float:
    waits = sum(config.backoff * 2**i for i in range(config.retries))
    return (config.retries + 1) * (config.timeout + 5) + waits + 60


def deliver_notifications(
    engine: Engine,
    config: NotifyConfig,
    *,
    clock: Callable[[], datetime] = utcnow,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> DeliverySummary:
    """Plan the new outbox rows, then send what is due (see the module docstring)."""
    say = log or (lambda _text: None)
    targets = config.targets()
    by_key = {(t.channel, t.key): t for t in targets}
    with Session(engine, expire_on_commit=False) as db:
        summary = plan(db, config, targets, clock())
        summary.targets = [f"{t.channel}: {t.label}" for t in targets]
        now = clock()
        due = db.execute(
            select(NotificationDelivery, AlertNotification)
            .join(AlertNotification, AlertNotification.id == NotificationDelivery.notification_id)
            .where(
                NotificationDelivery.status != SENT,
                or_(NotificationDelivery.next_attempt_at.is_(None), NotificationDelivery.next_attempt_at <= now),
                or_(NotificationDelivery.lease_until.is_(None), NotificationDelivery.lease_until < now),
            )
            .order_by(NotificationDelivery.created_at, NotificationDelivery.id)
            .limit(MAX_PER_RUN)
        ).all()
        down: set[tuple[str, str]] = set()
        for delivery, notification in due:
            target = by_key.get((delivery.channel, delivery.target_key))
            if target is None or (delivery.channel, delivery.target_key) in down:
                continue
            lease_from = clock()
            taken = db.execute(
                update(NotificationDelivery)
                .where(
                    NotificationDelivery.id == delivery.id,
                    NotificationDelivery.status != SENT,
                    or_(NotificationDelivery.lease_until.is_(None), NotificationDelivery.lease_until < lease_from),
                )
                .values(lease_until=lease_from + timedelta(seconds=_lease_seconds(config)))
                .execution_options(synchronize_session=False)
            )
            db.commit()
            if taken.rowcount != 1:  # type: ignore[attr-defined]
                continue  # another run has it
            message = build_message(db, notification, config.public_url)
            attempts, error, warning = 0, None, None
            for attempt in range(config.retries + 1):
                if attempt:
                    sleep(config.backoff * 2 ** (attempt - 1))
                attempts += 1
                try:
                    warning = target.send(message, config.timeout)
                    error = None
                    break
                except DeliveryError as exc:
                    error = one_line(str(exc))[:1000]
            db.refresh(delivery)
            delivery.attempts += attempts
            delivery.lease_until = None
            if error is None:
                delivery.status, delivery.sent_at, delivery.last_error = SENT, clock(), warning
                delivery.next_attempt_at = None
                db.commit()
                summary.sent.append(_record(delivery, notification))
                say(
                    f"sent {notification.change} {notification.severity} alert {notification.alert_id} "
                    f"to {delivery.channel} {delivery.target}"
                )
            else:
                wait = min(config.max_backoff, config.backoff * 2**delivery.attempts)
                delivery.status, delivery.last_error = FAILED, error
                delivery.next_attempt_at = clock() + timedelta(seconds=wait)
                db.commit()
                down.add((delivery.channel, delivery.target_key))
                summary.failed.append(_record(delivery, notification))
                say(
                    f"could not send alert {notification.alert_id} to {delivery.channel} {delivery.target} "
                    f"after {attempts} tries: {error}"
                )
        owed = db.execute(
            select(NotificationDelivery, AlertNotification)
            .join(AlertNotification, AlertNotification.id == NotificationDelivery.notification_id)
            .where(NotificationDelivery.status != SENT)
            .order_by(NotificationDelivery.created_at, NotificationDelivery.id)
        ).all()
        summary.owed = [_record(d, n) for d, n in owed]
        summary.unconfigured_targets = sorted(
            {f"{d.channel}: {d.target}" for d, _ in owed if (d.channel, d.target_key) not in by_key}
        )
    return summary
