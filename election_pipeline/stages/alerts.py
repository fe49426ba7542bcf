"""Alerts stage: detection findings -> the ``alerts`` table, without losing the analyst's work.

One alert per fingerprint (rule, constituency, hour or window). On every run:

* a new finding creates an ``active`` alert;
* a known one has its severity, title, description and details refreshed in place, while
  ``status``, ``notes`` and ``assigned_to`` stay as the analyst left them;
* a ``resolved`` alert whose condition got worse (higher statistic or severity) reopens,
  with a note saying why;
* a ``snoozed`` alert stays quiet until ``snoozed_until`` has passed, then becomes active;
* an alert whose condition is no longer seen is kept, with ``details.condition_present`` false.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from election_pipeline.db.models import Alert, utcnow
from election_pipeline.detection.findings import SEVERITY_ORDER, Finding


@dataclass
class AlertsSummary:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    reopened: int = 0
    cleared: int = 0
    by_severity: Counter = field(default_factory=Counter)


def _worse(old_details: dict | None, old_severity: str, finding: Finding) -> str | None:
    """Why the finding is worse than what the analyst resolved, or None."""
    if SEVERITY_ORDER[finding.severity] > SEVERITY_ORDER.get(old_severity, 0):
        return f"severity rose from {old_severity} to {finding.severity}"
    old_stat = (old_details or {}).get("statistic")
    if old_stat is not None and finding.statistic is not None and finding.statistic > float(old_stat) + 1e-9:
        return f"the statistic rose from {old_stat} to {finding.statistic}"
    return None


def publish_alerts(engine: Engine, findings: list[Finding], now: datetime | None = None) -> AlertsSummary:
    """Create, refresh, reopen or wake alerts from ``findings`` (see the module docstring)."""
    now = now or utcnow()
    summary = AlertsSummary()
    seen: set[str] = set()
    with Session(engine, expire_on_commit=False) as db:
        existing = {a.fingerprint: a for a in db.scalars(select(Alert))}
        for f in findings:
            if f.fingerprint in seen:
                continue
            seen.add(f.fingerprint)
            summary.by_severity[f.severity] += 1
            details = f.details() | {"condition_present": True}
            alert = existing.get(f.fingerprint)
            if alert is None:
                db.add(Alert(
                    constituency_id=f.constituency_id, fingerprint=f.fingerprint, type=f.rule,
                    severity=f.severity, status="active", title=f.title, description=f.description,
                    details=details, notes=[], detected_at=now,
                ))
                summary.created += 1
                continue
            notes = list(alert.notes or [])
            reason = _worse(alert.details, alert.severity, f) if alert.status == "resolved" else None
            if reason:
                alert.status = "active"
                alert.resolved_at = None
                notes.append({"at": now.isoformat(), "author": "pipeline", "text": f"Reopened: {reason}."})
                summary.reopened += 1
            if alert.status == "snoozed" and alert.snoozed_until is not None and alert.snoozed_until <= now:
                alert.status = "active"
                notes.append({"at": now.isoformat(), "author": "pipeline",
                              "text": f"Snooze ended {alert.snoozed_until.isoformat()}; active again."})
                alert.snoozed_until = None
            changed = (alert.severity, alert.title, alert.description, alert.details) != (
                f.severity, f.title, f.description, details)
            if changed or reason or notes != list(alert.notes or []):
                alert.severity, alert.title, alert.description, alert.details = (
                    f.severity, f.title, f.description, details)
                alert.notes = notes
                summary.updated += 1
            else:
                summary.unchanged += 1
        for fp, alert in existing.items():
            if fp not in seen and (alert.details or {}).get("condition_present", True):
                alert.details = dict(alert.details or {}) | {"condition_present": False,
                                                              "condition_cleared_at": now.isoformat()}
                summary.cleared += 1
        db.commit()
    return summary
