"""Alerts: ``GET /api/alerts``, ``GET /api/alerts/{id}`` (with its evidence and its audit
trail), ``PATCH /api/alerts/{id}`` and ``POST /api/alerts/{id}/notes`` (analysts), through
the same CRUD as ``election-pipeline alerts``; every change is recorded with the token's name."""

from __future__ import annotations

from functools import partial
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from sqlalchemy.orm import Session

from election_pipeline.api.deps import DB, Analyst, Cached, cached_json
from election_pipeline.api.models import (
    AlertDetailOut,
    AlertEventOut,
    AlertOut,
    AlertPatch,
    NoteIn,
    Page,
    TransactionOut,
    utc_text,
)
from election_pipeline.api.params import Id, PageQuery, Text
from election_pipeline.api.routers.common import READ, errors
from election_pipeline.db.crud import AlertCRUD, TransactionCRUD
from election_pipeline.db.models import Alert
from election_pipeline.vocabulary import AlertStatusName, SeverityName

router = APIRouter(prefix="/api/alerts", tags=["alerts"])


def detail(db: Session, alert: Alert) -> AlertDetailOut:
    """An alert with its evidence transactions (those still stored) and its history."""
    evidence_ids = [str(t) for t in (alert.details or {}).get("evidence_tx_ids") or []]
    body = AlertOut.model_validate(alert).model_dump()
    body["details"] = utc_text(body["details"])
    return AlertDetailOut(
        **body,
        evidence=[TransactionOut.model_validate(t) for t in TransactionCRUD(db).get_by_tx_ids(evidence_ids)],
        history=[AlertEventOut.model_validate(e) for e in AlertCRUD(db).history(alert.id)],
    )


@router.get("", response_model=Page[AlertOut], responses=READ)
def list_alerts(
    request: Request,
    db: DB,
    etag: Cached,
    paging: PageQuery,
    election_id: Text = None,
    constituency_id: Text = None,
    severity: Annotated[SeverityName | None, Query()] = None,
    status: Annotated[AlertStatusName | None, Query()] = None,
    type: Text = None,
) -> Response:
    """Alerts matching every filter given (``type``: the rule), the most severe first, then
    the most recently detected."""

    search = partial(
        AlertCRUD(db).list_alerts,
        election_id=election_id,
        constituency_id=constituency_id,
        severity=severity,
        status=status,
        rule=type,
    )
    return cached_json(request, etag, Page[AlertOut], lambda: paging.read(search))


@router.get("/{alert_id}", response_model=AlertDetailOut, responses=READ)
def get_alert(alert_id: Id, db: DB, _etag: Cached) -> AlertDetailOut:
    """One alert, with the stored transactions its evidence names and its audit trail (oldest first)."""
    return detail(db, AlertCRUD(db).get_or_raise(alert_id))


@router.patch("/{alert_id}", response_model=AlertDetailOut, responses=errors(401, 403, 404, 422))
def triage_alert(alert_id: Id, change: AlertPatch, db: DB, caller: Analyst) -> AlertDetailOut:
    """Set the status, the assignee (null: unassign) or snooze until ``snoozed_until``;
    recorded in the alert's history under the token's name."""
    crud = AlertCRUD(db)
    alert = crud.get_or_raise(alert_id)
    given = change.model_dump(exclude_unset=True)
    if not given:
        raise ValueError("give at least one of status, assigned_to, snoozed_until")
    kwargs: dict = {"status": given.get("status"), "snoozed_until": given.get("snoozed_until")}
    if "assigned_to" in given:
        kwargs["assigned_to"] = given["assigned_to"]
    return detail(db, crud.triage(alert.id, actor=caller.name, **kwargs))


@router.post("/{alert_id}/notes", response_model=AlertDetailOut, status_code=201, responses=errors(401, 403, 404, 422))
def add_note(alert_id: Id, note: NoteIn, db: DB, caller: Analyst) -> AlertDetailOut:
    """Append an investigation note, written by the token's name."""
    crud = AlertCRUD(db)
    alert = crud.get_or_raise(alert_id)
    if not note.text.strip():
        raise ValueError("the note must not be empty")
    return detail(db, crud.add_note(id=alert.id, note=note.text, author=caller.name, actor=caller.name))
