"""``election-pipeline alerts ...``: the analyst's alert workflow, through the CRUD layer.

* ``alerts list [--severity S] [--status S] [--constituency ID] [--rule R] [--limit N]``
* ``alerts show ID``: everything about one alert: figures, threshold, evidence, notes.
* ``alerts assign ID WHO`` (``-`` to unassign)
* ``alerts note ID TEXT [--author WHO]``
* ``alerts status ID STATUS`` (active, investigating, resolved; to snooze use ``snooze``)
* ``alerts snooze ID --until WHEN`` (ISO 8601, naive = UTC, or a duration: ``30m``, ``2h``, ``1d``)

``ID`` is an alert id or a unique prefix of one (at least four characters). The pipeline
never resets what is set here: status, notes and assignee survive every rematerialisation.
Settings (``ELECTION_DATABASE_URL``) come from the environment.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}


@contextmanager
def _crud() -> Iterator[Any]:
    from election_pipeline.db.crud import AlertCRUD
    from election_pipeline.db.session import get_engine, upgrade_database
    from election_pipeline.settings import load_settings

    engine = get_engine(load_settings().database_url)
    upgrade_database(engine)
    with Session(engine, expire_on_commit=False) as db:
        yield AlertCRUD(db)


def parse_until(text: str, now: datetime | None = None) -> datetime:
    """``2024-09-07T18:00`` (naive = UTC; offsets accepted) or a duration from now
    (``30m``, ``2h``, ``1.5d``) -> naive UTC."""
    from election_pipeline.db.models import utcnow
    from election_pipeline.db.schemas.base import to_naive_utc

    match = _DURATION.match(text or "")
    if match:
        return (now or utcnow()) + timedelta(**{_UNITS[match.group(2)]: float(match.group(1))})
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except (ValueError, AttributeError):
        raise ValueError(
            f"--until must be an ISO 8601 time such as 2024-09-07T18:00 (UTC) or a duration such as 2h (got {text!r})"
        ) from None
    return to_naive_utc(moment)


def _when(value: datetime | None) -> str:
    return f"{value:%Y-%m-%d %H:%M}" if value else "-"


def _print_table(alerts: list[Any], out: Any = None) -> None:
    out = out or sys.stdout
    if not alerts:
        out.write("No alerts match.\n")
        return
    out.write(
        f"{'id':<10} {'severity':<8} {'status':<13} {'rule':<27} {'constituency':<14} "
        f"{'detected (UTC)':<16} {'assignee':<12} title\n"
    )
    for a in alerts:
        out.write(
            f"{a.id[:8]:<10} {a.severity:<8} {a.status:<13} {a.type:<27} {a.constituency_id[:12]:<14} "
            f"{_when(a.detected_at):<16} {(a.assigned_to or '-')[:12]:<12} {a.title}\n"
        )
    out.write(f"{len(alerts)} alert(s). `election-pipeline alerts show ID` for details (an id prefix is enough).\n")


def _print_alert(a: Any, out: Any = None) -> None:
    out = out or sys.stdout
    details = a.details or {}
    w = out.write
    w(f"{a.title}\n")
    w(f"  id:            {a.id}\n")
    w(f"  rule:          {a.type}\n")
    w(f"  severity:      {a.severity}\n")
    w(
        f"  status:        {a.status}"
        + (f" until {_when(a.snoozed_until)} UTC" if a.status == "snoozed" and a.snoozed_until else "")
        + (f" at {_when(a.resolved_at)} UTC" if a.resolved_at else "")
        + "\n"
    )
    w(f"  assigned to:   {a.assigned_to or '-'}\n")
    w(f"  constituency:  {a.constituency_id}\n")
    w(f"  detected:      {_when(a.detected_at)} UTC, last updated {_when(a.updated_at)} UTC\n")
    if details.get("window_start"):
        w(f"  window (UTC):  {details['window_start']} to {details.get('window_end')}\n")
    if details.get("hours"):
        w(f"  hours (UTC):   {', '.join(details['hours'][:12])}{' ...' if len(details['hours']) > 12 else ''}\n")
    w(
        f"  statistic:     {details.get('statistic')} (expected {details.get('expected')}, "
        f"threshold {details.get('threshold')}, worse when {details.get('worse_when', 'higher')})\n"
    )
    if details.get("condition_present") is False:
        w(f"  condition:     no longer present (cleared {details.get('condition_cleared_at')})\n")
    if a.description:
        w(f"\n  {a.description}\n")
    figures = details.get("figures") or {}
    if figures:
        w("\n  figures:\n")
        for key, value in figures.items():
            w(f"    {key}: {json.dumps(value, default=str)}\n")
    evidence = details.get("evidence_tx_ids") or []
    w(f"\n  evidence ({len(evidence)} transaction id(s)):\n")
    for tx in evidence:
        w(f"    {tx}\n")
    notes = a.notes or []
    w(f"\n  notes ({len(notes)}):\n")
    for note in notes:
        if isinstance(note, dict):
            w(f"    [{note.get('at') or '-'}] {note.get('author') or 'unknown'}: {note.get('text')}\n")
        else:
            w(f"    {note}\n")


def cmd_list(args: argparse.Namespace) -> int:
    with _crud() as crud:
        alerts = crud.list_alerts(
            severity=args.severity,
            status=args.status,
            constituency_id=args.constituency,
            rule=args.rule,
            limit=None if args.limit <= 0 else args.limit,
        )
        if args.format == "json":
            json.dump([_as_json(a) for a in alerts], sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            _print_table(alerts)
    return 0


def _as_json(a: Any) -> dict[str, Any]:
    from election_pipeline.db.schemas.alert import AlertResponse

    return AlertResponse.model_validate(a).model_dump(mode="json")


def cmd_show(args: argparse.Namespace) -> int:
    with _crud() as crud:
        alert = crud.get_by_id_or_prefix(args.id)
        if args.format == "json":
            json.dump(_as_json(alert), sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            _print_alert(alert)
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    who = None if args.who.strip() in ("", "-") else args.who
    with _crud() as crud:
        alert = crud.assign(crud.get_by_id_or_prefix(args.id).id, who)
        print(f"{alert.id}: assigned to {alert.assigned_to}" if alert.assigned_to else f"{alert.id}: unassigned")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    with _crud() as crud:
        alert = crud.add_note(id=crud.get_by_id_or_prefix(args.id).id, note=args.text, author=args.author)
        print(f"{alert.id}: note added ({len(alert.notes)} note(s))")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.status == "snoozed":
        raise ValueError("to snooze an alert use `election-pipeline alerts snooze ID --until WHEN`")
    with _crud() as crud:
        alert = crud.set_status(crud.get_by_id_or_prefix(args.id).id, args.status)
        extra = f" at {_when(alert.resolved_at)} UTC" if alert.resolved_at else ""
        print(f"{alert.id}: status {alert.status}{extra}")
    return 0


def cmd_snooze(args: argparse.Namespace) -> int:
    from election_pipeline.db.models import utcnow

    until = parse_until(args.until)
    if until <= utcnow():
        raise ValueError(f"--until must be in the future (got {until:%Y-%m-%d %H:%M} UTC)")
    with _crud() as crud:
        alert = crud.snooze(crud.get_by_id_or_prefix(args.id).id, until)
        print(f"{alert.id}: snoozed until {_when(alert.snoozed_until)} UTC")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    alerts = sub.add_parser(
        "alerts",
        help="list, inspect and work on alerts (assign, note, status, snooze)",
        description=__doc__.split("\n\n")[0],
    )
    cmds = alerts.add_subparsers(dest="alerts_command", required=True)

    p = cmds.add_parser("list", help="alerts, most severe first")
    p.add_argument("--severity", help="critical, warning or info")
    p.add_argument("--status", help="active, investigating, resolved or snoozed")
    p.add_argument("--constituency", help="a constituency (contract) id")
    p.add_argument("--rule", help="a rule name, e.g. unusual_spike")
    p.add_argument("--limit", type=int, default=100, help="at most this many (0: all; default 100)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="one alert with its figures, evidence and notes")
    p.add_argument("id", help="alert id or a unique prefix (4+ characters)")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser("assign", help="assign an alert to someone ('-' to unassign)")
    p.add_argument("id")
    p.add_argument("who")
    p.set_defaults(func=cmd_assign)

    p = cmds.add_parser("note", help="add an investigation note")
    p.add_argument("id")
    p.add_argument("text")
    p.add_argument("--author", default=os.environ.get("USER") or None, help="who writes (default: $USER)")
    p.set_defaults(func=cmd_note)

    p = cmds.add_parser("status", help="set the status: active, investigating or resolved")
    p.add_argument("id")
    p.add_argument("status")
    p.set_defaults(func=cmd_status)

    p = cmds.add_parser("snooze", help="quiet an alert until a time")
    p.add_argument("id")
    p.add_argument("--until", required=True, help="ISO 8601 time (naive = UTC) or a duration: 30m, 2h, 1d")
    p.set_defaults(func=cmd_snooze)
