"""``election-pipeline report ...``: the metrics an observer asks for, from the operational database.

* ``report election ID``: the election's stored metrics (``election_metrics``) and its
  constituencies; CSV gives the constituencies.
* ``report constituency ID [--period hour|day|week|month] [--from T] [--to T]``: the
  constituency's totals, its figures per period of the election's local calendar and its
  activity by local hour of day; CSV gives the periods.
* ``report hourly ID [--from T] [--to T] [--window N]``: hour by hour (UTC) for a
  constituency or a whole election: counts, cumulative participation, issued-but-not-voted
  gap, velocities, the votes/bulletins ratio and its rolling average over N hours.
* ``report dashboard``: every election at a glance.

``--format table`` (default) prints aligned text, control characters of the data escaped;
``csv`` and ``json`` are for other tools. Times ``--from``/``--to`` are ISO 8601
(``2024-09-06T10:00``; without an offset they are UTC, ``+03:00`` or ``Z`` are accepted);
the range is ``[from, to)``, so ``--from`` must be before ``--to``. A bad argument exits
with status 2 and one line on stderr.

The figures come from :func:`election_report`, :func:`constituency_report`,
:func:`hourly_report` and :func:`~election_pipeline.stages.election_metrics.dashboard_summary`,
which the HTTP API (:mod:`election_pipeline.api`) calls too: both give the same answers.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import sys
from datetime import date, datetime
from typing import Any, TextIO

import pandas as pd

from election_pipeline.cli.alerts import printable
from election_pipeline.vocabulary import OPEN_STATUSES

FORMATS = ("table", "csv", "json")
#: The longest rolling window of ``report hourly`` (hours; a little over a year).
MAX_WINDOW = 10_000


# --------------------------------------------------------------------------------------
# Output
# --------------------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    """A value JSON and CSV can hold: ISO text for instants, None for NaN/NaT."""
    if value is None:
        return None
    if isinstance(value, pd.Timestamp):
        return None if pd.isna(value) else value.isoformat()
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, float) and math.isnan(value):
        return None
    if hasattr(value, "item"):  # numpy scalars
        return _plain(value.item())
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [{k: _plain(v) for k, v in row.items()} for row in frame.to_dict("records")]


def _cell(value: Any) -> str:
    value = _plain(value)
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4f}".rstrip("0").rstrip(".") if value != int(value) else f"{value:.0f}"
    return printable(value)


def print_table(rows: list[dict[str, Any]], out: TextIO, columns: list[str] | None = None) -> None:
    """Aligned columns; numbers right-aligned."""
    if not rows:
        out.write("  (no rows)\n")
        return
    columns = columns or list(rows[0].keys())
    text = [[_cell(r.get(c)) for c in columns] for r in rows]
    widths = [max(len(c), *(len(t[i]) for t in text)) for i, c in enumerate(columns)]
    numeric = [all(isinstance(_plain(r.get(c)), (int, float)) or r.get(c) is None for r in rows) for c in columns]
    out.write(
        "  ".join(c.rjust(w) if n else c.ljust(w) for c, w, n in zip(columns, widths, numeric, strict=False)).rstrip()
        + "\n"
    )
    out.write("  ".join("-" * w for w in widths) + "\n")
    for t in text:
        out.write(
            "  ".join(v.rjust(w) if n else v.ljust(w) for v, w, n in zip(t, widths, numeric, strict=False)).rstrip()
            + "\n"
        )


def print_pairs(pairs: list[tuple[str, Any]], out: TextIO) -> None:
    width = max(len(k) for k, _ in pairs)
    for k, v in pairs:
        out.write(f"  {k.ljust(width)}  {_cell(v)}\n")


def print_csv(rows: list[dict[str, Any]], out: TextIO) -> None:
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0].keys()), lineterminator="\n")
    writer.writeheader()
    for r in rows:
        writer.writerow({k: _plain(v) for k, v in r.items()})


def print_json(payload: Any, out: TextIO) -> None:
    json.dump(_plain(payload), out, indent=2, ensure_ascii=False)
    out.write("\n")


# --------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------


def _engine():
    from election_pipeline.db.session import create_tables, get_engine
    from election_pipeline.settings import load_settings

    engine = get_engine(load_settings().database_url)
    create_tables(engine)
    return engine


def constituency_rows(engine, election_id: str) -> list[dict[str, Any]]:
    """The constituencies of an election with their totals and open alerts, the most
    anomalous first."""
    from sqlalchemy import func, select

    from election_pipeline.db.models import Alert, Constituency

    open_alerts = (
        select(Alert.constituency_id, func.count().label("n"))
        .where(Alert.status.in_(OPEN_STATUSES))
        .group_by(Alert.constituency_id)
        .subquery()
    )
    with engine.connect() as conn:
        rows = (
            conn.execute(
                select(
                    Constituency.id,
                    Constituency.name,
                    Constituency.region,
                    Constituency.status,
                    Constituency.registered_voters,
                    Constituency.bulletins_issued,
                    Constituency.votes_cast,
                    Constituency.revote_count,
                    Constituency.rejected_count,
                    Constituency.transaction_count,
                    Constituency.participation_rate,
                    Constituency.anomaly_score,
                    func.coalesce(open_alerts.c.n, 0).label("open_alerts"),
                    Constituency.last_update_time,
                )
                .outerjoin(open_alerts, open_alerts.c.constituency_id == Constituency.id)
                .where(Constituency.election_id == election_id)
                .order_by(Constituency.anomaly_score.desc(), Constituency.id)
            )
            .mappings()
            .all()
        )
    out = []
    for r in rows:
        d = dict(r)
        d["issued_not_voted"] = d["bulletins_issued"] - d["votes_cast"]
        d["last_activity"] = d.pop("last_update_time")
        out.append(d)
    return out


def election_report(engine, election_id: str) -> dict[str, Any]:
    """``report election``: the election's stored metrics and its constituencies
    (``LookupError`` for an unknown election or one without metrics yet)."""
    from election_pipeline.stages.election_metrics import stored_election_metrics

    return {
        "election": stored_election_metrics(engine, election_id),
        "constituencies": constituency_rows(engine, election_id),
    }


def cmd_election(args: argparse.Namespace) -> int:
    out = sys.stdout
    report = election_report(_engine(), args.id)
    metrics, constituencies = report["election"], report["constituencies"]
    if args.format == "json":
        print_json({"election": metrics, "constituencies": constituencies}, out)
        return 0
    if args.format == "csv":
        print_csv(constituencies, out)
        return 0
    s = metrics.get("summary") or {}
    e = s.get("election", {})
    name, status, zone = (printable(e.get(k, d)) for k, d in (("name", args.id), ("status", ""), ("timezone", "")))
    out.write(f"\n{name}  ({status}, {zone})\n")
    out.write(
        f"  voting window {e.get('start_date')} - {e.get('end_date')} UTC; figures as of {s.get('as_of')} UTC\n\n"
    )
    print_pairs(
        [
            ("constituencies", metrics["total_constituencies"]),
            ("reporting", metrics["constituencies_reporting"]),
            ("offline", metrics["constituencies_offline"]),
            ("never reported", (s.get("constituencies") or {}).get("never_reported", 0)),
            ("with critical alerts", metrics["constituencies_with_critical_alerts"]),
            ("registered voters", metrics["registered_voters"]),
            ("bulletins issued", metrics["bulletins_issued"]),
            ("voters (votes cast)", metrics["votes_cast"]),
            ("revotes", metrics["revote_count"]),
            ("rejected transactions", metrics["rejected_count"]),
            ("transactions", metrics["transaction_count"]),
            ("participation %", metrics["participation_rate"]),
            ("issued but not voted", metrics["issued_not_voted"]),
            ("first activity (UTC)", metrics["first_activity"]),
            ("last activity (UTC)", metrics["last_activity"]),
            ("open alerts critical", metrics["open_alerts_critical"]),
            ("open alerts warning", metrics["open_alerts_warning"]),
            ("open alerts info", metrics["open_alerts_info"]),
            ("peak hour (UTC)", (s.get("peak_hour") or {}).get("hour")),
            ("metrics updated (UTC)", metrics["updated_at"]),
        ],
        out,
    )
    out.write("\nConstituencies (most anomalous first)\n")
    print_table(
        constituencies,
        out,
        [
            "name",
            "region",
            "registered_voters",
            "bulletins_issued",
            "votes_cast",
            "participation_rate",
            "issued_not_voted",
            "anomaly_score",
            "open_alerts",
            "id",
        ],
    )
    return 0


def constituency_report(
    engine, constituency_id: str, period: str = "day", start: datetime | None = None, end: datetime | None = None
) -> dict[str, Any]:
    """``report constituency``: the constituency's totals, its figures per ``period`` of
    the election's local calendar and its activity by local hour of day, over
    ``[start, end)`` (``LookupError`` for an unknown constituency, ``ValueError`` for an
    unknown period)."""
    from election_pipeline.analytics import period_metrics as pm

    scope = pm.constituency_scope(engine, constituency_id)
    series = pm.hourly_series(engine, scope)
    periods = records(pm.metrics_by_period(engine, scope, period, start, end, series=series))
    pattern = records(pm.hourly_activity_pattern(engine, scope, start, end, series=series))
    rows = [r for r in constituency_rows(engine, scope.election_id) if r["id"] == scope.id] if scope.election_id else []
    totals = rows[0] if rows else _unassigned(engine, scope.id)
    return {
        "constituency": totals | {"election_id": scope.election_id, "timezone": scope.timezone},
        "period": period,
        "from": start,
        "to": end,
        "by_period": periods,
        "hourly_activity_pattern": pattern,
    }


def cmd_constituency(args: argparse.Namespace) -> int:
    out = sys.stdout
    from election_pipeline.analytics import period_metrics as pm

    start, end = _range(args)
    engine = _engine()
    report = constituency_report(engine, args.id, args.period, start, end)
    scope = pm.constituency_scope(engine, args.id)
    totals, periods, pattern = report["constituency"], report["by_period"], report["hourly_activity_pattern"]
    if args.format == "json":
        print_json(report, out)
        return 0
    if args.format == "csv":
        print_csv(periods, out)
        return 0
    out.write(
        f"\n{printable(totals['name'])}  ({printable(scope.id)})\n  region {printable(totals.get('region') or '-')}; "
        f"election {printable(scope.election_id or '(none: not in the reference data)')}; "
        f"local time {printable(scope.timezone)}\n\n"
    )
    print_pairs(
        [
            (k, totals.get(k))
            for k in (
                "registered_voters",
                "bulletins_issued",
                "votes_cast",
                "revote_count",
                "rejected_count",
                "transaction_count",
                "participation_rate",
                "issued_not_voted",
                "anomaly_score",
                "open_alerts",
                "last_activity",
            )
        ],
        out,
    )
    out.write(f"\nBy {args.period} (local calendar, {scope.timezone})\n")
    print_table(
        periods,
        out,
        [
            "period_start",
            "hours_with_activity",
            "bulletins_issued",
            "votes_cast",
            "revote_count",
            "transaction_count",
            "participation_rate",
            "participation_gain",
            "issued_not_voted",
            "vote_velocity",
            "peak_vote_velocity",
            "vote_share",
            "anomaly_count",
        ],
    )
    out.write(f"\nActivity by local hour of day ({scope.timezone})\n")
    print_table(pattern, out)
    return 0


def _unassigned(engine, constituency_id: str) -> dict[str, Any]:
    from sqlalchemy import select

    from election_pipeline.db.models import Constituency

    with engine.connect() as conn:
        row = conn.execute(select(Constituency.__table__).where(Constituency.id == constituency_id)).mappings().one()
    d = dict(row)
    d["issued_not_voted"] = d["bulletins_issued"] - d["votes_cast"]
    d["last_activity"] = d.get("last_update_time")
    d["open_alerts"] = None
    return d


HOURLY_COLUMNS = [
    "hour",
    "local_time",
    "bulletins_issued",
    "votes_cast",
    "revote_count",
    "rejected_count",
    "transaction_count",
    "cumulative_votes",
    "participation_rate",
    "issued_not_voted",
    "bulletin_velocity",
    "vote_velocity",
    "vote_to_bulletin_ratio",
    "rolling_vote_velocity",
    "rolling_ratio",
    "anomaly_count",
]


def hourly_report(
    engine,
    scope_id: str,
    window: int = 3,
    start: datetime | None = None,
    end: datetime | None = None,
    kind: str | None = None,
) -> dict[str, Any]:
    """``report hourly``: hour by hour (UTC) over ``[start, end)`` for a constituency or
    an election (``kind``: ``constituency`` or ``election`` only; ``None``: a constituency
    with this id, else an election), with a rolling window of ``window`` hours.
    ``LookupError`` when there is no such scope."""
    from election_pipeline.analytics import period_metrics as pm

    if kind == "constituency":
        scope = pm.constituency_scope(engine, scope_id)
    elif kind == "election":
        scope = pm.election_scope(engine, scope_id)
    else:
        scope = pm.find_scope(engine, scope_id)
    series = pm.hourly_series(engine, scope)
    hourly = pm.clip_range(series, start, end)
    trend = pm.velocity_trend(engine, scope, window, start, end, series=series)
    frame = hourly.merge(
        trend[["hour", "vote_to_bulletin_ratio", "rolling_vote_velocity", "rolling_ratio"]], on="hour", how="left"
    )
    frame["local_time"] = [
        pd.Timestamp(h).tz_localize("UTC").tz_convert(scope.tz).strftime("%Y-%m-%d %H:%M") for h in frame["hour"]
    ]
    rows = records(frame[HOURLY_COLUMNS]) if len(frame) else []
    return {
        "scope": scope.kind,
        "id": scope.id,
        "name": scope.name,
        "timezone": scope.timezone,
        "registered_voters": scope.registered_voters,
        "from": start,
        "to": end,
        "rolling_window_hours": window,
        "hours": rows,
    }


def cmd_hourly(args: argparse.Namespace) -> int:
    out = sys.stdout
    start, end = _range(args)
    report = hourly_report(_engine(), args.id, args.window, start, end)
    rows = report["hours"]
    if args.format == "json":
        print_json(report, out)
        return 0
    if args.format == "csv":
        print_csv(rows, out)
        return 0
    out.write(
        f"\n{report['scope']} {printable(report['name'])} ({printable(report['id'])}): hour by hour, UTC "
        f"(local time {printable(report['timezone'])}); "
        f"rolling window {args.window} h\n"
    )
    print_table(rows, out, HOURLY_COLUMNS)
    return 0


def cmd_dashboard(args: argparse.Namespace) -> int:
    out = sys.stdout
    from election_pipeline.stages.election_metrics import dashboard_summary

    summary = dashboard_summary(_engine())
    if args.format == "json":
        print_json(summary, out)
        return 0
    if args.format == "csv":
        print_csv(summary["per_election"], out)
        return 0
    pairs = [(k, v) for k, v in summary.items() if not isinstance(v, (dict, list))]
    for key in ("open_alerts", "open_alerts_by_rule", "files"):
        pairs += [(f"{key.replace('_', ' ')}: {k}", v) for k, v in summary[key].items()]
    out.write("\nAll elections\n")
    print_pairs(pairs, out)
    out.write("\nElections\n")
    print_table(summary["per_election"], out)
    return 0


def _add_format(p: argparse.ArgumentParser) -> None:
    p.add_argument("--format", choices=FORMATS, default="table", help="output format (default: table)")


def _moment(text: str | None, option: str) -> datetime | None:
    """``--from``/``--to``: ISO 8601 text -> naive UTC; a ``ValueError`` naming ``option``."""
    from election_pipeline.analytics.period_metrics import to_utc_naive

    try:
        return to_utc_naive(text)
    except ValueError:
        raise ValueError(
            f"{option}: not an ISO 8601 date or time such as 2024-09-06T10:00 (got {str(text)[:40]!r})"
        ) from None
    except OverflowError:
        raise ValueError(f"{option} {str(text)[:40]!r} is out of range: times run from year 1 to 9999") from None


def _window(text: str) -> int:
    """``--window``: a whole number of hours from 1 to :data:`MAX_WINDOW`."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= MAX_WINDOW:
        raise argparse.ArgumentTypeError(f"must be a whole number of hours from 1 to {MAX_WINDOW} (got {text[:40]!r})")
    return value


