"""``election-pipeline alerts ...``: the analyst's alert workflow, through the CRUD layer.

* ``alerts list [--severity S] [--status S] [--constituency ID] [--rule R] [--limit N]``
* ``alerts show ID``: everything about one alert: figures, threshold, evidence, notes.
* ``alerts assign ID WHO`` (``-`` to unassign)
* ``alerts note ID TEXT [--author WHO]``
* ``alerts status ID STATUS`` (active, investigating, resolved; to snooze use ``snooze``)
* ``alerts snooze ID --until WHEN`` (ISO 8601, naive = UTC, or a duration: ``30m``, ``2h``, ``1d``)

``ID`` is an alert id or a unique prefix of one (at least four characters). The pipeline
never resets what is set here: status, notes and assignee survive every rematerialisation.
Every change is recorded in the alert's history (``alerts show``) under the OS user's name,
or under ``--as NAME``.
Settings (``ELECTION_DATABASE_URL``) come from the environment.

A bad argument exits with status 2 and one line on stderr. Text from the data (titles,
notes, names) is printed with its control characters escaped (``\\x1b``, ``\\r``), so it
cannot move the cursor, clear the screen or retitle the terminal; line breaks in notes and
descriptions stay line breaks, the following lines indented under the first.
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

from election_pipeline.vocabulary import AlertStatus

_DURATION = re.compile(r"^\s*([+-]?)\s*(\d+(?:\.\d+)?)\s*([mhd])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days"}

#: The shortest id prefix the alert look-up accepts (AlertCRUD.get_by_id_or_prefix).
MIN_ID_PREFIX = 4
#: Alert ids are UUIDs: no id is longer.
ID_LENGTH = 36
#: The longest assignee or author name (the ``assigned_to`` column holds 255 characters).
MAX_NAME = 255
#: The longest note.
MAX_NOTE = 10_000
#: A ``--limit`` above this is the same as no limit (and would overflow the databases' integers).
MAX_LIMIT = 2**31 - 1

# C0 controls, DEL, C1 controls (ESC, CSI, OSC... can move the cursor, clear the screen or
# retitle the window), the bidirectional overrides and isolates, line/paragraph separators
# and lone surrogates (from undecodable bytes).
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u2069\ud800-\udfff]")
_NAMED = {"\t": "\\t", "\n": "\\n", "\r": "\\r"}


def _escape(match: re.Match[str]) -> str:
    ch = match.group()
    return _NAMED.get(ch) or (f"\\x{ord(ch):02x}" if ord(ch) < 0x100 else f"\\u{ord(ch):04x}")


def printable(value: Any) -> str:
    """``value`` as text a terminal shows as it is, on one line: control characters,
    bidirectional overrides and lone surrogates become escapes (``\\x1b``, ``\\n``, ``\\u202e``)."""
    return _UNSAFE.sub(_escape, str(value))


def _lines(value: Any, indent: str) -> str:
    """Like :func:`printable`, but a line break (``\\n`` or ``\\r\\n``) stays one, the next
    line starting with ``indent``; a lone ``\\r`` is escaped (it would overwrite the line)."""
    return ("\n" + indent).join(printable(line) for line in str(value).replace("\r\n", "\n").split("\n"))


def _shown(text: str, limit: int = 40) -> str:
    """``text`` quoted for a message, cut to ``limit`` characters."""
    return repr(text[:limit]) + (f" (and {len(text) - limit} more characters)" if len(text) > limit else "")


def _text(value: str, what: str, limit: int | None = None) -> str:
    """``value`` if it is valid text (of at most ``limit`` characters); else a ``ValueError``."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ValueError(f"{what} is not valid UTF-8 text: {_shown(value)}") from None
    if limit is not None and len(value) > limit:
        raise ValueError(f"{what} is {len(value)} characters long; at most {limit} are allowed")
    return value


def _find(crud: Any, key: str) -> Any:
    """The alert named by ``key``: its id, or a prefix of at least :data:`MIN_ID_PREFIX`
    characters that only one alert's id starts with."""
    key = key.strip()
    _text(key, "the alert id")
    if len(key) > ID_LENGTH:
        raise LookupError(f"no alert has the id {_shown(key)}: alert ids are {ID_LENGTH} characters long")
    if len(key) < MIN_ID_PREFIX:
        alert = crud.get(key) if key else None
        if alert is None:
            raise ValueError(
                f"alert id prefix {key!r} is too short: give at least {MIN_ID_PREFIX} characters of the alert id"
            )
        return alert
    return crud.get_by_id_or_prefix(key)


