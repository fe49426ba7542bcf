"""The constituency page's charts, drawn on the server as inline SVG (no script, no image
file): the constituency against its **peer band**, the 10th-90th percentile and the median
of its election's constituencies at each hour.

The figures are the election report's: :func:`~election_pipeline.stages.report.cumulative_participation`
and :func:`~election_pipeline.stages.report.peer_band` over the stored ``hourly_stats`` rows
(:func:`~election_pipeline.analytics.period_metrics.constituency_hours`); only the drawing is here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pandas as pd
from sqlalchemy import Engine

from election_pipeline.analytics import period_metrics as pm
from election_pipeline.stages.report import cumulative_participation, peer_band

WIDTH, HEIGHT = 640, 250
LEFT, RIGHT, TOP, BOTTOM = 48, 12, 12, 38


@dataclass
class SvgChart:
    """One chart: coordinates ready for the template (``band``: polygon points; ``lines``:
    (css class, label, polyline points); ticks as (position, label))."""

    name: str
    title: str
    caption: str
    width: int = WIDTH
    height: int = HEIGHT
    band: str = ""
    lines: list[tuple[str, str, str]] = field(default_factory=list)
    x_ticks: list[tuple[float, str, str]] = field(default_factory=list)
    y_ticks: list[tuple[float, str]] = field(default_factory=list)
    plot: tuple[int, int, int, int] = (LEFT, TOP, WIDTH - RIGHT, HEIGHT - BOTTOM)
    y_label: str = ""


def _scale(index: pd.DatetimeIndex, top: float) -> tuple[list[float], float]:
    n = len(index)
    span = WIDTH - LEFT - RIGHT
    xs = [LEFT + (span * i / (n - 1) if n > 1 else span / 2) for i in range(n)]
    return xs, (top if top > 0 else 1.0)


def _y(value: float, top: float) -> float:
    return HEIGHT - BOTTOM - (HEIGHT - BOTTOM - TOP) * min(max(value, 0.0), top) / top


def _points(xs: list[float], values: pd.Series, top: float) -> str:
    return " ".join(f"{x:.1f},{_y(float(v), top):.1f}" for x, v in zip(xs, values, strict=True))


def _anchor(i: int, n: int) -> str:
    """Tick labels at the ends are anchored inside the chart."""
    if n > 1 and i == 0:
        return "start"
    if n > 1 and i == n - 1:
        return "end"
    return "middle"


def _draw(name: str, title: str, caption: str, frame: pd.DataFrame, cid: str, label: str, y_label: str) -> SvgChart:
    low, mid, high = peer_band(frame)
    mine = frame[cid]
    top = float(max(high.max(), mine.max(), 0.0)) * 1.1
    xs, top = _scale(frame.index, top)
    band = _points(xs, high, top) + " " + _points(list(reversed(xs)), low.iloc[::-1], top)
    step = max(1, len(xs) // 6)
    shown = list(range(0, len(xs), step))
    x_ticks = [(xs[i], pd.Timestamp(frame.index[i]).strftime("%d %b %H:%M"), _anchor(i, len(xs))) for i in shown]
    y_ticks = [(_y(top * k / 4, top), f"{top * k / 4:.1f}") for k in range(5)]
    return SvgChart(
        name,
        title,
        caption,
        band=band,
        lines=[("median", "peer median", _points(xs, mid, top)), ("mine", label, _points(xs, mine, top))],
        x_ticks=x_ticks,
        y_ticks=y_ticks,
        y_label=y_label,
    )


def constituency_charts(engine: Engine, constituency_id: str) -> list[SvgChart]:
    """The constituency's charts against its election's peer band (none without an
    election, registered voters or hourly figures)."""
    scope = pm.constituency_scope(engine, constituency_id)
    if scope.election_id is None:
        return []
    election = pm.election_scope(engine, scope.election_id)
    registered = pd.Series(election.registered_by_constituency, dtype="int64")
    registered = registered[registered > 0]
    if constituency_id not in registered.index:
        return []
    rows = pm.constituency_hours(engine, election)
    if rows.empty:
        return []
    name = scope.name or constituency_id
    rate = cumulative_participation(rows, registered)
    charts = [
        _draw(
            "participation",
            "Cumulative participation against the peer band",
            "Participation (voters / registered × 100) at the end of each UTC hour. Grey band: 10th-90th "
            "percentile of the election's constituencies; dashed: their median.",
            rate,
            constituency_id,
            name,
            "participation, %",
        )
    ]
    index = pd.date_range(rows["hour"].min(), rows["hour"].max(), freq="h")
    votes = rows.pivot(index="hour", columns="constituency_id", values="votes_cast").reindex(index).fillna(0)
    share = votes.reindex(columns=registered.index, fill_value=0).div(registered, axis=1) * 100.0
    charts.append(
        _draw(
            "votes_per_hour",
            "Votes per hour against the peer band",
            "Votes cast in each UTC hour as a share of registered voters (%), starting at the hour shown. "
            "Grey band: 10th-90th percentile of the election's constituencies; dashed: their median.",
            share,
            constituency_id,
            name,
            "votes, % of registered",
        )
    )
    return charts
