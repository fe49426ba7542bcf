"""The triage page's routes (server-rendered HTML, Jinja2 with autoescape on).

Every figure is read through the functions the API's routers call (``dashboard_summary``,
``stored_election_metrics``, ``constituency_rows``, ``constituency_report``,
``hourly_report``, ``AlertCRUD.list_alerts``, the alert router's ``detail``), and every
change to an alert goes through the API's own ``triage_alert`` and ``add_note``, so the
audit trail records the signed-in token's name as the actor, as for ``PATCH
/api/alerts/{id}`` and ``POST /api/alerts/{id}/notes``.

Live updates: the page polls ``GET /live`` every :data:`POLL_SECONDS` seconds; it answers the
database's data version (the API's ETag ingredient, plus the time the reports were last
written). When it changes, the script fetches the page again and swaps in its
``data-live`` regions (headline figures, tables, the alert list), without a reload.
"""

from __future__ import annotations

import hashlib
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, FastAPI, Form, Query, Request
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, PackageLoader
from pydantic import ValidationError
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from election_pipeline.api.deps import DB, Caller, data_version, engine_of
from election_pipeline.api.models import AlertPatch, NoteIn
from election_pipeline.api.routers import alerts as alert_routes
from election_pipeline.api.tokens import Role, authenticate, may
from election_pipeline.cli.report import constituency_report, constituency_rows, hourly_report
from election_pipeline.db.crud import AlertCRUD
from election_pipeline.db.models import Constituency, Election
from election_pipeline.detection.rules import RULES
from election_pipeline.settings import load_settings
from election_pipeline.stages.election_metrics import dashboard_summary, stored_election_metrics
from election_pipeline.stages.report import safe_name
from election_pipeline.vocabulary import AlertStatus, Severity
from election_pipeline.web import session as sessions
from election_pipeline.web.charts import constituency_charts

#: Seconds between two looks of the page at ``/live``.
POLL_SECONDS = 3
#: The longest alert list shown (the most severe first).
MAX_ALERTS = 1000
#: The election report's charts (``stages/report.py``), by file stem.
REPORT_CHARTS = {
    "participation": "Cumulative participation per constituency, with the peer band",
    "votes_vs_bulletins": "Bulletins issued and votes cast per hour, and the issued-but-not-voted gap",
    "alert_timeline": "Alerts over time, per constituency",
    "region_hour_heatmap": "Votes per region and hour (share of registered voters)",
    "local_hour_pattern": "Share of votes and bulletins by local hour of day",
}
SORTS = {
    "severity": "most severe first",
    "newest": "newest first",
    "oldest": "oldest first",
    "constituency": "constituency",
    "status": "status",
    "rule": "rule",
}
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}
STATIC = Path(__file__).resolve().parent / "static"

router = APIRouter(include_in_schema=False)


def _seg(value: Any) -> str:
    """A value as one URL path segment."""
    return quote(str(value), safe="")


def _num(value: Any, digits: int | None = None) -> str:
    if value is None:
        return "–"
    if digits is not None:
        return f"{float(value):,.{digits}f}"
    if isinstance(value, float):
        return f"{value:,.2f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _when(value: Any) -> str:
    """An instant (naive UTC, or ISO text) as ``YYYY-MM-DD HH:MM:SS UTC``."""
    if value is None or value == "":
        return "–"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC).replace(tzinfo=None)
        return value.strftime("%Y-%m-%d %H:%M:%S") + " UTC"
    return str(value)


def _plain(value: Any) -> str:
    """A figure of an alert's details as short text."""
    import json

    if value is None:
        return "–"
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, default=str, sort_keys=True)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


ENV = Environment(loader=PackageLoader("election_pipeline.web", "templates"), autoescape=True)
ENV.filters.update(seg=_seg, num=_num, when=_when, plain=_plain)
ENV.globals.update(SEVERITIES=[s.value for s in Severity], STATUSES=[s.value for s in AlertStatus])


