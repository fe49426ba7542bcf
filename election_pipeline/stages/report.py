"""Report stage: charts an observer would rather look at than read, and one HTML page per election.

For every election, five PNG charts (matplotlib, drawn without a display):

1. ``participation.png``: cumulative participation of each constituency over time (UTC),
   against the **peer band**: the 10th-90th percentile and the median of all the
   election's constituencies at each hour. The most anomalous constituencies are drawn in
   colour and named; a line climbing out of the band is what to look at.
2. ``votes_vs_bulletins.png``: bulletins issued and votes cast in each UTC hour, and below
   it the issued-but-not-voted gap (bulletins − voters so far). The gap going below zero
   means more voters than bulletins.
3. ``alert_timeline.png``: every alert of the election as a bar over the hours it concerns,
   one row per constituency, coloured by severity (faded once resolved).
4. ``region_hour_heatmap.png``: votes cast per region and UTC hour, as a share of the
   region's registered voters: night-time activity and one region's spike stand out.
5. ``local_hour_pattern.png``: share of votes and bulletins by local hour of day
   (``Election.timezone``).

:func:`write_reports` writes them, with a self-contained ``report.html`` (charts embedded
as base64, figures and tables inline; it opens from a USB stick or an e-mail), into
``<reports dir>/<election id>/``, plus an ``index.html`` listing the elections.
"""

from __future__ import annotations

import base64
import html
import io
import os
import re
import threading
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from sqlalchemy import Engine, func, select

from election_pipeline.analytics import period_metrics as pm
from election_pipeline.db.models import Alert, Constituency, Election, ElectionMetrics, Transaction, utcnow
from election_pipeline.vocabulary import OPEN_STATUSES, SEVERITY_RANK, AlertStatus, Severity

from .election_metrics import compute_election_metrics

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# matplotlib is imported by the chart functions themselves: only the election report draws,
# and every other step of a run (a new process each time) starts without it (about 1.3 s).

SEVERITY_COLOURS = {Severity.CRITICAL: "#c62828", Severity.WARNING: "#ef8f00", Severity.INFO: "#1e88e5"}
HIGHLIGHT_COLOURS = ["#c62828", "#6a1b9a", "#00838f", "#ef6c00", "#2e7d32", "#ad1457"]
DPI = 90


@dataclass
class Chart:
    """One chart: ``name`` is its file stem, ``png`` its bytes."""

    name: str
    title: str
    caption: str
    png: bytes

    def data_uri(self) -> str:
        return "data:image/png;base64," + base64.b64encode(self.png).decode("ascii")


@dataclass
class ElectionReport:
    """What was written for one election."""

    election_id: str
    election_name: str
    folder: Path
    html_path: Path
    charts: list[Chart] = field(default_factory=list)
    figures: dict[str, Any] = field(default_factory=dict)


