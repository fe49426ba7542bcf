"""What the rules need to know besides the counts: voting windows, time zones, peers, "now".

All instants are naive UTC, as the databases store them. Local-time rules convert with the
election's IANA time zone (``Election.timezone``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import pandas as pd

HOUR = timedelta(hours=1)


def utc_now() -> datetime:
    """The current instant, naive UTC."""
    return datetime.now(UTC).replace(tzinfo=None)


def hour_floor(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def hour_ceil(moment: datetime) -> datetime:
    floor = hour_floor(moment)
    return floor if floor == moment else floor + HOUR


def to_naive(value) -> datetime | None:
    """A pandas/numpy/aware timestamp as a naive UTC ``datetime`` (None for NaT/None)."""
    if value is None or (not isinstance(value, datetime) and pd.isna(value)):
        return None
    ts = pd.Timestamp(value)
    if pd.isna(ts):
        return None
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return ts.to_pydatetime()


def to_naive_instant(value) -> datetime:
    """:func:`to_naive` of a value that is always set (an hourly row's hour, a stored
    transaction's time); NaT or None there is an error."""
    moment = to_naive(value)
    if moment is None:
        raise ValueError(f"expected a timestamp, got {value!r}")
    return moment


@dataclass(frozen=True)
class VotingWindow:
    """An election's voting window ``[start, end)`` (naive UTC) and its time zone."""

    election_id: str
    start: datetime
    end: datetime
    timezone: str = "UTC"

    @cached_property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def local(self, moment: datetime) -> datetime:
        """Naive UTC -> naive local time."""
        return moment.replace(tzinfo=UTC).astimezone(self.tz).replace(tzinfo=None)

    def utc(self, local: datetime) -> datetime:
        """Naive local time -> naive UTC."""
        return local.replace(tzinfo=self.tz).astimezone(UTC).replace(tzinfo=None)

    @property
    def first_day_end(self) -> datetime:
        """Local midnight at the end of the first voting day, in UTC."""
        first = self.local(self.start).date()
        return self.utc(datetime.combine(first + timedelta(days=1), datetime.min.time()))

    def full_hours(self, now: datetime) -> list[datetime]:
        """UTC hours ``[h, h+1)`` lying wholly inside the window and wholly before ``now``."""
        last = min(self.end, hour_floor(now))
        h = hour_ceil(self.start)
        out = []
        while h + HOUR <= last:
            out.append(h)
            h += HOUR
        return out

    def elapsed_share(self, now: datetime) -> float:
        """How much of the window has passed at ``now`` (0 before it, 1 after it)."""
        total = (self.end - self.start).total_seconds()
        if total <= 0:
            return 1.0
        return max(0.0, min(1.0, (now - self.start).total_seconds() / total))


def election_windows(elections: pd.DataFrame | None) -> dict[str, VotingWindow]:
    """``elections`` (``id, start_date, end_date, timezone``) -> window per election id."""
    if elections is None or elections.empty:
        return {}
    out = {}
    for rec in elections.itertuples(index=False):
        start, end = to_naive(rec.start_date), to_naive(rec.end_date)
        if start is None or end is None:
            continue
        tz = getattr(rec, "timezone", None) or "UTC"
        out[str(rec.id)] = VotingWindow(str(rec.id), start, end, str(tz))
    return out


def constituency_windows(constituencies: pd.DataFrame, elections: pd.DataFrame | None) -> dict[str, VotingWindow]:
    """Window of each constituency that belongs to a known election."""
    by_election = election_windows(elections)
    out = {}
    for rec in constituencies.itertuples(index=False):
        eid = rec.election_id
        if eid is not None and not (isinstance(eid, float) and pd.isna(eid)) and str(eid) in by_election:
            out[str(rec.id)] = by_election[str(eid)]
    return out


def finish_times(totals: pd.DataFrame | None) -> dict[str, datetime]:
    """The latest accepted ``finishVoting`` per constituency (``totals.voting_finished``)."""
    if totals is None or totals.empty or "voting_finished" not in totals.columns:
        return {}
    out = {}
    for cid, ts in zip(totals["constituency_id"], totals["voting_finished"], strict=False):
        moment = to_naive(ts)
        if moment is not None:
            out[str(cid)] = moment
    return out


def closed_constituencies(
    constituencies: pd.DataFrame,
    totals: pd.DataFrame | None,
    windows: dict[str, VotingWindow],
    now: datetime,
) -> set[str]:
    """Constituencies whose voting is over: their contract recorded ``finishVoting``, or
    their election's window has ended by ``now``. Rules "at close" look only at these."""
    done = set(finish_times(totals))
    for cid in constituencies["id"]:
        window = windows.get(str(cid))
        if window is not None and now >= window.end:
            done.add(str(cid))
    return done


def peer_groups(constituencies: pd.DataFrame, min_peers: int = 3) -> dict[str, list[str]]:
    """Peers of each constituency with registered voters: the *other* constituencies of its
    election and region, or of its whole election when the region has fewer than
    ``min_peers`` others. A constituency with fewer than ``min_peers`` peers gets none."""
    known = constituencies[(constituencies["registered"] > 0) & constituencies["election_id"].notna()]
    out: dict[str, list[str]] = {}
    for _eid, members in known.groupby("election_id"):
        ids = [str(i) for i in members["id"]]
        regions = dict(zip(ids, members["region"], strict=False))
        by_region: dict[object, list[str]] = {}
        for i in ids:
            if regions[i] == regions[i]:  # a missing region (NaN) equals no other
                by_region.setdefault(regions[i], []).append(i)
        for cid in ids:
            same = [i for i in by_region.get(regions[cid], []) if i != cid] if regions[cid] == regions[cid] else []
            peers = same if len(same) >= min_peers else [i for i in ids if i != cid]
            if len(peers) >= min_peers:
                out[cid] = peers
    return out


def constituency_names(constituencies: pd.DataFrame) -> dict[str, str]:
    """Name of each constituency id (for titles a person can read)."""
    if "name" not in constituencies.columns:
        return {}
    return {str(i): str(n) for i, n in zip(constituencies["id"], constituencies["name"], strict=False) if n}


def label(names: dict[str, str], cid: str) -> str:
    """``Name (first 10 characters of the contract id)``, or the id when there is no name."""
    name = names.get(cid)
    return f"{name} ({cid[:10]})" if name and name != cid else cid


def describe_hour(hour: datetime, window: VotingWindow | None) -> str:
    """An hour for people: local time first when the election's time zone is known."""
    if window is None:
        return f"{hour:%Y-%m-%d %H:00} UTC"
    return f"{window.local(hour):%Y-%m-%d %H:%M} local ({hour:%H:00} UTC)"