def _limit(text: str) -> int:
    """``--limit``: a whole number, 0 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a whole number, 0 for all (got {_shown(text)})") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 (all) or more (got {value})")
    return value


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

    text = text or ""
    out_of_range = ValueError(f"--until {_shown(text)} is out of range: times run from year 1 to 9999")
    match = _DURATION.match(text)
    if match:
        sign, amount, unit = match.groups()
        try:
            delta = timedelta(**{_UNITS[unit]: float(amount)})
            return (now or utcnow()) + (-delta if sign == "-" else delta)
        except OverflowError:
            raise out_of_range from None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(
            "--until must be an ISO 8601 time such as 2024-09-07T18:00 (UTC) or a duration such as 2h "
            f"(got {_shown(text)})"
        ) from None
    try:
        return to_naive_utc(moment)
    except OverflowError:
        raise out_of_range from None


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
            f"{printable(a.id)[:8]:<10} {printable(a.severity):<8} {printable(a.status):<13} "
            f"{printable(a.type):<27} {printable(a.constituency_id)[:12]:<14} {_when(a.detected_at):<16} "
            f"{printable(a.assigned_to or '-')[:12]:<12} {printable(a.title)}\n"
        )
    out.write(f"{len(alerts)} alert(s). `election-pipeline alerts show ID` for details (an id prefix is enough).\n")


def _print_alert(a: Any, out: Any = None) -> None:
    out = out or sys.stdout
    details = a.details or {}
    w = out.write
    w(f"{printable(a.title)}\n")
    w(f"  id:            {printable(a.id)}\n")
    w(f"  rule:          {printable(a.type)}\n")
    w(f"  severity:      {printable(a.severity)}\n")
    w(
        f"  status:        {printable(a.status)}"
        + (f" until {_when(a.snoozed_until)} UTC" if a.status == AlertStatus.SNOOZED and a.snoozed_until else "")
        + (f" at {_when(a.resolved_at)} UTC" if a.resolved_at else "")
        + "\n"
    )
    w(f"  assigned to:   {printable(a.assigned_to or '-')}\n")
    w(f"  constituency:  {printable(a.constituency_id)}\n")
    w(f"  detected:      {_when(a.detected_at)} UTC, last updated {_when(a.updated_at)} UTC\n")
    if details.get("window_start"):
        w(f"  window (UTC):  {printable(details['window_start'])} to {printable(details.get('window_end'))}\n")
    if details.get("hours"):
        hours = ", ".join(printable(h) for h in details["hours"][:12])
        w(f"  hours (UTC):   {hours}{' ...' if len(details['hours']) > 12 else ''}\n")
    statistic, expected, threshold = (printable(details.get(k)) for k in ("statistic", "expected", "threshold"))
    worse_when = printable(details.get("worse_when", "higher"))
    w(f"  statistic:     {statistic} (expected {expected}, threshold {threshold}, worse when {worse_when})\n")
    if details.get("condition_present") is False:
        w(f"  condition:     no longer present (cleared {printable(details.get('condition_cleared_at'))})\n")
    if a.description:
        w(f"\n  {_lines(a.description, '  ')}\n")
    figures = details.get("figures") or {}
    if figures:
        w("\n  figures:\n")
        for key, value in figures.items():
            w(f"    {printable(key)}: {json.dumps(value, default=str)}\n")
    evidence = details.get("evidence_tx_ids") or []
    w(f"\n  evidence ({len(evidence)} transaction id(s)):\n")
    for tx in evidence:
        w(f"    {printable(tx)}\n")
    notes = a.notes or []
    w(f"\n  notes ({len(notes)}):\n")
    for note in notes:
        if isinstance(note, dict):
            at, author = printable(note.get("at") or "-"), printable(note.get("author") or "unknown")
            w(f"    [{at}] {author}: {_lines(note.get('text'), '      ')}\n")
        else:
            w(f"    {_lines(note, '      ')}\n")


def _print_history(events: list[Any], out: Any = None) -> None:
    out = out or sys.stdout
    out.write(f"\n  history ({len(events)} change(s)):\n")
    for e in events:
        changes = "; ".join(
            f"{printable(k)}: {_brief(v.get('from'))} -> {_brief(v.get('to'))}" if isinstance(v, dict) else printable(k)
            for k, v in (e.changes or {}).items()
        )
        out.write(f"    [{_when(e.at)}] {printable(e.actor)} ({printable(e.action)}): {changes}\n")


def _brief(value: Any, limit: int = 60) -> str:
    text = "-" if value is None else printable(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def actor(args: argparse.Namespace) -> str:
    """Who the command line's changes are recorded as: ``--as NAME``, else the OS user."""
    import getpass

    given = getattr(args, "as_", None)
    if given is not None:
        name = _text(given.strip(), "--as", MAX_NAME)
        if not name:
            raise ValueError("--as must not be empty")
        return name
    try:
        return getpass.getuser()
    except (OSError, KeyError):
        return "unknown"