def safe_name(text: str) -> str:
    """A file-system-safe folder name for an election id."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")
    return cleaned[:100] or "election"


# --------------------------------------------------------------------------------------
# Data
# --------------------------------------------------------------------------------------


@dataclass
class _ElectionData:
    engine: Engine
    election: Any
    scope: pm.Scope
    rows: pd.DataFrame  # hourly_stats rows of the members
    series: pd.DataFrame  # the election's hourly series
    members: pd.DataFrame  # constituencies
    alerts: pd.DataFrame


def _load(engine: Engine, election_id: str) -> _ElectionData:
    scope = pm.election_scope(engine, election_id)
    with engine.connect() as conn:
        election = conn.execute(select(Election.__table__).where(Election.id == election_id)).one()
        members = pd.DataFrame(
            conn.execute(
                select(
                    Constituency.id,
                    Constituency.name,
                    Constituency.region,
                    Constituency.registered_voters,
                    Constituency.votes_cast,
                    Constituency.bulletins_issued,
                    Constituency.participation_rate,
                    Constituency.anomaly_score,
                    Constituency.status,
                )
                .where(Constituency.election_id == election_id)
                .order_by(Constituency.id)
            ).all(),
            columns=[
                "id",
                "name",
                "region",
                "registered_voters",
                "votes_cast",
                "bulletins_issued",
                "participation_rate",
                "anomaly_score",
                "status",
            ],
        )
        alerts = pd.DataFrame(
            conn.execute(
                select(
                    Alert.constituency_id,
                    Alert.type,
                    Alert.severity,
                    Alert.status,
                    Alert.title,
                    Alert.details,
                    Alert.detected_at,
                )
                .join(Constituency, Constituency.id == Alert.constituency_id)
                .where(Constituency.election_id == election_id)
                .order_by(Alert.constituency_id, Alert.type, Alert.fingerprint)
            ).all(),
            columns=["constituency_id", "type", "severity", "status", "title", "details", "detected_at"],
        )
        # The blocks each contract's transactions came in (read from block dumps only).
        blocks = {
            cid: (int(low), int(high))
            for cid, low, high in conn.execute(
                select(
                    Transaction.constituency_id, func.min(Transaction.block_height), func.max(Transaction.block_height)
                )
                .join(Constituency, Constituency.id == Transaction.constituency_id)
                .where(Constituency.election_id == election_id, Transaction.block_height.is_not(None))
                .group_by(Transaction.constituency_id)
            ).all()
        }
    members["blocks"] = [blocks.get(cid) for cid in members["id"]]
    rows = pm.constituency_hours(engine, scope)
    series = pm.hourly_series(engine, scope, rows=rows)
    return _ElectionData(engine, election, scope, rows, series, members, alerts)


# --------------------------------------------------------------------------------------
# Charts
# --------------------------------------------------------------------------------------


def _png(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    return buf.getvalue()


def _empty(fig: Figure, ax: Any, message: str) -> bytes:
    ax.text(0.5, 0.5, message, ha="center", va="center", transform=ax.transAxes, fontsize=11, color="#555")
    ax.set_xticks([])
    ax.set_yticks([])
    return _png(fig)


def _time_axis(ax: Any) -> None:
    from matplotlib import dates as mdates

    locator = mdates.AutoDateLocator(minticks=4, maxticks=10)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b\n%H:%M"))
    ax.grid(True, axis="both", alpha=0.25)


def _short(name: str, limit: int = 28) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def cumulative_participation(rows: pd.DataFrame, registered: pd.Series) -> pd.DataFrame:
    """Participation (%) of each constituency (columns) at the **end** of each UTC hour
    (index), from ``hourly_stats`` rows; ``registered`` maps constituency id to its
    registered voters (> 0). Silent hours carry the previous figure; before its first
    transaction a constituency stands at 0."""
    index = pd.date_range(rows["hour"].min(), rows["hour"].max(), freq="h")
    wide = rows.pivot(index="hour", columns="constituency_id", values="cumulative_votes").reindex(index)
    wide = wide.ffill().fillna(0).reindex(columns=registered.index, fill_value=0)
    rate = wide.div(registered, axis=1) * 100.0
    rate.index = index + timedelta(hours=1)
    return rate


def peer_band(rate: pd.DataFrame) -> tuple[pd.Series, pd.Series, pd.Series]:
    """The peer band at each instant: 10th percentile, median and 90th percentile across
    constituencies (linear interpolation between ranks)."""
    return rate.quantile(0.1, axis=1), rate.median(axis=1), rate.quantile(0.9, axis=1)


def participation_chart(data: _ElectionData) -> Chart:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 4.6))
    ax = fig.add_subplot()
    title = "Cumulative participation per constituency, with the peer band"
    caption = (
        "Participation (voters / registered × 100) at the end of each UTC hour. Grey band: 10th-90th "
        "percentile of the election's constituencies; dashed: their median. Coloured: the most anomalous."
    )
    registered = data.members.set_index("id")["registered_voters"]
    counted = registered[registered > 0]
    if data.rows.empty or counted.empty:
        return Chart("participation", title, caption, _empty(fig, ax, "No hourly figures yet"))
    rate = cumulative_participation(data.rows, counted)
    x = rate.index
    low, mid, high = peer_band(rate)
    ax.fill_between(x, low, high, color="#9e9e9e", alpha=0.35, label="peer band (P10-P90)", step=None)
    ax.plot(x, mid, color="#424242", linestyle="--", linewidth=1.3, label="peer median")
    ranked = data.members[data.members["id"].isin(counted.index)].sort_values(
        ["anomaly_score", "id"], ascending=[False, True]
    )
    highlighted = list(ranked[ranked["anomaly_score"] > 0]["id"].head(len(HIGHLIGHT_COLOURS)))
    if len(counted) <= 40:
        for cid in counted.index:
            if cid not in highlighted:
                ax.plot(x, rate[cid], color="#757575", linewidth=0.7, alpha=0.6)
    names = data.members.set_index("id")["name"]
    for colour, cid in zip(HIGHLIGHT_COLOURS, highlighted, strict=False):
        score = float(data.members.set_index("id").loc[cid, "anomaly_score"])
        ax.plot(x, rate[cid], color=colour, linewidth=2.0, label=f"{_short(names[cid])} (score {score:.2f})")
    ax.set_ylabel("participation, %")
    ax.set_xlabel("time (UTC)")
    ax.set_ylim(bottom=0)
    _time_axis(ax)
    ax.set_title(f"{data.election.name}: cumulative participation", fontsize=12, loc="left")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    return Chart("participation", title, caption, _png(fig))


def votes_vs_bulletins_chart(data: _ElectionData) -> Chart:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 5.2))
    title = "Hourly votes vs bulletins, and the issued-but-not-voted gap"
    caption = (
        "Top: bulletins issued and votes cast (first votes of distinct voters) in each UTC hour. Bottom: "
        "bulletins issued minus voters so far; below zero there are more voters than bulletins."
    )
    if data.series.empty:
        return Chart("votes_vs_bulletins", title, caption, _empty(fig, fig.add_subplot(), "No hourly figures yet"))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [2.2, 1]})
    s = data.series
    width = 1 / 24 * 0.42
    top.bar(
        s["hour"] + timedelta(minutes=14),
        s["bulletins_issued"],
        width=width,
        color="#90caf9",
        label="bulletins issued",
        align="center",
    )
    top.bar(
        s["hour"] + timedelta(minutes=40),
        s["votes_cast"],
        width=width,
        color="#1a237e",
        label="votes cast",
        align="center",
    )
    top.set_ylabel("per hour")
    top.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    top.set_title(f"{data.election.name}: bulletins and votes per hour", fontsize=12, loc="left")
    _time_axis(top)
    gap = s["issued_not_voted"]
    x = s["hour"] + timedelta(hours=1)
    bottom.plot(x, gap, color="#37474f", linewidth=1.5)
    bottom.fill_between(
        x, gap, 0, where=gap < 0, color="#c62828", alpha=0.35, interpolate=True, label="more voters than bulletins"
    )
    bottom.fill_between(
        x, gap, 0, where=gap >= 0, color="#81c784", alpha=0.35, interpolate=True, label="bulletins not (yet) used"
    )
    bottom.axhline(0, color="#000", linewidth=0.6)
    bottom.set_ylabel("issued − voted")
    bottom.set_xlabel("time (UTC)")
    bottom.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    _time_axis(bottom)
    return Chart("votes_vs_bulletins", title, caption, _png(fig))


def alert_timeline_chart(data: _ElectionData) -> Chart:
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure
    from matplotlib.patches import Patch

    title = "Alert timeline"
    caption = (
        "Each alert as a bar over the UTC hours it concerns, one row per constituency and rule, coloured "
        "by severity; faded once resolved. Diamonds: alerts about the whole election rather than an hour."
    )
    alerts = data.alerts
    names = data.members.set_index("id")["name"].to_dict()
    lanes = sorted({(names.get(c, c), c, t) for c, t in zip(alerts["constituency_id"], alerts["type"], strict=False)})
    fig = Figure(figsize=(7.6, max(2.6, 1.3 + 0.42 * len(lanes))))
    ax = fig.add_subplot()
    if not lanes:
        return Chart("alert_timeline", title, caption, _empty(fig, ax, "No alerts for this election"))
    if len(data.series):
        origin, finish = data.series["hour"].min(), data.series["hour"].max() + timedelta(hours=1)
    else:
        origin, finish = pd.Timestamp(data.election.start_date), pd.Timestamp(data.election.end_date)
    y_of = {(c, t): i for i, (_, c, t) in enumerate(lanes)}
    for rec in sorted(alerts.itertuples(), key=lambda r: SEVERITY_RANK.get(r.severity, 0)):
        details = rec.details or {}
        colour = SEVERITY_COLOURS.get(rec.severity, "#607d8b")
        alpha = 0.35 if rec.status == AlertStatus.RESOLVED else 0.9
        start, end = details.get("window_start"), details.get("window_end")
        y = y_of[(rec.constituency_id, rec.type)]
        if start:
            s = pd.Timestamp(start)
            e = pd.Timestamp(end) if end else s + timedelta(hours=1)
            ax.barh(
                y,
                mdates.date2num(e) - mdates.date2num(s),
                left=mdates.date2num(s),
                height=0.6,
                color=colour,
                alpha=alpha,
                edgecolor="white",
                linewidth=0.8,
            )
        else:
            ax.plot([mdates.date2num(origin)], [y], marker="D", markersize=9, color=colour, alpha=alpha, clip_on=False)
    ax.set_yticks(range(len(lanes)))
    ax.set_yticklabels([f"{_short(n, 30)} · {t}" for n, _, t in lanes], fontsize=9)
    ax.invert_yaxis()
    ax.xaxis_date()
    ax.set_xlim(mdates.date2num(origin), mdates.date2num(finish))
    ax.set_xlabel("time (UTC)")
    _time_axis(ax)
    handles = [
        Patch(color=c, label=f"{sev} ({int((alerts['severity'] == sev).sum())})") for sev, c in SEVERITY_COLOURS.items()
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.32 if len(lanes) < 4 else -0.18),
        fontsize=8,
        frameon=False,
        ncols=3,
    )
    ax.set_title(f"{data.election.name}: alerts ({len(alerts)})", fontsize=12, loc="left")
    return Chart("alert_timeline", title, caption, _png(fig))


def region_hour_heatmap(data: _ElectionData) -> Chart:
    from matplotlib import dates as mdates
    from matplotlib.figure import Figure

    title = "Region × hour heat map of votes"
    caption = (
        "Votes cast in each UTC hour by the constituencies of a region, as a share of the region's "
        "registered voters (%). Night hours and a single region's spike stand out."
    )
    regions = data.members.assign(region=data.members["region"].replace("", "(no region)"))
    region_of = regions.set_index("id")["region"]
    reg_total = regions.groupby("region")["registered_voters"].sum()
    n_regions = max(1, len(reg_total))
    fig = Figure(figsize=(9, max(2.6, 1.3 + 0.42 * n_regions)))
    ax = fig.add_subplot()
    if data.rows.empty:
        return Chart("region_hour_heatmap", title, caption, _empty(fig, ax, "No hourly figures yet"))
    rows = data.rows.assign(region=data.rows["constituency_id"].map(region_of))
    index = pd.date_range(data.rows["hour"].min(), data.rows["hour"].max(), freq="h")
    votes = rows.pivot_table(index="region", columns="hour", values="votes_cast", aggfunc="sum", fill_value=0)
    votes = votes.reindex(columns=index, fill_value=0).reindex(sorted(reg_total.index), fill_value=0)
    denom = reg_total.reindex(votes.index).where(lambda v: v > 0)
    share = votes.div(denom, axis=0) * 100.0
    x0, x1 = mdates.date2num(index[0]), mdates.date2num(index[-1] + timedelta(hours=1))
    image = ax.imshow(
        share.to_numpy(dtype=float),
        aspect="auto",
        cmap="magma_r",
        interpolation="nearest",
        extent=(x0, x1, len(share) - 0.5, -0.5),
    )
    ax.set_yticks(range(len(share)))
    ax.set_yticklabels([_short(str(r), 30) for r in share.index], fontsize=9)
    ax.xaxis_date()
    _time_axis(ax)
    ax.grid(False)
    ax.set_xlabel("time (UTC)")
    bar = fig.colorbar(image, ax=ax, pad=0.01)
    bar.set_label("votes in the hour, % of registered", fontsize=8)
    ax.set_title(f"{data.election.name}: votes by region and hour", fontsize=12, loc="left")
    return Chart("region_hour_heatmap", title, caption, _png(fig))


def local_hour_pattern_chart(data: _ElectionData) -> Chart:
    from matplotlib.figure import Figure

    tzname = data.scope.timezone
    title = "Hourly activity pattern (local time)"
    caption = (
        f"Share of all votes and bulletins cast in each hour of the day, local time ({tzname}), "
        "summed over the voting days."
    )
    fig = Figure(figsize=(9, 3.4))
    ax = fig.add_subplot()
    if data.series.empty:
        return Chart("local_hour_pattern", title, caption, _empty(fig, ax, "No hourly figures yet"))
    pattern = pm.hourly_activity_pattern(data.engine, data.scope, series=data.series)
    hours = pattern["local_hour"]
    ax.bar(hours - 0.2, pattern["bulletin_share"], width=0.4, color="#90caf9", label="bulletins issued")
    ax.bar(hours + 0.2, pattern["vote_share"], width=0.4, color="#1a237e", label="votes cast")
    ax.set_xticks(range(24))
    ax.set_xticklabels([f"{h:02d}" for h in range(24)], fontsize=8)
    ax.set_xlabel(f"hour of day ({tzname})")
    ax.set_ylabel("share, %")
    ax.grid(True, axis="y", alpha=0.25)
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=8, frameon=False)
    ax.set_title(f"{data.election.name}: activity by local hour", fontsize=12, loc="left")
    return Chart("local_hour_pattern", title, caption, _png(fig))


CHARTS = (
    participation_chart,
    votes_vs_bulletins_chart,
    alert_timeline_chart,
    region_hour_heatmap,
    local_hour_pattern_chart,
)


# --------------------------------------------------------------------------------------
# HTML
# --------------------------------------------------------------------------------------

_CSS = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:2rem auto;max-width:1180px;
     color:#1f2933;padding:0 1rem}
h1{font-size:1.6rem;margin-bottom:.2rem}h2{font-size:1.2rem;margin-top:2.2rem;border-bottom:1px solid #ddd}
.muted{color:#616e7c}.cards{display:flex;flex-wrap:wrap;gap:.8rem;margin:1rem 0}
.card{border:1px solid #d9e2ec;border-radius:8px;padding:.6rem .9rem;min-width:150px}
.card b{display:block;font-size:1.35rem}.card.critical b{color:#c62828}
table{border-collapse:collapse;font-size:.86rem;margin:.6rem 0}th,td{border-bottom:1px solid #e4e7eb;
padding:.3rem .6rem;text-align:left}th{background:#f5f7fa}td.n{text-align:right;font-variant-numeric:tabular-nums}
figure{margin:1.2rem 0}figure img{max-width:100%;border:1px solid #e4e7eb}figcaption{font-size:.86rem;color:#52606d}
.sev-critical{color:#c62828;font-weight:600}.sev-warning{color:#b26a00;font-weight:600}.sev-info{color:#1565c0}
"""


