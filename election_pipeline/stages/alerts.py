"""Alerts stage: detection findings -> the ``alerts`` table, without losing the analyst's work.

One alert per fingerprint (rule, constituency, hour or window). On every run:

* a new finding creates an ``active`` alert;
* a known one has its severity, title, description and details refreshed in place, while
  ``status``, ``notes`` and ``assigned_to`` stay as the analyst left them;
* a ``resolved`` alert whose condition got worse than when it was resolved (higher
  severity, or its statistic moved the bad way: up for most rules, down for
  ``low_participation``) reopens as ``active``, with a note saying why;
* a ``snoozed`` alert stays quiet until ``snoozed_until`` has passed, then becomes
  ``active`` again with a note (whether or not its condition is still present);
* an alert whose condition is no longer seen is kept, with ``details.condition_present``
  false and the time it cleared.

Each of these changes to a known alert is recorded in its history (``alert_events``) by
``pipeline``: ``refresh`` (severity, title, description or the rule's statistic changed),
``reopen``, ``wake`` and ``cleared``, with what changed from what to what.

The changes people are notified of are written to the notifications outbox
(``alert_notifications``) in the same transaction: the creation of an alert, its reopening,
and a rise of its severity while it is open (``active`` or ``investigating``; a snoozed
alert stays quiet). One row per change, keyed by the alert (creation) or by the change's
history event, so running again with nothing new writes nothing. Which of them are sent, and
where, is decided when they are sent (``election_pipeline/notify/``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from election_pipeline.db.models import Alert, AlertEvent, AlertNotification, utcnow
from election_pipeline.db.models.base import new_uuid
from election_pipeline.db.schemas.alert import make_note
from election_pipeline.detection.findings import Finding
from election_pipeline.vocabulary import OPEN_STATUSES, SEVERITY_RANK, AlertStatus, Severity
from election_pipeline.workspaces import EVERYTHING, Scope

PIPELINE_AUTHOR = "pipeline"


@dataclass
class AlertsSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    reopened: int = 0
    woken: int = 0
    cleared: int = 0
    #: State changes written to the notifications outbox (created, reopened, escalated).
    notifications: int = 0
    by_severity: Counter = field(default_factory=Counter)


def _baseline(alert: Alert) -> dict[str, Any]:
    """What the analyst saw when resolving: kept in ``details.resolved_baseline`` while the
    alert stays resolved (taken from the details of the first run after the resolution)."""
    details = alert.details or {}
    return details.get("resolved_baseline") or {
        "severity": alert.severity,
        "statistic": details.get("statistic"),
        "worse_when": details.get("worse_when", "higher"),
    }


def worse_reason(baseline: dict[str, Any], finding: Finding) -> str | None:
    """Why ``finding`` is worse than ``baseline`` (severity and statistic), or None."""
    old_severity = baseline.get("severity") or Severity.INFO
    if SEVERITY_RANK[finding.severity] > SEVERITY_RANK.get(old_severity, 0):
        return f"severity rose from {old_severity} to {finding.severity}"
    old_stat = baseline.get("statistic")
    if old_stat is None or finding.statistic is None:
        return None
    old_stat, new_stat = float(old_stat), float(finding.statistic)
    tolerance = 1e-9 * max(1.0, abs(old_stat))
    if finding.higher_is_worse and new_stat > old_stat + tolerance:
        return f"its statistic rose from {old_stat:g} to {new_stat:g}"
    if not finding.higher_is_worse and new_stat < old_stat - tolerance:
        return f"its statistic fell from {old_stat:g} to {new_stat:g}"
    return None


def _note(text: str, now: datetime) -> dict[str, Any]:
    return make_note(text, PIPELINE_AUTHOR, now)


def _event(alert: Alert, action: str, changes: dict[str, Any]) -> AlertEvent:
    """A change the pipeline made to ``alert``, for its history: stamped with the wall clock
    (when it was recorded), whatever instant the rules were evaluated at."""
    return AlertEvent(
        id=new_uuid(), alert_id=alert.id, at=utcnow(), actor=PIPELINE_AUTHOR, action=action, changes=changes
    )


def _outbox(
    alert_id: str, change: str, key: str, severity: str, previous: str | None = None, reason: str | None = None
) -> AlertNotification:
    """A state change of an alert for the notifications outbox, unique by ``key``."""
    return AlertNotification(
        alert_id=alert_id,
        change_key=f"{change}:{key}",
        change=change,
        severity=severity,
        previous_severity=previous,
        reason=reason,
        created_at=utcnow(),
    )


def _change(old: Any, new: Any) -> dict[str, Any]:
    return {"from": old.isoformat() if isinstance(old, datetime) else old, "to": new}


def publish_alerts(
    engine: Engine, findings: list[Finding], now: datetime | None = None, scope: Scope = EVERYTHING
) -> AlertsSummary:
    """Create, refresh, reopen or wake alerts from ``findings`` (see the module docstring).
    Only the alerts of ``scope``'s constituencies are compared with the findings: an alert of
    another workspace's election is never marked as cleared by this run."""
    now = now or utcnow()
    summary = AlertsSummary()
    seen: set[str] = set()
    outbox: list[AlertNotification] = []
    with Session(engine, expire_on_commit=False) as db:
        existing = {a.fingerprint: a for a in db.scalars(select(Alert).where(scope.owns(Alert.constituency_id)))}
        for f in findings:
            if f.fingerprint in seen:
                continue
            seen.add(f.fingerprint)
            summary.by_severity[f.severity] += 1
            details = f.details() | {"condition_present": True}
            alert = existing.get(f.fingerprint)
            if alert is None:
                alert_id = new_uuid()
                db.add(
                    Alert(
                        id=alert_id,
                        constituency_id=f.constituency_id,
                        fingerprint=f.fingerprint,
                        type=f.rule,
                        severity=f.severity,
                        status=AlertStatus.ACTIVE,
                        title=f.title,
                        description=f.description,
                        details=details,
                        notes=[],
                        detected_at=now,
                    )
                )
                outbox.append(_outbox(alert_id, "created", alert_id, f.severity))
                summary.created += 1
                continue
            notes = list(alert.notes or [])
            reopened = False
            if alert.status == AlertStatus.RESOLVED:
                baseline = _baseline(alert)
                reason = worse_reason(baseline, f)
                if reason:
                    reopen = _event(
                        alert,
                        "reopen",
                        {
                            "status": _change(alert.status, AlertStatus.ACTIVE.value),
                            "resolved_at": _change(alert.resolved_at, None),
                            "reason": _change(None, reason),
                        },
                    )
                    db.add(reopen)
                    outbox.append(
                        _outbox(alert.id, "reopened", reopen.id, f.severity, baseline.get("severity"), reason)
                    )
                    reopened = True
                    alert.status = AlertStatus.ACTIVE
                    alert.resolved_at = None
                    notes.append(_note(f"Reopened by the pipeline: {reason} since it was resolved.", now))
                    summary.reopened += 1
                else:
                    details["resolved_baseline"] = baseline
            if _wake(alert, notes, now, db):
                summary.woken += 1
            new = (f.severity, f.title, f.description, details, notes)
            if (alert.severity, alert.title, alert.description, alert.details, list(alert.notes or [])) != new:
                refreshed = {
                    key: _change(old, value)
                    for key, old, value in (
                        ("severity", alert.severity, f.severity),
                        ("title", alert.title, f.title),
                        ("description", alert.description, f.description),
                        ("statistic", (alert.details or {}).get("statistic"), details.get("statistic")),
                        ("condition_present", (alert.details or {}).get("condition_present"), True),
                    )
                    if old != value
                }
                if refreshed:
                    refresh = _event(alert, "refresh", refreshed)
                    db.add(refresh)
                    rose = SEVERITY_RANK[f.severity] > SEVERITY_RANK.get(alert.severity, 0)
                    if rose and not reopened and alert.status in OPEN_STATUSES:
                        outbox.append(
                            _outbox(
                                alert.id,
                                "escalated",
                                refresh.id,
                                f.severity,
                                alert.severity,
                                f"severity rose from {alert.severity} to {f.severity}",
                            )
                        )
                alert.severity, alert.title, alert.description, alert.details = new[:4]
                alert.notes = notes
                summary.updated += 1
            else:
                summary.unchanged += 1
        for fp, alert in existing.items():
            if fp in seen:
                continue
            notes = list(alert.notes or [])
            if _wake(alert, notes, now, db):
                alert.notes = notes
                summary.woken += 1
            if (alert.details or {}).get("condition_present", True):
                db.add(_event(alert, "cleared", {"condition_present": _change(True, False)}))
                alert.details = dict(alert.details or {}) | {
                    "condition_present": False,
                    "condition_cleared_at": now.isoformat(),
                }
                summary.cleared += 1
        if outbox:
            db.flush()  # the new alerts first: the outbox rows refer to them
            db.add_all(outbox)
            summary.notifications = len(outbox)
        db.commit()
    return summary


def _wake(alert: Alert, notes: list[dict[str, Any]], now: datetime, db: Session) -> bool:
    """A snoozed alert whose snooze has ended becomes active again (note appended, event recorded)."""
    if alert.status != AlertStatus.SNOOZED or alert.snoozed_until is None or alert.snoozed_until > now:
        return False
    changes = {
        "status": _change(alert.status, AlertStatus.ACTIVE.value),
        "snoozed_until": _change(alert.snoozed_until, None),
    }
    db.add(_event(alert, "wake", changes))
    notes.append(_note(f"Snooze ended at {alert.snoozed_until.isoformat()} UTC; active again.", now))
    alert.status = AlertStatus.ACTIVE
    alert.snoozed_until = None
    return True