class SignInNeeded(Exception):
    """No valid session: go to the sign-in form, then back to ``next``."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def _reports_dir(request: Request) -> Path:
    return Path(request.app.state.web_reports_dir)


def live_version(db: Session, reports_dir: Path) -> str:
    """What ``/live`` answers: changes whenever a read of the page could."""
    try:
        written = str(os.stat(reports_dir / "index.html").st_mtime_ns)
    except OSError:
        written = ""
    return hashlib.sha256(f"{data_version(db)}|{written}".encode()).hexdigest()[:24]


def signed_in(request: Request, db: DB) -> sessions.SignedIn:
    user = sessions.read_session(db, request.cookies.get(sessions.COOKIE))
    if user is None:
        path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        raise SignInNeeded(path)
    return user


User = Annotated[sessions.SignedIn, Depends(signed_in)]
EngineDep = Annotated[Engine, Depends(engine_of)]
Opt = Annotated[str | None, Query(max_length=300)]
FormText = Annotated[str | None, Form(max_length=20_000)]


def render(
    request: Request,
    template: str,
    user: sessions.SignedIn | None,
    *,
    db: Session | None = None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """A page, with the live version when someone is signed in."""
    version = live_version(db, _reports_dir(request)) if (db is not None and user is not None) else None
    body = ENV.get_template(template).render(
        user=user, version=version, poll_ms=POLL_SECONDS * 1000, path=request.url.path, **context
    )
    return HTMLResponse(body, status_code=status, headers=SECURITY_HEADERS)


def _error(request: Request, user: sessions.SignedIn | None, status: int, message: str) -> HTMLResponse:
    return render(request, "error.html", user, status=status, message=message)


def _redirect(to: str) -> RedirectResponse:
    return RedirectResponse(to, status_code=303, headers={"Cache-Control": "no-store"})


def _safe_next(value: str | None) -> str:
    """Only a path of this site (no ``//host``, no scheme) is followed after signing in."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    if any(ch.isspace() or ord(ch) < 32 or ord(ch) == 127 for ch in value):
        return "/"  # a browser drops tabs and newlines: "/\t/host" would become "//host"
    return value


def _checked(request: Request, user: sessions.SignedIn, csrf: str | None) -> HTMLResponse | None:
    """The refusal of a form sent from another site or without the session's CSRF token."""
    if not sessions.same_origin(request):
        return _error(request, user, 403, "This form was sent from another site: refused.")
    if not sessions.same_value(csrf, user.csrf):
        return _error(request, user, 403, "This form has expired or was not sent from this page: reload and retry.")
    return None


def _blank(value: str | None) -> str | None:
    value = (value or "").strip()
    return value or None


# -- signing in and out --------------------------------------------------------------------


def _login_page(request: Request, next_path: str, error: str | None = None, status: int = 200) -> HTMLResponse:
    value = sessions.new_login_value()
    response = render(request, "login.html", None, status=status, login_csrf=value, next=next_path, error=error)
    sessions.set_cookie(request, response, sessions.LOGIN_COOKIE, value, sessions.LOGIN_SECONDS)
    return response


@router.get("/login")
def login_form(request: Request, db: DB, next: Opt = None) -> Response:
    if sessions.read_session(db, request.cookies.get(sessions.COOKIE)) is not None:
        return _redirect(_safe_next(next))
    return _login_page(request, _safe_next(next))


@router.post("/login")
def login(
    request: Request,
    db: DB,
    token: Annotated[str | None, Form(max_length=500)] = None,
    csrf: FormText = None,
    next: FormText = None,
) -> Response:
    target = _safe_next(next)
    if not sessions.same_origin(request):
        return _login_page(request, target, "This form was sent from another site: refused.", 403)
    if not sessions.same_value(csrf, request.cookies.get(sessions.LOGIN_COOKIE)):
        return _login_page(request, target, "The sign-in form expired: please sign in again.", 403)
    row = authenticate(db, (token or "").strip())
    if row is None:
        return _login_page(request, target, "That token is not valid (unknown or revoked).", 401)
    value, seconds = sessions.make_cookie(row, request.app.state.web_session_hours)
    response = _redirect(target)
    sessions.set_cookie(request, response, sessions.COOKIE, value, seconds)
    sessions.clear_cookie(request, response, sessions.LOGIN_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, user: User, csrf: FormText = None) -> Response:
    refused = _checked(request, user, csrf)
    if refused is not None:
        return refused
    response = _redirect("/login")
    sessions.clear_cookie(request, response, sessions.COOKIE)
    return response


# -- elections ----------------------------------------------------------------------------


def _charts(request: Request, election_id: str) -> list[dict[str, str]]:
    folder = _reports_dir(request) / safe_name(election_id)
    out = []
    for name, title in REPORT_CHARTS.items():
        try:
            stamp = str(os.stat(folder / f"{name}.png").st_mtime_ns)
        except OSError:
            continue
        out.append({"name": name, "title": title, "src": f"/charts/{name}/{_seg(election_id)}?v={stamp}"})
    return out


def _headlines(engine: Engine) -> list[dict[str, Any]]:
    out = []
    for e in dashboard_summary(engine)["per_election"]:
        try:
            metrics: dict[str, Any] | None = stored_election_metrics(engine, e["id"])
        except LookupError:
            metrics = None
        out.append({"id": e["id"], "name": e["name"], "status": e["status"], "m": metrics})
    return out


@router.get("/")
def elections_page(request: Request, user: User, db: DB, engine: EngineDep) -> Response:
    return render(request, "elections.html", user, db=db, elections=_headlines(engine))


@router.get("/elections/{election_id:path}")
def election_page(request: Request, election_id: str, user: User, db: DB, engine: EngineDep) -> Response:
    election = db.get(Election, election_id)
    if election is None:
        return _error(request, user, 404, "There is no election with this id.")
    try:
        metrics: dict[str, Any] | None = stored_election_metrics(engine, election_id)
    except LookupError:
        metrics = None
    return render(
        request,
        "election.html",
        user,
        db=db,
        election=election,
        e={"id": election.id, "name": election.name, "status": election.status, "m": metrics},
        constituencies=constituency_rows(engine, election_id),
        charts=_charts(request, election_id),
    )


@router.get("/charts/{name}/{election_id:path}")
def chart_image(request: Request, name: str, election_id: str, user: User, v: Opt = None) -> Response:
    if name not in REPORT_CHARTS:
        return _error(request, user, 404, "No such chart.")
    path = _reports_dir(request) / safe_name(election_id) / f"{name}.png"
    if not path.is_file():
        return _error(request, user, 404, "This chart has not been drawn yet (the report runs after the figures).")
    return FileResponse(path, media_type="image/png", headers={"Cache-Control": "private, max-age=300"})


# -- constituencies -----------------------------------------------------------------------


@router.get("/constituencies/{constituency_id:path}")
def constituency_page(request: Request, constituency_id: str, user: User, db: DB, engine: EngineDep) -> Response:
    try:
        report = constituency_report(engine, constituency_id)
        hours = hourly_report(engine, constituency_id, kind="constituency")
    except LookupError:
        return _error(request, user, 404, "There is no constituency with this id.")
    alerts = AlertCRUD(db).list_alerts(constituency_id=constituency_id, limit=MAX_ALERTS)
    c = report["constituency"]
    election = db.get(Election, c["election_id"]) if c.get("election_id") else None
    return render(
        request,
        "constituency.html",
        user,
        db=db,
        c=c,
        election=election,
        hours=hours,
        pattern=report["hourly_activity_pattern"],
        charts=constituency_charts(engine, constituency_id),
        alerts=alerts,
        names={constituency_id: c.get("name")},
    )


# -- alerts -------------------------------------------------------------------------------


def _names(db: Session, ids: set[str]) -> dict[str, str]:
    if not ids:
        return {}
    rows = db.execute(select(Constituency.id, Constituency.name).where(Constituency.id.in_(sorted(ids)[:5000])))
    return {r.id: r.name for r in rows}


@router.get("/alerts")
def alerts_page(
    request: Request,
    user: User,
    db: DB,
    election_id: Opt = None,
    constituency_id: Opt = None,
    severity: Opt = None,
    status: Opt = None,
    type: Opt = None,
    sort: Opt = None,
) -> Response:
    filters = {
        "election_id": _blank(election_id),
        "constituency_id": _blank(constituency_id),
        "severity": _blank(severity),
        "status": _blank(status),
        "type": _blank(type),
    }
    chosen_sort = sort if sort in SORTS else "severity"
    try:
        rows = AlertCRUD(db).list_alerts(
            election_id=filters["election_id"],
            constituency_id=filters["constituency_id"],
            severity=filters["severity"],
            status=filters["status"],
            rule=filters["type"],
            limit=MAX_ALERTS + 1,
            order=chosen_sort,
        )
    except ValueError as exc:
        return _error(request, user, 422, str(exc))
    truncated = len(rows) > MAX_ALERTS
    rows = rows[:MAX_ALERTS]
    elections = list(db.execute(select(Election.id, Election.name).order_by(Election.id)))
    return render(
        request,
        "alerts.html",
        user,
        db=db,
        alerts=rows,
        truncated=truncated,
        names=_names(db, {a.constituency_id for a in rows}),
        filters=filters,
        sort=chosen_sort,
        sorts=SORTS,
        rules=sorted(RULES),
        elections=elections,
        max_alerts=MAX_ALERTS,
    )


def _alert_page(
    request: Request, user: sessions.SignedIn, db: Session, alert_id: str, *, error: str | None = None, saved: bool
) -> Response:
    alert = AlertCRUD(db).get(alert_id)
    if alert is None:
        return _error(request, user, 404, "There is no alert with this id.")
    shown = alert_routes.detail(db, alert)
    details = dict(shown.details or {})
    evidence_ids = [str(t) for t in details.pop("evidence_tx_ids", None) or []]
    constituency = db.get(Constituency, shown.constituency_id)
    return render(
        request,
        "alert.html",
        user,
        db=db,
        status=422 if error else 200,
        a=shown,
        details=details,
        evidence_ids=evidence_ids,
        constituency=constituency,
        may_triage=may(user.role, Role.ANALYST),
        error=error,
        saved=saved,
    )


@router.get("/alerts/{alert_id}")
def alert_page(request: Request, alert_id: str, user: User, db: DB, saved: Opt = None) -> Response:
    return _alert_page(request, user, db, alert_id, saved=bool(saved))


def _problem(exc: Exception) -> str:
    if isinstance(exc, ValidationError):
        return "; ".join(f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())
    return str(exc)


def _refuse_triage(request: Request, user: sessions.SignedIn, csrf: str | None) -> Response | None:
    refused = _checked(request, user, csrf)
    if refused is not None:
        return refused
    if not may(user.role, Role.ANALYST):
        return _error(request, user, 403, f"The role {user.role} may read alerts but not change them.")
    return None


@router.post("/alerts/{alert_id}/triage")
def triage(
    request: Request,
    alert_id: str,
    user: User,
    db: DB,
    csrf: FormText = None,
    action: FormText = None,
    status: FormText = None,
    assigned_to: FormText = None,
    snoozed_until: FormText = None,
) -> Response:
    """Through the API's ``PATCH /api/alerts/{id}`` (``triage_alert``), as the signed-in token."""
    refused = _refuse_triage(request, user, csrf)
    if refused is not None:
        return refused
    if AlertCRUD(db).get(alert_id) is None:
        return _error(request, user, 404, "There is no alert with this id.")
    given: dict[str, Any] = {}
    if action == "status":
        given["status"] = _blank(status)
        if given["status"] == AlertStatus.SNOOZED:
            given["snoozed_until"] = _blank(snoozed_until)
    elif action == "assign":
        given["assigned_to"] = _blank(assigned_to)
    elif action == "snooze":
        given["snoozed_until"] = _blank(snoozed_until)
        if given["snoozed_until"] is None:
            return _alert_page(request, user, db, alert_id, error="Give the time to snooze until (UTC).", saved=False)
    else:
        return _alert_page(request, user, db, alert_id, error="Unknown action.", saved=False)
    try:
        change = AlertPatch(**given)
        alert_routes.triage_alert(alert_id, change, db, Caller(name=user.name, role=user.role))
    except (ValidationError, ValueError) as exc:
        db.rollback()
        return _alert_page(request, user, db, alert_id, error=_problem(exc), saved=False)
    return _redirect(f"/alerts/{_seg(alert_id)}?{urlencode({'saved': action})}")


@router.post("/alerts/{alert_id}/notes")
def note(request: Request, alert_id: str, user: User, db: DB, csrf: FormText = None, text: FormText = None) -> Response:
    """Through the API's ``POST /api/alerts/{id}/notes`` (``add_note``), as the signed-in token."""
    refused = _refuse_triage(request, user, csrf)
    if refused is not None:
        return refused
    if AlertCRUD(db).get(alert_id) is None:
        return _error(request, user, 404, "There is no alert with this id.")
    try:
        if not (text or "").strip():
            raise ValueError("The note is empty.")
        alert_routes.add_note(alert_id, NoteIn(text=text or ""), db, Caller(name=user.name, role=user.role))
    except (ValidationError, ValueError) as exc:
        db.rollback()
        return _alert_page(request, user, db, alert_id, error=_problem(exc), saved=False)
    return _redirect(f"/alerts/{_seg(alert_id)}?saved=note")


# -- live ---------------------------------------------------------------------------------


@router.get("/live")
def live(request: Request, db: DB, v: Opt = None) -> Response:
    """The page's data version (JSON ``{"version": ...}``); 401 without a session."""
    if sessions.read_session(db, request.cookies.get(sessions.COOKIE)) is None:
        return JSONResponse({"detail": "not signed in"}, status_code=401, headers={"Cache-Control": "no-store"})
    version = live_version(db, _reports_dir(request))
    return JSONResponse({"version": version}, headers={"Cache-Control": "no-store"})


def install_web(app: FastAPI) -> None:
    """Serve the triage page on ``app``: its routes, ``/static`` and the sign-in redirect."""
    settings = load_settings()
    app.state.web_session_hours = settings.session_hours
    app.state.web_reports_dir = settings.reports_folder
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC), name="web-static")

    @app.exception_handler(SignInNeeded)
    async def sign_in(_request: Request, exc: SignInNeeded) -> Response:
        return _redirect("/login?" + urlencode({"next": exc.next_path}))