def _esc(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _table(headers: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = []
    for row in rows:
        cells = []
        for i, v in enumerate(row):
            if isinstance(v, tuple):  # (text, css class)
                cells.append(f'<td class="{_esc(v[1])}">{_esc(v[0])}</td>')
            else:
                cells.append(f'<td class="n">{_esc(v)}</td>' if i in numeric else f"<td>{_esc(v)}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def render_html(data: _ElectionData, figures: dict[str, Any], charts: list[Chart], generated_at: str) -> str:
    e = data.election
    cards = [
        ("participation", f"{figures['participation_rate']:.2f} %"),
        ("voters", f"{figures['votes_cast']:,}"),
        ("registered voters", f"{figures['registered_voters']:,}"),
        ("bulletins issued", f"{figures['bulletins_issued']:,}"),
        ("issued − voted", f"{figures['issued_not_voted']:,}"),
        ("constituencies reporting", f"{figures['constituencies_reporting']} / {figures['total_constituencies']}"),
        ("offline", str(figures["constituencies_offline"])),
        ("open critical alerts", str(figures["open_alerts_critical"])),
        ("open warnings", str(figures["open_alerts_warning"])),
    ]
    card_html = "".join(
        f'<div class="card{" critical" if "critical" in label and value != "0" else ""}"><b>{_esc(value)}</b>'
        f'<span class="muted">{_esc(label)}</span></div>'
        for label, value in cards
    )
    members = data.members.sort_values(["anomaly_score", "participation_rate", "id"], ascending=[False, False, True])
    open_by_c = data.alerts[data.alerts["status"].isin(OPEN_STATUSES)].groupby("constituency_id").size()
    with_blocks = any(b is not None for b in data.members["blocks"])
    c_rows = [
        [
            r.name,
            r.region,
            r.registered_voters,
            r.bulletins_issued,
            r.votes_cast,
            f"{r.participation_rate:.2f}",
            f"{r.anomaly_score:.2f}",
            int(open_by_c.get(r.id, 0)),
            r.id,
            *([f"{r.blocks[0]:,}–{r.blocks[1]:,}" if r.blocks else ""] if with_blocks else []),
        ]
        for r in members.head(300).itertuples()
    ]
    names = data.members.set_index("id")["name"].to_dict()
    # The most severe first (an unknown severity last), then by constituency.
    a_sorted = sorted(
        data.alerts.itertuples(), key=lambda r: (-SEVERITY_RANK.get(r.severity, -1), str(r.constituency_id))
    )
    a_rows = [
        [
            (r.severity, f"sev-{r.severity}"),
            r.type,
            names.get(r.constituency_id, r.constituency_id),
            r.status,
            (r.details or {}).get("window_start") or "whole election",
            r.title,
        ]
        for r in a_sorted[:200]
    ]
    chart_html = "".join(
        f'<figure id="{_esc(c.name)}"><img alt="{_esc(c.title)}" src="{c.data_uri()}">'
        f"<figcaption><b>{_esc(c.title)}.</b> {_esc(c.caption)}</figcaption></figure>"
        for c in charts
    )
    window = f"{_esc(e.start_date)} – {_esc(e.end_date)} UTC ({_esc(e.timezone)})"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{_esc(e.name)}: election report</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><style>{_CSS}</style></head>
<body>
<h1>{_esc(e.name)}</h1>
<p class="muted">{_esc(e.country or "")} · {_esc(e.type or "")} · status {_esc(e.status)} · voting window {window}<br>
Figures as of the latest transaction {_esc(figures.get("last_activity"))} UTC · report written {
        _esc(generated_at)
    } UTC ·
election id <code>{_esc(e.id)}</code></p>
<div class="cards">{card_html}</div>
<h2>Charts</h2>
{chart_html}
<h2>Constituencies ({len(data.members)})</h2>
<p class="muted">Most anomalous first. Participation = distinct voters / registered voters × 100.</p>
{
        _table(
            [
                "constituency",
                "region",
                "registered",
                "bulletins",
                "voters",
                "participation %",
                "anomaly score",
                "open alerts",
                "id",
                *(["blocks (heights)"] if with_blocks else []),
            ],
            c_rows,
            numeric={2, 3, 4, 5, 6, 7},
        )
    }
<h2>Alerts ({len(data.alerts)})</h2>
{_table(["severity", "rule", "constituency", "status", "from (UTC)", "title"], a_rows)}
</body></html>
"""


def write_election_report(
    engine: Engine,
    election_id: str,
    reports_dir: str | Path,
    figures: dict[str, Any],
) -> ElectionReport:
    """Draw the charts of one election (headline ``figures``: its ``election_metrics`` row)
    and write them with its ``report.html``."""
    data = _load(engine, election_id)
    charts = [make(data) for make in CHARTS]
    folder = Path(reports_dir) / safe_name(election_id)
    folder.mkdir(parents=True, exist_ok=True)
    for chart in charts:
        _replace(folder / f"{chart.name}.png", chart.png)
    html_path = folder / "report.html"
    _replace(html_path, render_html(data, figures, charts, utcnow().strftime("%Y-%m-%d %H:%M")).encode("utf-8"))
    return ElectionReport(election_id, data.election.name, folder, html_path, charts, figures)


def write_index(reports: list[ElectionReport], reports_dir: str | Path) -> Path:
    """``index.html``: one line per election report."""
    rows = "".join(
        f'<tr><td><a href="{_esc(r.folder.name)}/report.html">{_esc(r.election_name)}</a></td>'
        f'<td class="n">{r.figures.get("participation_rate", 0):.2f}</td>'
        f'<td class="n">{_esc(r.figures.get("constituencies_reporting"))} / {_esc(r.figures.get("total_constituencies"))}</td>'
        f'<td class="n">{_esc(r.figures.get("open_alerts_critical"))}</td></tr>'
        for r in reports
    )
    page = (
        f'<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>Election reports</title>'
        f"<style>{_CSS}</style></head><body><h1>Election reports</h1><table><thead><tr><th>election</th>"
        f"<th>participation %</th><th>reporting</th><th>open critical alerts</th></tr></thead><tbody>{rows}"
        "</tbody></table></body></html>"
    )
    path = Path(reports_dir) / "index.html"
    path.parent.mkdir(parents=True, exist_ok=True)
    _replace(path, page.encode("utf-8"))
    return path


def _replace(path: Path, data: bytes) -> None:
    """Write ``path`` whole or not at all: runs of several workspaces may write the same
    report at once, and a reader never sees half a file."""
    part = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.part")
    part.write_bytes(data)
    os.replace(part, path)


def stored_figures(engine: Engine) -> dict[str, dict[str, Any]]:
    """The ``election_metrics`` rows, by election id."""
    with engine.connect() as conn:
        return {r.election_id: dict(r._mapping) for r in conn.execute(select(ElectionMetrics.__table__))}


def write_reports(engine: Engine, reports_dir: str | Path, offline_after_hours: float) -> list[ElectionReport]:
    """A report for every election, and the index page. Returns them in election-id order.

    The headline figures are those stored in ``election_metrics`` (what the dashboard
    serves); an election without a row yet gets them computed on the spot."""
    stored = stored_figures(engine)
    with engine.connect() as conn:
        ids = list(conn.execute(select(Election.id).order_by(Election.id)).scalars())
    missing = [i for i in ids if i not in stored]
    if missing:
        stored |= {
            r["election_id"]: r
            for r in compute_election_metrics(engine, offline_after_hours)
            if r["election_id"] in missing
        }
    reports = [write_election_report(engine, eid, reports_dir, stored[eid]) for eid in ids]
    write_index(reports, reports_dir)
    return reports