def _filter(value: str | None, option: str) -> str | None:
    """A ``list`` filter given on the command line: ``None`` (not given) or non-empty text."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError(f"{option} must not be empty")
    return _text(value, option, MAX_NAME)


def cmd_list(args: argparse.Namespace) -> int:
    constituency, rule = _filter(args.constituency, "--constituency"), _filter(args.rule, "--rule")
    with _crud() as crud:
        alerts = crud.list_alerts(
            severity=args.severity,
            status=args.status,
            constituency_id=constituency,
            rule=rule,
            limit=None if args.limit == 0 or args.limit > MAX_LIMIT else args.limit,
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


def show_json(crud: Any, alert: Any) -> dict[str, Any]:
    """``alerts show --format json``: the alert and its history (oldest first)."""
    history = [
        {"id": e.id, "at": e.at.isoformat(), "actor": e.actor, "action": e.action, "changes": e.changes}
        for e in crud.history(alert.id)
    ]
    return _as_json(alert) | {"history": history}


def cmd_show(args: argparse.Namespace) -> int:
    with _crud() as crud:
        alert = _find(crud, args.id)
        if args.format == "json":
            json.dump(show_json(crud, alert), sys.stdout, indent=2, default=str)
            sys.stdout.write("\n")
        else:
            _print_alert(alert)
            _print_history(crud.history(alert.id))
    return 0


def cmd_assign(args: argparse.Namespace) -> int:
    who = _text(args.who.strip(), "the assignee", MAX_NAME)
    if not who:
        raise ValueError("the assignee must not be empty: give a name, or - to unassign")
    with _crud() as crud:
        alert = crud.assign(_find(crud, args.id).id, None if who == "-" else who, actor=actor(args))
        print(f"{alert.id}: assigned to {alert.assigned_to}" if alert.assigned_to else f"{alert.id}: unassigned")
    return 0


def cmd_note(args: argparse.Namespace) -> int:
    text = _text(args.text.strip(), "the note", MAX_NOTE)
    author = None if args.author is None else _text(args.author.strip(), "--author", MAX_NAME)
    if author == "":
        raise ValueError("--author must not be empty")
    with _crud() as crud:
        alert = crud.add_note(id=_find(crud, args.id).id, note=text, author=author, actor=actor(args))
        print(f"{alert.id}: note added ({len(alert.notes)} note(s))")
    return 0


def cmd_status(args: argparse.Namespace) -> int:
    if args.status == AlertStatus.SNOOZED:
        raise ValueError("to snooze an alert use `election-pipeline alerts snooze ID --until WHEN`")
    with _crud() as crud:
        alert = crud.set_status(_find(crud, args.id).id, args.status, actor=actor(args))
        extra = f" at {_when(alert.resolved_at)} UTC" if alert.resolved_at else ""
        print(f"{alert.id}: status {alert.status}{extra}")
    return 0


def cmd_snooze(args: argparse.Namespace) -> int:
    from election_pipeline.db.models import utcnow

    until = parse_until(args.until)
    if until <= utcnow():
        raise ValueError(f"--until must be in the future (got {until:%Y-%m-%d %H:%M} UTC)")
    with _crud() as crud:
        alert = crud.snooze(_find(crud, args.id).id, until, actor=actor(args))
        print(f"{alert.id}: snoozed until {_when(alert.snoozed_until)} UTC")
    return 0


def _add_as(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--as", dest="as_", metavar="NAME", help="who the change is recorded as in the history (default: the OS user)"
    )


ID_HELP = f"alert id or a unique prefix ({MIN_ID_PREFIX}+ characters)"


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
    p.add_argument("--limit", type=_limit, default=100, help="at most this many (0: all; default 100)")
    p.add_argument("--format", choices=("table", "json"), default="table")
    p.set_defaults(func=cmd_list)

    p = cmds.add_parser("show", help="one alert with its figures, evidence and notes")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.set_defaults(func=cmd_show)

    p = cmds.add_parser("assign", help="assign an alert to someone ('-' to unassign)")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("who", help=f"a name (at most {MAX_NAME} characters), or - to unassign")
    _add_as(p)
    p.set_defaults(func=cmd_assign)

    p = cmds.add_parser("note", help="add an investigation note")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("text", help=f"the note (at most {MAX_NOTE} characters)")
    p.add_argument("--author", default=os.environ.get("USER") or None, help="who writes (default: $USER)")
    _add_as(p)
    p.set_defaults(func=cmd_note)

    p = cmds.add_parser("status", help="set the status: active, investigating or resolved")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("status")
    _add_as(p)
    p.set_defaults(func=cmd_status)

    p = cmds.add_parser("snooze", help="quiet an alert until a time")
    p.add_argument("id", help=ID_HELP)
    p.add_argument("--until", required=True, help="ISO 8601 time (naive = UTC) or a duration: 30m, 2h, 1d")
    _add_as(p)
    p.set_defaults(func=cmd_snooze)