def _range(args: argparse.Namespace) -> tuple[datetime | None, datetime | None]:
    """``[--from, --to)`` as naive UTC; a ``ValueError`` unless both are times and ``--from``
    is before ``--to``."""
    start, end = _moment(args.start, "--from"), _moment(args.end, "--to")
    if start is not None and end is not None and start >= end:
        raise ValueError(
            f"--from must be before --to (the range is [from, to)): got --from {start:%Y-%m-%dT%H:%M} "
            f"and --to {end:%Y-%m-%dT%H:%M} UTC"
        )
    return start, end


def _add_range(p: argparse.ArgumentParser) -> None:
    p.add_argument("--from", dest="start", metavar="TIME", help="start of the range, ISO 8601 (UTC without offset)")
    p.add_argument("--to", dest="end", metavar="TIME", help="end of the range (excluded), ISO 8601")


def register(sub: argparse._SubParsersAction) -> None:
    report = sub.add_parser(
        "report", help="metrics of an election, a constituency or hour by hour", description=__doc__.split("\n\n")[0]
    )
    kinds = report.add_subparsers(dest="report", required=True)

    election = kinds.add_parser("election", help="an election's metrics and its constituencies")
    election.add_argument("id", help="election id (elections.csv)")
    _add_format(election)
    election.set_defaults(func=cmd_election)

    constituency = kinds.add_parser("constituency", help="a constituency's metrics by period and by local hour")
    constituency.add_argument("id", help="constituency (contract) id")
    constituency.add_argument(
        "--period",
        choices=("hour", "day", "week", "month"),
        default="day",
        help="group by this period of the election's local calendar (default: day)",
    )
    _add_range(constituency)
    _add_format(constituency)
    constituency.set_defaults(func=cmd_constituency)

    hourly = kinds.add_parser("hourly", help="hour by hour for a constituency or an election")
    hourly.add_argument("id", help="constituency (contract) id or election id")
    hourly.add_argument(
        "--window", type=_window, default=3, help=f"rolling window in hours, 1 to {MAX_WINDOW} (default: 3)"
    )
    _add_range(hourly)
    _add_format(hourly)
    hourly.set_defaults(func=cmd_hourly)

    dashboard = kinds.add_parser("dashboard", help="every election at a glance")
    _add_format(dashboard)
    dashboard.set_defaults(func=cmd_dashboard)
