"""Alert CRUD (docs/data-model.md#crud) and the analyst's actions: notes, assignment, status, snooze.

Every change made here is recorded in ``alert_events`` (the audit trail), in the same
commit as the change: who made it (``actor``; ``unknown`` when the caller names no one),
what kind of change it was and each changed field's old and new value."""

from __future__ import annotations

from datetime import datetime
from types import EllipsisType
from typing import Any

from sqlalchemy import Select, and_, case, or_, select

from ...vocabulary import SEVERITY_RANK, AlertStatus
from ..models import Alert, AlertEvent, Constituency
from ..schemas.alert import (
    ALERT_SEVERITIES,
    ALERT_STATUSES,
    AlertCreate,
    AlertUpdate,
    make_note,
)
from ..schemas.base import check_choice, to_naive_utc, utc_now
from .base import BaseCRUD, NotFoundError

#: The fields of an alert whose changes the audit trail records.
AUDITED_FIELDS = ("status", "assigned_to", "snoozed_until", "resolved_at", "severity", "title", "description")
#: The actor recorded when the caller names no one.
UNKNOWN_ACTOR = "unknown"

#: Sorts the most severe first (an unknown severity last).
SEVERITY_ORDER = case(SEVERITY_RANK, value=Alert.severity, else_=-1).desc()
#: Sorts by the workflow's order of statuses (open first; an unknown status last).
STATUS_ORDER = case({s.value: i for i, s in enumerate(AlertStatus)}, value=Alert.status, else_=len(AlertStatus))
#: The orders :meth:`AlertCRUD.list_alerts` knows, each refined by the default one (most
#: severe first, then the most recently detected, then the id, so every order is total).
ALERT_ORDERS: dict[str, tuple[Any, ...]] = {
    "severity": (),
    "newest": (Alert.detected_at.desc(),),
    "oldest": (Alert.detected_at.asc(),),
    "constituency": (Alert.constituency_id,),
    "status": (STATUS_ORDER,),
    "rule": (Alert.type,),
}


def _status_values(alert: Alert, status: str) -> dict[str, Any]:
    """Side effects of moving ``alert`` to ``status``."""
    values: dict[str, Any] = {"status": status}
    if status == AlertStatus.RESOLVED:
        already = alert.status == AlertStatus.RESOLVED and alert.resolved_at is not None
        values["resolved_at"] = alert.resolved_at if already else utc_now()
    else:
        values["resolved_at"] = None
    if status != AlertStatus.SNOOZED:
        values["snoozed_until"] = None
    return values


