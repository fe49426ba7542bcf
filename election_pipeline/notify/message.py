"""What a notification says: the webhook's JSON body and the email, built from the alert as it
stands when it is sent and from the change that is notified."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from election_pipeline.db.models import Alert, AlertNotification, Constituency, Election

#: What each kind of change is called in a message.
CHANGE_TITLES = {"created": "New alert", "reopened": "Alert reopened", "escalated": "Alert escalated"}
#: The email header carrying the idempotency key (the outbox row's id).
IDEMPOTENCY_HEADER = "X-Election-Idempotency-Key"
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def one_line(text: str | None) -> str:
    """``text`` without line breaks or control characters (a title comes from the data)."""
    return _CONTROL.sub(" ", text or "").strip()


def _slack_escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _iso(moment: datetime | None) -> str | None:
    return moment.isoformat() + "Z" if moment else None


@dataclass(frozen=True)
class Message:
    """One notification, ready for every channel: ``key`` is the idempotency key (the outbox
    row's id), ``body`` the webhook's JSON body, ``subject`` and ``text`` the email's."""

    key: str
    body: dict[str, Any]
    subject: str
    text: str

    def email(self, sender: str, recipients: list[str]) -> EmailMessage:
        """The email to every recipient, with the idempotency key in a header and in its
        Message-ID (a receiver can drop a second copy)."""
        msg = EmailMessage()
        msg["Subject"] = self.subject
        msg["From"] = sender
        msg["To"] = ", ".join(recipients)
        msg["Date"] = format_datetime(datetime.now().astimezone())
        msg["Message-ID"] = make_msgid(idstring=self.key, domain="election-pipeline")
        msg[IDEMPOTENCY_HEADER] = self.key
        msg.set_content(self.text)
        return msg


def alert_url(public_url: str, alert_id: str) -> str:
    """The alert's page: ``<ELECTION_PUBLIC_URL>/alerts/<id>``."""
    return f"{public_url.rstrip('/')}/alerts/{alert_id}"


def build_message(db: Session, notification: AlertNotification, public_url: str) -> Message:
    """The message for ``notification``, with the alert's fields as they are now."""
    alert = db.get(Alert, notification.alert_id)
    if alert is None:  # pragma: no cover - the foreign key keeps the alert
        raise LookupError(f"alert {notification.alert_id} not found")
    row = db.execute(
        select(Constituency.name, Constituency.region, Election.id, Election.name)
        .select_from(Constituency)
        .outerjoin(Election, Election.id == Constituency.election_id)
        .where(Constituency.id == alert.constituency_id)
    ).first()
    constituency_name, region, election_id, election_name = row if row else (None, None, None, None)
    details = alert.details or {}
    url = alert_url(public_url, alert.id)
    fields: dict[str, Any] = {
        "id": alert.id,
        "severity": alert.severity,
        "rule": alert.type,
        "title": alert.title,
        "description": alert.description,
        "status": alert.status,
        "constituency_id": alert.constituency_id,
        "constituency_name": constituency_name,
        "region": region,
        "election_id": election_id,
        "election_name": election_name,
        "detected_at": _iso(alert.detected_at),
        "window_start": details.get("window_start"),
        "window_end": details.get("window_end"),
        "hours": list(details.get("hours") or [])[:48],
        "evidence": {
            "statistic": details.get("statistic"),
            "expected": details.get("expected"),
            "threshold": details.get("threshold"),
            "worse_when": details.get("worse_when"),
            "transaction_ids": list(details.get("evidence_tx_ids") or [])[:20],
        },
        "assigned_to": alert.assigned_to,
    }
    change = {
        "kind": notification.change,
        "severity": notification.severity,
        "previous_severity": notification.previous_severity,
        "reason": notification.reason,
        "at": _iso(notification.created_at),
    }
    what = CHANGE_TITLES.get(notification.change, notification.change)
    if notification.change == "escalated":
        what = f"Alert escalated to {notification.severity}"
    title = one_line(alert.title)
    where = one_line(constituency_name or alert.constituency_id)
    if election_name:
        where += f", {one_line(election_name)}"
    reason = f" ({one_line(notification.reason)})" if notification.reason else ""
    text = (
        f"[{notification.severity.upper()}] {what}{_slack_escape(reason)}: {_slack_escape(title)} "
        f"({_slack_escape(alert.type)}, {_slack_escape(where)}) <{url}|Open the alert>"
    )
    body = {"text": text, "idempotency_key": notification.id, "url": url, "change": change, "alert": fields}
    subject = f"[{notification.severity}] {what}: {title}"[:250]
    lines = [
        f"{what}{reason}: {title}",
        "",
        f"Severity:      {alert.severity}",
        f"Rule:          {alert.type}",
        f"Status:        {alert.status}",
        f"Constituency:  {where} ({alert.constituency_id})",
        f"Detected at:   {fields['detected_at']} (UTC)",
    ]
    if fields["window_start"]:
        lines.append(f"Window:        {fields['window_start']} to {fields['window_end']} (UTC)")
    for label, key in (("Statistic", "statistic"), ("Expected", "expected"), ("Threshold", "threshold")):
        if fields["evidence"][key] is not None:
            lines.append(f"{label + ':':<15}{fields['evidence'][key]}")
    if fields["evidence"]["transaction_ids"]:
        lines.append(f"Transactions:  {', '.join(fields['evidence']['transaction_ids'])}")
    lines += ["", one_line(alert.description) if alert.description else "", "", f"Open the alert: {url}"]
    lines += ["", f"Idempotency key: {notification.id}"]
    return Message(key=notification.id, body=body, subject=one_line(subject), text="\n".join(lines) + "\n")
