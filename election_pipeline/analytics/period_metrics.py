"""Metrics in depth, read from the operational ``hourly_stats`` table (docs/data-model.md#metrics).

Everything here answers a question an observer asks about one constituency or one whole
election, over any time range:

* :func:`hourly_series`: the figures of every UTC hour, gaps filled (an hour without a
  transaction is an hour with zero activity, and cumulative figures carry over);
* :func:`metrics_by_period`: the same figures grouped by hour, day, week or month of the
  election's **local** calendar (``Election.timezone``), so "day 2" means the second voting
  day as the voters lived it;
* :func:`hourly_activity_pattern`: the share of votes (and bulletins) cast in each **local**
  hour of the day, 0-23 (night-time activity stands out);
* :func:`velocity_trend`: bulletins issued and votes cast per minute, their ratio, and the
  same figures averaged over a rolling window of hours;
* :func:`issued_not_voted`: bulletins issued minus voters who voted, cumulative, hour by
  hour. A negative gap means more voters than bulletins, which cannot happen honestly.

Conventions: instants are naive UTC datetimes (as the databases store them); a range is
``[start, end)`` on the start of each UTC hour; ``None`` means "from the first" / "to the
last" hour with data. Cumulative figures (``cumulative_votes``, ``participation_rate``,
``issued_not_voted``) always count from the beginning of the election, whatever the range.
``participation_rate`` is voters / registered voters × 100 (0 when nobody is registered);
for an election, only the voters of constituencies whose registered voters are known count.

Plain functions over a SQLAlchemy engine: no Dagster here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pandas as pd
from sqlalchemy import Engine, select

from election_pipeline.db.models import Constituency, Election, HourlyStats

PERIODS: tuple[str, ...] = ("hour", "day", "week", "month")

#: Per-hour counts that add up over time (summed across constituencies and periods).
FLOW_COLUMNS = [
    "bulletins_issued",
    "votes_cast",
    "revote_count",
    "rejected_count",
    "transaction_count",
    "anomaly_count",
]
#: Running totals from the start of the election (carried over hours without data).
CUMULATIVE_COLUMNS = ["cumulative_bulletins", "cumulative_votes"]

SERIES_COLUMNS = [
    "hour",
    *FLOW_COLUMNS,
    *CUMULATIVE_COLUMNS,
    "participation_rate",
    "issued_not_voted",
    "bulletin_velocity",
    "vote_velocity",
]


@dataclass(frozen=True)
class Scope:
    """What a metric is about: one constituency, or every constituency of one election."""

    kind: str  # "constituency" | "election"
    id: str
    name: str
    timezone: str
    registered_voters: int
    constituency_ids: tuple[str, ...]
    election_id: str | None = None
    regions: dict[str, str] = field(default_factory=dict)
    registered_by_constituency: dict[str, int] = field(default_factory=dict)

    @property
    def tz(self) -> ZoneInfo:
        return zone(self.timezone)


def zone(name: str | None) -> ZoneInfo:
    """The IANA zone ``name`` (UTC when empty); a clear error when it does not exist."""
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {name!r} (expected an IANA name such as Europe/Moscow)") from exc


def to_utc_naive(moment: datetime | str | None) -> datetime | None:
    """A datetime (or ISO 8601 text) as naive UTC. Text or datetimes without an offset are
    taken as UTC already."""
    if moment is None:
        return None
    if isinstance(moment, str):
        try:
            moment = datetime.fromisoformat(moment.strip().replace("Z", "+00:00"))
        except ValueError as exc:
            raise ValueError(f"not an ISO 8601 date or time: {moment!r}") from exc
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


# --------------------------------------------------------------------------------------
# Scopes
# --------------------------------------------------------------------------------------


def constituency_scope(engine: Engine, constituency_id: str) -> Scope:
    """The scope of one constituency (its election's time zone; UTC when it has none)."""
    with engine.connect() as conn:
        row = conn.execute(
            select(
                Constituency.id,
                Constituency.name,
                Constituency.region,
                Constituency.registered_voters,
                Constituency.election_id,
                Election.timezone,
            )
            .outerjoin(Election, Election.id == Constituency.election_id)
            .where(Constituency.id == constituency_id)
        ).first()
    if row is None:
        raise LookupError(f"no constituency with id {constituency_id!r}")
    return Scope(
        kind="constituency",
        id=row.id,
        name=row.name,
        timezone=row.timezone or "UTC",
        registered_voters=int(row.registered_voters or 0),
        constituency_ids=(row.id,),
        election_id=row.election_id,
        regions={row.id: row.region or ""},
        registered_by_constituency={row.id: int(row.registered_voters or 0)},
    )


def election_scope(engine: Engine, election_id: str) -> Scope:
    """The scope of one election: all its constituencies, its time zone."""
    with engine.connect() as conn:
        election = conn.execute(
            select(Election.id, Election.name, Election.timezone).where(Election.id == election_id)
        ).first()
        if election is None:
            raise LookupError(f"no election with id {election_id!r}")
        members = conn.execute(
            select(Constituency.id, Constituency.region, Constituency.registered_voters)
            .where(Constituency.election_id == election_id)
            .order_by(Constituency.id)
        ).all()
    return Scope(
        kind="election",
        id=election.id,
        name=election.name,
        timezone=election.timezone or "UTC",
        registered_voters=sum(int(m.registered_voters or 0) for m in members),
        constituency_ids=tuple(m.id for m in members),
        election_id=election.id,
        regions={m.id: m.region or "" for m in members},
        registered_by_constituency={m.id: int(m.registered_voters or 0) for m in members},
    )


def find_scope(engine: Engine, scope_id: str) -> Scope:
    """A constituency with this id, else an election with this id."""
    try:
        return constituency_scope(engine, scope_id)
    except LookupError:
        pass
    try:
        return election_scope(engine, scope_id)
    except LookupError:
        raise LookupError(f"no constituency or election with id {scope_id!r}") from None


# --------------------------------------------------------------------------------------
# Hourly rows
# --------------------------------------------------------------------------------------


def constituency_hours(engine: Engine, scope: Scope) -> pd.DataFrame:
    """The stored ``hourly_stats`` rows of the scope's constituencies (one per constituency
    and UTC hour with activity), oldest first."""
    cols = [
        HourlyStats.constituency_id,
        HourlyStats.hour,
        HourlyStats.timestamp,
        *[HourlyStats.__table__.c[c] for c in FLOW_COLUMNS + CUMULATIVE_COLUMNS],
    ]
    rows: list = []
    ids = list(scope.constituency_ids)
    with engine.connect() as conn:
        for start in range(0, len(ids), 500):
            part = ids[start : start + 500]
            rows += conn.execute(select(*cols).where(HourlyStats.constituency_id.in_(part))).all()
    frame = pd.DataFrame(rows, columns=["constituency_id", "hour", "timestamp", *FLOW_COLUMNS, *CUMULATIVE_COLUMNS])
    frame["hour"] = pd.to_datetime(frame["hour"])
    frame["timestamp"] = pd.to_datetime(frame["timestamp"])
    for col in FLOW_COLUMNS + CUMULATIVE_COLUMNS:
        frame[col] = frame[col].astype("int64")
    return frame.sort_values(["hour", "constituency_id"]).reset_index(drop=True)


def _hour_index(first: pd.Timestamp, last: pd.Timestamp) -> pd.DatetimeIndex:
    return pd.date_range(first, last, freq="h", name="hour")


def _participation(votes: pd.Series, registered: int) -> pd.Series:
    if registered <= 0:
        return pd.Series(0.0, index=votes.index)
    return (votes / registered * 100.0).round(4)


def clip_range(
    frame: pd.DataFrame, start: datetime | str | None, end: datetime | str | None, column: str = "hour"
) -> pd.DataFrame:
    """The rows of ``frame`` whose ``column`` (a UTC hour) lies in ``[start, end)``."""
    if start is not None:
        frame = frame[frame[column] >= pd.Timestamp(to_utc_naive(start)).floor("h")]
    if end is not None:
        frame = frame[frame[column] < pd.Timestamp(to_utc_naive(end))]
    return frame.reset_index(drop=True)


def hourly_series(
    engine: Engine,
    scope: Scope,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    rows: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """One row per UTC hour from the scope's first to its last hour with data (then cut to
    ``[start, end)``), with the columns of :data:`SERIES_COLUMNS`. Hours without data are
    present with zero flows; cumulative figures carry over. For an election, each figure is
    the sum over its constituencies. Velocities are per minute, averaged over the hour.

    ``rows`` may pass :func:`constituency_hours` already read, to avoid reading it twice.
    """
    hours = constituency_hours(engine, scope) if rows is None else rows
    if hours.empty:
        return pd.DataFrame(columns=SERIES_COLUMNS)
    index = _hour_index(hours["hour"].min(), hours["hour"].max())
    flows = hours.groupby("hour")[FLOW_COLUMNS].sum().reindex(index, fill_value=0)
    # Cumulative figures: per constituency, carried forward over hours without data, then summed.
    cumulative = {}
    for col in CUMULATIVE_COLUMNS:
        wide = hours.pivot(index="hour", columns="constituency_id", values=col).reindex(index).ffill().fillna(0)
        cumulative[col] = wide.sum(axis=1).astype("int64")
        if col == "cumulative_votes":
            # Participation counts the voters of constituencies whose registered voters are known.
            known = [c for c in wide.columns if scope.registered_by_constituency.get(c, 1) > 0]
            counted_votes = wide[known].sum(axis=1)
    series = flows.astype("int64")
    for col, values in cumulative.items():
        series[col] = values
    series["participation_rate"] = _participation(counted_votes, scope.registered_voters)
    series["issued_not_voted"] = series["cumulative_bulletins"] - series["cumulative_votes"]
    series["bulletin_velocity"] = (series["bulletins_issued"] / 60.0).round(4)
    series["vote_velocity"] = (series["votes_cast"] / 60.0).round(4)
    series = series.reset_index()
    return clip_range(series[SERIES_COLUMNS], start, end)


# --------------------------------------------------------------------------------------
# Periods, local hours, velocities, the gap
# --------------------------------------------------------------------------------------


def local_times(hours: pd.Series, tz: ZoneInfo) -> pd.Series:
    """UTC hours (naive) -> naive local wall-clock times in ``tz``."""
    return hours.dt.tz_localize("UTC").dt.tz_convert(tz).dt.tz_localize(None)


def _bucket_start(local: pd.Series, period: str) -> pd.Series:
    if period == "hour":
        return local
    if period == "day":
        return local.dt.normalize()
    if period == "week":  # weeks start on Monday
        return local.dt.normalize() - pd.to_timedelta(local.dt.weekday, unit="D")
    if period == "month":
        return local.dt.to_period("M").dt.start_time
    raise ValueError(f"unknown period {period!r}: choose one of {', '.join(PERIODS)}")


def _local_to_utc(moment: pd.Timestamp, tz: ZoneInfo) -> datetime:
    aware = moment.tz_localize(tz, ambiguous=True, nonexistent="shift_forward")
    return aware.tz_convert("UTC").tz_localize(None).to_pydatetime()


PERIOD_COLUMNS = [
    "period_start",
    "period_start_utc",
    "hours_with_activity",
    *FLOW_COLUMNS,
    "cumulative_bulletins",
    "cumulative_votes",
    "participation_rate",
    "participation_gain",
    "issued_not_voted",
    "vote_velocity",
    "peak_vote_velocity",
    "vote_share",
]


def metrics_by_period(
    engine: Engine,
    scope: Scope,
    period: str = "day",
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    series: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """The scope's figures per ``period`` (hour, day, week starting Monday, month) of the
    election's local calendar, over ``[start, end)``.

    Columns: ``period_start`` (local wall-clock time, ISO text with its UTC offset),
    ``period_start_utc``, ``hours_with_activity``, the summed counts (bulletins, voters,
    revotes, rejected, transactions, anomalies), the cumulative figures at the end of the
    period (bulletins, voters, participation %, issued-but-not-voted), ``participation_gain``
    (percentage points gained during the period), ``vote_velocity`` (votes per minute over
    the hours with activity), ``peak_vote_velocity`` (its busiest hour) and ``vote_share``
    (% of the range's votes cast in the period). A UTC hour belongs to the period holding its
    local start (relevant only for zones offset by a fraction of an hour).
    """
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}: choose one of {', '.join(PERIODS)}")
    hourly = hourly_series(engine, scope, start, end) if series is None else clip_range(series, start, end)
    if hourly.empty:
        return pd.DataFrame(columns=PERIOD_COLUMNS)
    tz = scope.tz
    frame = hourly.copy()
    frame["bucket"] = _bucket_start(local_times(frame["hour"], tz), period)
    frame["active"] = frame["transaction_count"] > 0
    groups = frame.groupby("bucket", sort=True)
    out = groups[FLOW_COLUMNS].sum()
    out["hours_with_activity"] = groups["active"].sum().astype("int64")
    last = groups[["cumulative_bulletins", "cumulative_votes", "participation_rate", "issued_not_voted"]].last()
    out = out.join(last)
    # Participation when the range begins: voters before its first hour.
    voters_before = int(frame["cumulative_votes"].iloc[0] - frame["votes_cast"].iloc[0])
    rate_before = _participation(pd.Series([voters_before]), scope.registered_voters).iloc[0]
    out["participation_gain"] = out["participation_rate"].diff().fillna(out["participation_rate"].iloc[0] - rate_before)
    out["participation_gain"] = out["participation_gain"].round(4)
    out["vote_velocity"] = [
        round(v / (60.0 * h), 4) if h else 0.0
        for v, h in zip(out["votes_cast"], out["hours_with_activity"], strict=False)
    ]
    out["peak_vote_velocity"] = groups["vote_velocity"].max().round(4)
    total_votes = int(out["votes_cast"].sum())
    out["vote_share"] = (out["votes_cast"] / total_votes * 100.0).round(2) if total_votes else 0.0
    out = out.reset_index()
    out["period_start_utc"] = [_local_to_utc(b, tz) for b in out["bucket"]]
    out["period_start"] = [
        pd.Timestamp(u).tz_localize("UTC").tz_convert(tz).isoformat() for u in out["period_start_utc"]
    ]
    for col in FLOW_COLUMNS + ["cumulative_bulletins", "cumulative_votes", "issued_not_voted", "hours_with_activity"]:
        out[col] = out[col].astype("int64")
    return out[PERIOD_COLUMNS]


PATTERN_COLUMNS = [
    "local_hour",
    "votes_cast",
    "bulletins_issued",
    "transaction_count",
    "vote_share",
    "bulletin_share",
    "days",
]


def hourly_activity_pattern(
    engine: Engine,
    scope: Scope,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    series: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """24 rows, one per local hour of the day (``Election.timezone``): votes, bulletins and
    transactions of that hour summed over the days of the range, the share of all votes
    (``vote_share``, %) and bulletins (``bulletin_share``, %) it holds, and on how many days
    that hour saw any activity. Shares add up to 100 (0 when nothing happened)."""
    hourly = hourly_series(engine, scope, start, end) if series is None else clip_range(series, start, end)
    frame = hourly.copy()
    local = local_times(frame["hour"], scope.tz) if len(frame) else pd.Series(dtype="datetime64[ns]")
    frame["local_hour"] = local.dt.hour if len(frame) else pd.Series(dtype="int64")
    frame["active"] = frame["transaction_count"] > 0
    sums = frame.groupby("local_hour")[["votes_cast", "bulletins_issued", "transaction_count"]].sum()
    days = frame.groupby("local_hour")["active"].sum()
    out = sums.reindex(range(24), fill_value=0)
    out["days"] = days.reindex(range(24), fill_value=0).astype("int64")
    total_v, total_b = int(out["votes_cast"].sum()), int(out["bulletins_issued"].sum())
    out["vote_share"] = (out["votes_cast"] / total_v * 100.0).round(2) if total_v else 0.0
    out["bulletin_share"] = (out["bulletins_issued"] / total_b * 100.0).round(2) if total_b else 0.0
    out.index.name = "local_hour"
    out = out.reset_index()
    for col in ("votes_cast", "bulletins_issued", "transaction_count"):
        out[col] = out[col].astype("int64")
    return out[PATTERN_COLUMNS]


VELOCITY_COLUMNS = [
    "hour",
    "bulletin_velocity",
    "vote_velocity",
    "vote_to_bulletin_ratio",
    "rolling_bulletin_velocity",
    "rolling_vote_velocity",
    "rolling_ratio",
]


def _ratio(votes: float, bulletins: float) -> float | None:
    return round(votes / bulletins, 4) if bulletins else None


def velocity_trend(
    engine: Engine,
    scope: Scope,
    window_hours: int = 3,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    series: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per UTC hour: bulletins issued and votes cast per minute, ``vote_to_bulletin_ratio``
    (votes / bulletins of the hour; empty when no bulletin was issued), and the same over
    the ``window_hours`` hours ending with this one (``rolling_*``; hours without data count
    as zero). A ratio well above 1 for hours on end means votes without bulletins."""
    if window_hours < 1:
        raise ValueError("the rolling window must be at least 1 hour")
    full = hourly_series(engine, scope) if series is None else series
    if full.empty:
        return pd.DataFrame(columns=VELOCITY_COLUMNS)
    frame = full[["hour", "bulletins_issued", "votes_cast", "bulletin_velocity", "vote_velocity"]].copy()
    roll_b = frame["bulletins_issued"].rolling(window_hours, min_periods=1).sum()
    roll_v = frame["votes_cast"].rolling(window_hours, min_periods=1).sum()
    hours_in_window = pd.Series(range(1, len(frame) + 1), index=frame.index).clip(upper=window_hours)
    frame["vote_to_bulletin_ratio"] = [
        _ratio(v, b) for v, b in zip(frame["votes_cast"], frame["bulletins_issued"], strict=False)
    ]
    frame["rolling_bulletin_velocity"] = (roll_b / (60.0 * hours_in_window)).round(4)
    frame["rolling_vote_velocity"] = (roll_v / (60.0 * hours_in_window)).round(4)
    frame["rolling_ratio"] = [_ratio(v, b) for v, b in zip(roll_v, roll_b, strict=False)]
    return clip_range(frame[VELOCITY_COLUMNS], start, end)


GAP_COLUMNS = ["hour", "cumulative_bulletins", "cumulative_votes", "issued_not_voted", "gap_share"]


def issued_not_voted(
    engine: Engine,
    scope: Scope,
    start: datetime | str | None = None,
    end: datetime | str | None = None,
    series: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per UTC hour, at its end: bulletins issued so far, voters so far, the gap between them
    (``issued_not_voted``) and the gap as a share of the bulletins (``gap_share``, %). Voters
    holding a bulletin they have not used yet make a positive gap; a negative one means more
    voters than bulletins."""
    hourly = hourly_series(engine, scope, start, end) if series is None else clip_range(series, start, end)
    frame = hourly[["hour", "cumulative_bulletins", "cumulative_votes", "issued_not_voted"]].copy()
    frame["gap_share"] = [
        round(g / b * 100.0, 2) if b else 0.0
        for g, b in zip(frame["issued_not_voted"], frame["cumulative_bulletins"], strict=False)
    ]
    return frame[GAP_COLUMNS]