class AlertCRUD(BaseCRUD[Alert, AlertCreate, AlertUpdate]):
    """Alerts. Lists put the most severe first, then the most recently detected."""

    model = Alert
    create_schema = AlertCreate
    update_schema = AlertUpdate

    # -- the audit trail ---------------------------------------------------------------

    def _audited(
        self, alert: Alert, values: dict[str, Any], *, actor: str | None, action: str, note: str | None = None
    ) -> Alert:
        """Apply ``values`` to ``alert`` and record what changed as one event (none when
        nothing changed and no note was added), in the same commit."""
        changes: dict[str, Any] = {}
        for key in AUDITED_FIELDS:
            if key in values and getattr(alert, key) != values[key]:
                changes[key] = {"from": _plain(getattr(alert, key)), "to": _plain(values[key])}
        if note is not None:
            changes["note"] = {"from": None, "to": note}
        if changes:
            self.db.add(AlertEvent(alert_id=alert.id, actor=actor or UNKNOWN_ACTOR, action=action, changes=changes))
        return self._apply(alert, values)

    def history(self, id: str) -> list[AlertEvent]:
        """The alert's audit trail, oldest first."""
        stmt = select(AlertEvent).where(AlertEvent.alert_id == id).order_by(AlertEvent.at, AlertEvent.id)
        return list(self.db.scalars(stmt))

    def _ordered(self, stmt: Select[Any]) -> list[Alert]:
        return self._list(stmt.order_by(SEVERITY_ORDER, Alert.detected_at.desc(), Alert.id))

    def update(self, *, db_obj: Alert, obj_in: AlertUpdate | dict[str, Any], actor: str | None = None) -> Alert:
        """Apply the set fields; a status change follows the rules of :meth:`set_status`
        unless the update sets ``resolved_at``/``snoozed_until`` itself."""
        values = self._update_data(obj_in)
        if values.get("status") is not None:
            values = {**_status_values(db_obj, values["status"]), **values}
        return self._audited(db_obj, values, actor=actor, action="update")

    def get_by_constituency(self, *, constituency_id: str) -> list[Alert]:
        """Alerts of one constituency."""
        return self._ordered(select(Alert).where(Alert.constituency_id == constituency_id))

    def get_by_severity(self, *, severity: str) -> list[Alert]:
        """Alerts of one severity (``ValueError`` for an unknown severity)."""
        check_choice(severity, ALERT_SEVERITIES, "severity")
        return self._ordered(select(Alert).where(Alert.severity == severity))

    def get_by_status(self, *, status: str) -> list[Alert]:
        """Alerts with this status (``ValueError`` for an unknown status)."""
        check_choice(status, ALERT_STATUSES, "status")
        return self._ordered(select(Alert).where(Alert.status == status))

    def list_alerts(
        self,
        *,
        severity: str | None = None,
        status: str | None = None,
        constituency_id: str | None = None,
        rule: str | None = None,
        limit: int | None = 100,
        election_id: str | None = None,
        skip: int = 0,
        order: str = "severity",
    ) -> list[Alert]:
        """Alerts matching every filter given (``ValueError`` for an unknown severity or
        status), in ``order`` (one of :data:`ALERT_ORDERS`; by default the most severe first,
        then the most recently detected); ``limit`` of them after the first ``skip``."""
        check_choice(severity, ALERT_SEVERITIES, "severity")
        check_choice(status, ALERT_STATUSES, "status")
        check_choice(order, tuple(ALERT_ORDERS), "order")
        stmt = select(Alert)
        if election_id is not None:
            stmt = stmt.join(Constituency, Constituency.id == Alert.constituency_id).where(
                Constituency.election_id == election_id
            )
        if severity is not None:
            stmt = stmt.where(Alert.severity == severity)
        if status is not None:
            stmt = stmt.where(Alert.status == status)
        if constituency_id is not None:
            stmt = stmt.where(Alert.constituency_id == constituency_id)
        if rule is not None:
            stmt = stmt.where(Alert.type == rule)
        stmt = stmt.order_by(*ALERT_ORDERS[order], SEVERITY_ORDER, Alert.detected_at.desc(), Alert.id)
        if skip:
            stmt = stmt.offset(skip)
        if limit is not None:
            stmt = stmt.limit(limit)
        return self._list(stmt)

    def get_by_id_or_prefix(self, id_or_prefix: str) -> Alert:
        """The alert with this id, or the only one whose id starts with it (at least four
        characters). :class:`NotFoundError` when none matches; ``LookupError`` naming the
        candidates when several do."""
        key = (id_or_prefix or "").strip()
        alert = self.get(key) if key else None
        if alert is not None:
            return alert
        if len(key) >= 4:
            matches = list(self.db.scalars(select(Alert).where(Alert.id.startswith(key, autoescape=True)).limit(6)))
            if len(matches) == 1:
                return matches[0]
            if len(matches) > 1:
                raise LookupError(
                    f"alert id prefix {key!r} is ambiguous: {', '.join(a.id for a in matches[:5])}"
                    + (" ..." if len(matches) > 5 else "")
                )
        raise NotFoundError(Alert, key)

    def get_active_alerts(self) -> list[Alert]:
        """Alerts that need attention: status ``active``, plus ``snoozed`` ones whose
        ``snoozed_until`` has passed."""
        snooze_over = and_(
            Alert.status == AlertStatus.SNOOZED,
            Alert.snoozed_until.is_not(None),
            Alert.snoozed_until <= utc_now(),
        )
        return self._ordered(select(Alert).where(or_(Alert.status == AlertStatus.ACTIVE, snooze_over)))

    def add_note(self, *, id: str, note: str, author: str | None = None, actor: str | None = None) -> Alert:
        """Append ``{"at": now (ISO UTC), "text": note, "author": author}`` to the notes
        (recorded as done by ``actor``, by default the author)."""
        if not note or not note.strip():
            raise ValueError("note must not be empty")
        alert = self.get_or_raise(id)
        # A new list, so the ORM sees the change to the JSON column.
        notes = [*(alert.notes or []), make_note(note.strip(), author)]
        return self._audited(alert, {"notes": notes}, actor=actor or author, action="note", note=note.strip())

    def assign(self, id: str, who: str | None, actor: str | None = None) -> Alert:
        """Assign the alert to ``who`` (``None`` or blank: unassign)."""
        alert = self.get_or_raise(id)
        who = who.strip() if who else None
        return self._audited(alert, {"assigned_to": who or None}, actor=actor, action="assign")

    def set_status(self, id: str, status: str, actor: str | None = None) -> Alert:
        """Set the status (``ValueError`` if not allowed). ``resolved`` stamps
        ``resolved_at`` (now), any other status clears it; leaving ``snoozed`` clears
        ``snoozed_until``."""
        check_choice(status, ALERT_STATUSES, "status")
        alert = self.get_or_raise(id)
        return self._audited(alert, _status_values(alert, status), actor=actor, action="status")

    def snooze(self, id: str, until: datetime, actor: str | None = None) -> Alert:
        """Snooze the alert until ``until`` (naive = UTC); it counts as active again after."""
        if until is None:
            raise ValueError("until is required to snooze an alert")
        alert = self.get_or_raise(id)
        values = {"status": AlertStatus.SNOOZED, "snoozed_until": to_naive_utc(until), "resolved_at": None}
        return self._audited(alert, values, actor=actor, action="snooze")

    def triage(
        self,
        id: str,
        *,
        actor: str | None,
        status: str | None = None,
        assigned_to: str | EllipsisType | None = ...,
        snoozed_until: datetime | None = None,
    ) -> Alert:
        """Several of the analyst's changes at once, recorded as one ``triage`` event:
        ``status`` (as :meth:`set_status`; ``snoozed`` needs ``snoozed_until``),
        ``assigned_to`` (``None`` unassigns; leave it out to keep the assignee) and
        ``snoozed_until`` (alone: snooze until then). ``ValueError`` for a combination that
        makes no sense."""
        check_choice(status, ALERT_STATUSES, "status")
        alert = self.get_or_raise(id)
        values: dict[str, Any] = {}
        if snoozed_until is not None and status not in (None, AlertStatus.SNOOZED):
            raise ValueError(f"snoozed_until goes with the status snoozed, not {status!r}")
        if status == AlertStatus.SNOOZED or snoozed_until is not None:
            if snoozed_until is None:
                raise ValueError("to snooze an alert give snoozed_until (a time in the future)")
            until = to_naive_utc(snoozed_until)
            if until <= utc_now():
                raise ValueError(f"snoozed_until must be in the future (got {until:%Y-%m-%dT%H:%M:%S} UTC)")
            values = {"status": AlertStatus.SNOOZED, "snoozed_until": until, "resolved_at": None}
        elif status is not None:
            values = _status_values(alert, status)
        if assigned_to is not ...:
            who = assigned_to.strip() if isinstance(assigned_to, str) else None
            values["assigned_to"] = who or None
        return self._audited(alert, values, actor=actor, action="triage")


def _plain(value: Any) -> Any:
    """A value as the audit trail stores it (JSON): instants as ISO text (UTC)."""
    return value.isoformat() if isinstance(value, datetime) else value


__all__ = ["AUDITED_FIELDS", "UNKNOWN_ACTOR", "AlertCRUD"]
