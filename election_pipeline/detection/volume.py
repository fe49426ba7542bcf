"""How many votes a constituency should have had in a run of hours, and how surprising its
actual count is: the model behind ``unusual_spike`` and ``night_activity``.

**Expected votes.** For a run of hours (one hour or several consecutive ones), the
constituency's *own* votes in the surrounding hours (its *context*: up to
:data:`CONTEXT_HOURS` on each side, :data:`LARGE_CONTEXT_HOURS` in an election of
:data:`ROBUST_SPREAD_MIN` constituencies or more, whose robust spread leaves the level's
counting noise the larger share of the uncertainty), ``O``, fix its level, and a daily shape says how many
votes the run holds for each vote of the context: the ratio ``r`` of the shape's share in
the run to its share in the context. The expected count is ``E = O · r``: a constituency
where few people vote is judged by its own turnout, not by its registered voters, and a
burst does not raise its own expectation.

**Whose shape.** Stations of one region need not vote alike (an urban station peaks in the
evening, a rural one at the opening), so the shape comes from the constituency's *shape
neighbours*: the :data:`SHAPE_NEIGHBOURS` other constituencies of the election whose shares
of their votes, hour by hour, are closest to its own (Bhattacharyya coefficient), averaged
with a trimmed mean (one dropped at each end), so one neighbour's own burst or silence does
not move it. An election with fewer than :data:`NEIGHBOURS_MIN` other voting constituencies
has no such choice: there the shape is the trimmed mean of the peers' shares (the
constituency itself left out), shrunk toward the same shape over the whole election
(:data:`SHAPE_PRIOR_PEERS` constituencies' worth), so three peers that happen to open early
cannot set it alone.

**How far an honest count strays.** Voters come in groups (several bulletins per issuing
transaction), so honest hourly counts vary more than a Poisson count: the election's
*dispersion* φ (variance / mean, at least 1) is the one its mean group size implies
(:func:`batch_dispersion`, from all of its constituency-hours). The shape is an estimate:
the model's relative error on the election's *other* constituencies (each one's
run-to-context ratio over the ratio its own expected shape predicts), net of counting
noise, is the relative uncertainty ``c`` of the expected votes. From
:data:`ROBUST_SPREAD_MIN` constituencies on it is a robust spread (MAD), since another
constituency's anomaly is not an error to allow for, and the spread of one run is shrunk
toward the constituency's median spread over the day (:func:`shrink_spread`), since a MAD
of a few dozen errors is itself uncertain by a quarter; in smaller elections, where the
neighbours are nearly everyone and an honest minority's shape is an error to allow for, it
is the variance, clipped at :data:`CLIP_SDS` robust standard deviations. It is at least
:data:`MIN_RELATIVE_SPREAD`/√hours (at least ``relative_spread`` in an election too small
to measure it), widened by the error of a mean of few (1 + 1/the shares kept; with peers,
1 + 1/(peers + SHAPE_PRIOR_PEERS)). The count is then judged against a negative binomial
with variance ``φ·E·(1 + r) + c²·E²`` (:func:`~.stats.scaled_count_sf`): ``φ·E·r`` is the
counting noise of the context itself.

**Runs of hours.** Every run of 1 to :data:`MAX_SCAN_HOURS` consecutive hours is tested (a
scan statistic), so several hours of a few extra votes each add up instead of each hour
passing unnoticed. Testing many runs would raise many false alarms, so the tail
probability is multiplied by the number of runs tested for that constituency (Bonferroni)
and turned into a normal z-score: the *scan z*. If the model were exact, an honest
constituency would reach a scan z of 3.5 with probability at most 2·10⁻⁴;
``benchmarks/calibrate_detection.py`` measures the actual rate on simulated honest
elections: in elections of fewer than :data:`ROBUST_SPREAD_MIN` constituencies 1.9 % at
3.5 and 0.47 % at 4.5, the default warning level there; in larger ones 0.27 % at 3, their
warning level; 0.04 % at 7, the critical level, and none once ``unusual_spike`` checks a
small election's critical runs against the constituency's own other days
(:func:`own_days_model`). Honest daily shapes differ more than the model allows, most in
small elections; see the README, "Detection and alerts".
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from .context import HOUR, VotingWindow, hour_floor, peer_groups, to_naive_instant
from .stats import scaled_count_sf, tail_to_z

#: Longest run of consecutive hours scanned.
MAX_SCAN_HOURS = 12
#: Weight of the election-wide shape in a constituency's expected shape, in peers.
SHAPE_PRIOR_PEERS = 4.0
#: The hours around a run that set the constituency's own level: up to this many on each side.
CONTEXT_HOURS = 6
#: The same in an election of at least :data:`ROBUST_SPREAD_MIN` constituencies.
LARGE_CONTEXT_HOURS = 12
#: Runs expected to hold more than this many times the votes of their context are not
#: judged (too little is left around them to set the constituency's own level).
MAX_RUN_RATIO = 1.5
#: Least expected votes per hour (an hour where no peer voted still expects some).
MIN_EXPECTED_PER_HOUR = 0.25
#: Bounds of the dispersion.
DISPERSION_BOUNDS = (1.0, 6.0)
#: The spread of daily shapes is measured on the election's other constituencies when there
#: are at least this many; with fewer, at least ``relative_spread`` (a setting) is assumed
#: for a run of any length.
MIN_MEASURED = 6
#: The least relative uncertainty of one hour's expected votes (over L hours: this/√L).
MIN_RELATIVE_SPREAD = 0.1
#: Shape spread: other constituencies' ratios are clipped this many robust standard
#: deviations from their median.
CLIP_SDS = 10.0
#: For normal data the MAD is 0.6745 σ.
MAD_TO_SD = 1.0 / 0.6745
#: A constituency's expected shape is the trimmed mean of the shares of this many other
#: constituencies of its election, those whose daily shape is closest to its own (its *shape
#: neighbours*), when the election has enough voting constituencies (:data:`NEIGHBOURS_MIN`).
SHAPE_NEIGHBOURS = 8
#: The fewest shape neighbours worth choosing; with fewer other voting constituencies the
#: shape is the peers' shrunk toward the election's.
NEIGHBOURS_MIN = 5
#: From this many constituencies in an election, the spread of the model's errors is
#: a robust one (MAD): with shape neighbours a constituency unlike the others is predicted by
#: the ones like it, so an outlying error is another constituency's anomaly, not a shape to
#: allow for. In smaller elections the neighbours are nearly everyone, and the variance
#: (clipped at :data:`CLIP_SDS`) keeps an honest minority's shape in the spread.
ROBUST_SPREAD_MIN = 17
#: The robust spread of one run start is shrunk toward the constituency's median spread over
#: the day, which weighs as much as this many constituencies' errors (:func:`shrink_spread`).
SPREAD_PRIOR_CONSTITUENCIES = 100.0


@dataclass(frozen=True)
class Run:
    """A run of hours ``[start, stop)`` (indexes into the election's hours) judged for one
    constituency."""

    start: int
    stop: int
    votes: float
    expected: float
    ratio: float  # the peers' votes in the run over their votes in its context
    relative_var: float  # c², the squared relative uncertainty of the expected votes
    context_votes: float  # the constituency's votes in the run's context
    p_value: float  # one run's tail probability
    runs_tested: int
    scan_z: float

    @property
    def hours(self) -> int:
        return self.stop - self.start


def _trimmed_mean(matrix: np.ndarray, trim: float = 0.2) -> np.ndarray:
    """Column-wise mean of the rows after dropping ``trim`` of them at each end (none
    below five rows)."""
    n = matrix.shape[0]
    if n == 0:
        return np.zeros(matrix.shape[1])
    g = int(trim * n) if n >= 5 else 0
    ordered = np.sort(matrix, axis=0)
    return ordered[g : n - g].mean(axis=0)


def _nanmedian(matrix: np.ndarray) -> np.ndarray:
    """Column-wise median ignoring NaN (NaN for an all-NaN column); np.nanmedian, faster."""
    ordered = np.sort(matrix, axis=0)  # NaN sort last
    valid = (~np.isnan(matrix)).sum(axis=0)
    lo = np.maximum((valid - 1) // 2, 0)
    hi = np.where(valid % 2 == 0, valid // 2, lo)
    cols = np.arange(matrix.shape[1])
    out = (ordered[lo, cols] + ordered[np.minimum(hi, matrix.shape[0] - 1), cols]) / 2
    return np.where(valid > 0, out, np.nan)


def _leave_one_out_nanmedian(matrix: np.ndarray) -> np.ndarray:
    """Row ``i``, column ``j``: :func:`_nanmedian` of column ``j`` without row ``i`` (the
    same order statistics, found in one sort of the whole column)."""
    n, m = matrix.shape
    order = np.argsort(matrix, axis=0, kind="stable")  # NaN sort last
    ordered = np.take_along_axis(matrix, order, axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n)[:, None], (n, m)), axis=0)
    missing = np.isnan(matrix)
    valid = (~missing).sum(axis=0)[None, :] - (~missing)  # valid values left without the row
    removed = np.where(missing, n, rank)  # where the left-out value sat in the column's order
    lo = np.maximum((valid - 1) // 2, 0)
    hi = np.minimum(np.where(valid % 2 == 0, valid // 2, lo), max(n - 2, 0))
    cols = np.arange(m)[None, :]
    out = (ordered[lo + (lo >= removed), cols] + ordered[hi + (hi >= removed), cols]) / 2
    return np.where(valid > 0, out, np.nan)


def _leave_one_out_spread(rel: np.ndarray, counting: np.ndarray, robust: bool | None = None) -> np.ndarray:
    """The spread of :meth:`ElectionVolume.shape_spread` for every row ``i`` at once, from
    the other rows: the robust one (:func:`_leave_one_out_robust_spread`) when ``robust``,
    by default from :data:`ROBUST_SPREAD_MIN` rows on. The medians come from one sort per column (the median a row is judged
    against takes at most four values per column, so the deviations from each are sorted
    once); the variance and the mean noise add the other rows in their order, as a
    column-wise ``nanvar``/``nanmean`` of the other rows would, so the figures are the same
    to the last bit."""
    n, m = rel.shape
    if n - 1 < 2 or not m:
        return np.zeros((n, m))
    if robust if robust is not None else n >= ROBUST_SPREAD_MIN:
        return _leave_one_out_robust_spread(rel, counting)
    if m == 1:  # numpy adds a single column pairwise, not row by row: each row on its own
        return np.stack([_spread_of_row(rel, counting, row) for row in range(n)])
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs where no constituency voted
        missing = np.isnan(rel)
        counting = np.where(missing, np.nan, counting)
        med = _leave_one_out_nanmedian(rel)
        mad = _leave_one_out_mad(rel, med)
        scale = np.maximum(MAD_TO_SD * mad, np.sqrt(_leave_one_out_nanmedian(counting)))
        limit = CLIP_SDS * scale
        low, high = med - limit, med + limit
        limit2 = limit**2
        var = _leave_one_out_nanvar(rel, low, high)
        noise = _leave_one_out_nanmean_below(counting, limit2)
        out = np.nan_to_num(np.maximum(var - noise, 0.0))
    return np.maximum(out, np.median(out, axis=1)[:, None])


def _leave_one_out_robust_spread(rel: np.ndarray, counting: np.ndarray) -> np.ndarray:
    """Row ``i``: the squared robust standard deviation (MAD) of the other rows' errors, net
    of their median counting variance, per column, shrunk toward its median over the
    columns (:func:`shrink_spread`)."""
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs where no constituency voted
        counting = np.where(np.isnan(rel), np.nan, counting)
        med = _leave_one_out_nanmedian(rel)
        mad = _leave_one_out_mad(rel, med)
        noise = _leave_one_out_nanmedian(counting)
        out = np.nan_to_num(np.maximum((MAD_TO_SD * mad) ** 2 - noise, 0.0))
    valid = ~np.isnan(rel)
    return shrink_spread(out, valid.sum(axis=0)[None, :] - valid)


def shrink_spread(spread: np.ndarray, measured: np.ndarray) -> np.ndarray:
    """The robust spread of each run start (``spread``, rows × run starts, each measured on
    ``measured`` other constituencies) shrunk toward the row's median over the run starts,
    which counts as :data:`SPREAD_PRIOR_CONSTITUENCIES` constituencies' worth:
    ``(k·s + K·median) / (k + K)``, and at least that median. One run's MAD of 16-39
    errors is itself uncertain by 20-30 % (of its square, by about half), more than the
    spread of honest errors changes from one hour to the next once each constituency is
    predicted by the stations that vote like it. On the detection benchmark the shrinking
    found 4 more single-hour spikes with no more honest alarms; see the README, "Detection
    and alerts"."""
    median = np.median(spread, axis=1)[:, None]
    k = SPREAD_PRIOR_CONSTITUENCIES
    return np.maximum((measured * spread + k * median) / (measured + k), median)


def _spread_of_row(rel: np.ndarray, counting: np.ndarray, row: int) -> np.ndarray:
    """:func:`_leave_one_out_spread` of one row, from the other rows directly."""
    others = np.ones(rel.shape[0], dtype=bool)
    others[row] = False
    rel, counting = rel[others], counting[others]
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # runs where no constituency voted
        counting = np.where(np.isnan(rel), np.nan, counting)
        med = _nanmedian(rel)
        scale = np.maximum(MAD_TO_SD * _nanmedian(np.abs(rel - med)), np.sqrt(_nanmedian(counting)))
        limit = CLIP_SDS * scale
        clipped = np.clip(rel, med - limit, med + limit)
        var = np.nanvar(clipped, axis=0, ddof=1)
        noise = np.nanmean(np.minimum(counting, limit**2), axis=0)
        out = np.nan_to_num(np.maximum(var - noise, 0.0))
    return np.maximum(out, float(np.median(out)))


def _leave_one_out_mad(rel: np.ndarray, med: np.ndarray) -> np.ndarray:
    """Row ``i``: the NaN-ignoring median, over the other rows, of their absolute deviation
    from ``med[i]`` (the leave-one-out median of :func:`_leave_one_out_nanmedian`)."""
    out = np.full(rel.shape, np.nan)
    todo = ~np.isnan(med)
    while todo.any():
        # the rows of each column sharing the median of the first row still to do
        first = np.argmax(todo, axis=0)
        cols = np.arange(rel.shape[1])
        centre = np.where(todo.any(axis=0), med[first, cols], np.nan)
        same = todo & (med == centre[None, :])
        spread = _leave_one_out_nanmedian(np.abs(rel - centre[None, :]))
        out[same] = spread[same]
        todo &= ~same
    return out


def _leave_one_out_sum(values: np.ndarray, bound: Callable[[int], np.ndarray | None]) -> tuple[np.ndarray, np.ndarray]:
    """Row ``i``: the sum over the other rows ``j``, in their order, of ``bound(j)[i]``
    (NaN left out, as ``nansum`` does), and how many were not NaN. ``bound(j)`` is None
    when it would be row ``j`` of ``values`` for every ``i`` (the quick case); it is NaN
    only where row ``j`` of ``values`` is (its bounds come from the other rows' values, so
    they are NaN only where no other row has one)."""
    n, m = values.shape
    valid = ~np.isnan(values)
    total = np.zeros((n, m))
    for j in range(n):
        row = bound(j)
        if row is None:
            keep = total[j].copy()
            total += np.where(valid[j], values[j], 0.0)
            total[j] = keep
            continue
        row[np.isnan(row)] = 0.0
        row[j] = 0.0
        total += row
    return total, valid.sum(axis=0)[None, :] - valid


def _leave_one_out_nanvar(rel: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Row ``i``: ``np.nanvar(np.clip(other rows, low[i], high[i]), axis=0, ddof=1)``,
    adding the other rows in their order as ``nanvar`` does."""
    n, m = rel.shape
    # a row inside every other row's bounds is not clipped for any of them
    inside = np.all(np.isnan(rel) | ((rel >= np.nanmax(low, axis=0)) & (rel <= np.nanmin(high, axis=0))), axis=1)

    def clipped(j: int) -> np.ndarray | None:
        return None if inside[j] else np.clip(rel[j], low, high)

    total, count = _leave_one_out_sum(rel, clipped)
    mean = total / count
    squares = np.zeros((n, m))
    row = np.empty((n, m))
    missing = np.isnan(rel)
    for j in range(n):
        if inside[j]:
            # NaN only in the columns where row j has no ratio: where another row's mean is
            # NaN, no row but that one has a ratio
            np.subtract(rel[j], mean, out=row)
            row[:, missing[j]] = 0.0
        else:
            np.subtract(np.clip(rel[j], low, high), mean, out=row)
            row[np.isnan(row)] = 0.0
        row[j] = 0.0
        np.multiply(row, row, out=row)
        squares += row
    dof = count - 1
    var = squares / dof
    var[dof <= 0] = np.nan
    return var


def _leave_one_out_nanmean_below(counting: np.ndarray, cap: np.ndarray) -> np.ndarray:
    """Row ``i``: ``np.nanmean(np.minimum(other rows, cap[i]), axis=0)``, adding the other
    rows in their order as ``nanmean`` does."""
    below = np.all(np.isnan(counting) | (counting <= np.nanmin(cap, axis=0)), axis=1)

    def capped(j: int) -> np.ndarray | None:
        return None if below[j] else np.minimum(counting[j], cap)

    total, count = _leave_one_out_sum(counting, capped)
    return total / count


def batch_dispersion(bulletins: float, issuing: float) -> float:
    """The dispersion φ (variance / mean of honest hourly votes) that voters coming in
    groups give: each issuing transaction brings B voters, so votes are a compound Poisson
    count with variance / mean E[B²]/E[B]. Only the mean group size b = bulletins / issuing
    transactions is known; taking B − 1 geometric with mean m = b − 1 (groups of one
    commonest, larger ones ever rarer), E[B²] = m(1 + m) + b², so φ = (m(1 + m) + b²)/b:
    1 when every transaction issues one bulletin, 1.5 at b = 1.25, 2 at b = 1.5. Within
    :data:`DISPERSION_BOUNDS`; 1.5 when nothing was issued."""
    if issuing <= 0 or bulletins <= 0:
        return 1.5
    b = max(1.0, bulletins / issuing)
    m = b - 1
    phi = (m * (1 + m) + b * b) / b
    return float(min(max(phi, DISPERSION_BOUNDS[0]), DISPERSION_BOUNDS[1]))


@dataclass
class ElectionVolume:
    """One election's hourly votes, as the volume model sees them."""

    election_id: str
    ids: list[str]
    hours: list[datetime]
    counts: np.ndarray  # constituencies × hours
    shape: np.ndarray  # the expected share of each constituency's votes in each hour (rows sum to 1)
    peers: dict[str, list[str]]
    dispersion: float
    window: VotingWindow | None
    #: per row, the rows of its shape neighbours, whose trimmed mean is its expected shape
    #: (empty: the peers' shape shrunk toward the election's, see :func:`_model`)
    neighbours: list[np.ndarray] | None = None
    #: whether the spread of the model's errors is the robust one whatever the election's
    #: size (:func:`own_days_model`: each constituency predicted by itself, so an outlying
    #: error is another constituency's anomaly, never an honest minority's shape)
    robust_errors: bool = False

    @property
    def robust_spread(self) -> bool:
        """Whether the spread of the model's errors is the robust one (an election of
        :data:`ROBUST_SPREAD_MIN` constituencies or more). Such an election also takes a
        constituency's level from :data:`LARGE_CONTEXT_HOURS` on each side of a run, and
        ``unusual_spike`` warns there from its own calibrated level
        (:meth:`~.thresholds.SpikeThresholds.for_election`)."""
        return len(self.ids) >= ROBUST_SPREAD_MIN

    @property
    def context_hours(self) -> int:
        """Hours on each side of a run that set the constituency's own level."""
        return LARGE_CONTEXT_HOURS if self.robust_spread else CONTEXT_HOURS

    def neighbour_ids(self, cid: str) -> list[str]:
        """The constituencies whose shares gave ``cid`` its expected shape (none when its
        peers' shape did)."""
        if self.neighbours is None:
            return []
        return [self.ids[j] for j in self.neighbours[self.row(cid)]]

    def row(self, cid: str) -> int:
        """The row of ``cid`` (its first, should an id appear twice)."""
        return self._rows[cid]

    def context(self, length: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """For runs of ``length`` hours, by run start: the start, the stop, and the first and
        last+1 hour of the run's context (up to :attr:`context_hours` on each side)."""
        n = len(self.hours)
        k = self.context_hours
        starts = np.arange(0, n - length + 1)
        stops = starts + length
        return starts, stops, np.maximum(starts - k, 0), np.minimum(stops + k, n)

    def _relative_ratios(self, length: int) -> tuple[np.ndarray, np.ndarray]:
        """For runs of ``length`` hours (constituencies × run starts): each constituency's
        votes in the run over its votes in the run's context, relative to the ratio its own
        expected shape predicts, minus 1: the model's relative error (NaN where a
        constituency has no votes in the context); and the counting variance of that
        ratio, φ·(1/run + 1/context)."""
        cached = self._spread_cache.get(length)
        if cached is not None:
            return cached
        starts, stops, lo, hi = self.context(length)
        zeros = np.zeros((self.counts.shape[0], 1))
        cum = np.concatenate([zeros, np.cumsum(self.counts, axis=1)], axis=1)
        cum_s = np.concatenate([zeros, np.cumsum(self.shape, axis=1)], axis=1)
        runs = cum[:, stops] - cum[:, starts]  # constituencies × starts
        ctx = cum[:, starts] - cum[:, lo] + cum[:, hi] - cum[:, stops]
        with np.errstate(all="ignore"):
            voting = self.counts.sum(axis=1) > 0
            predicted = (cum_s[:, stops] - cum_s[:, starts]) / (
                cum_s[:, starts] - cum_s[:, lo] + cum_s[:, hi] - cum_s[:, stops]
            )
            rel = runs / np.where(ctx > 0, ctx, np.nan) / np.where(predicted > 0, predicted, np.nan) - 1
            counting = self.dispersion * (1 / np.maximum(runs, 1) + 1 / np.maximum(ctx, 1))
        rel[~voting] = np.nan
        self._spread_cache[length] = (rel, counting)
        return rel, counting

    def shape_spread(self, length: int, row: int) -> np.ndarray:
        """c² per run start for runs of ``length`` hours of the constituency in ``row``:
        the variance, between the election's *other* constituencies, of their relative
        run-to-context ratios (:meth:`_relative_ratios`), net of their median counting
        variance; at least the median of these over the day (a few constituencies give a
        noisy spread). The ratios are clipped at :data:`CLIP_SDS` robust standard
        deviations from their median before the variance is taken: an honest minority (a
        rural station among urban ones) is exactly the spread to allow for, but another
        constituency's own spike is not. In an election of :data:`ROBUST_SPREAD_MIN`
        constituencies or more it is the squared MAD instead, shrunk toward its median over
        the day (:func:`shrink_spread`)."""
        return self.shape_spreads(length)[row]

    def shape_spreads(self, length: int) -> np.ndarray:
        """:meth:`shape_spread` of every row at once (constituencies × run starts)."""
        cached = self._rows_cache.get(length)
        if cached is None:
            rel, counting = self._relative_ratios(length)
            cached = _leave_one_out_spread(rel, counting, robust=True if self.robust_errors else None)
            self._rows_cache[length] = cached
        return cached

    def __post_init__(self) -> None:
        self._rows: dict[str, int] = {}
        for i, cid in enumerate(self.ids):
            self._rows.setdefault(cid, i)
        self._spread_cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._rows_cache: dict[int, np.ndarray] = {}


def _election_hours(frame: pd.DataFrame, window: VotingWindow | None, now: datetime | None) -> list[datetime]:
    """The election's hours: from its window's first hour (or its first data hour) to its
    last data hour, inside the window and not after ``now``'s hour."""
    first = hour_floor(to_naive_instant(frame["hour"].min()))
    last = hour_floor(to_naive_instant(frame["hour"].max()))
    if window is not None:
        first = max(first, hour_floor(window.start))
        last = min(last, hour_floor(window.end - timedelta(microseconds=1)))
    if now is not None:
        last = min(last, hour_floor(now))
    out = []
    h = first
    while h <= last:
        out.append(h)
        h += HOUR
    return out


def _dispersion(frame: pd.DataFrame) -> float:
    """:func:`batch_dispersion` of an election's hourly rows: issuing transactions are the
    lines that are not votes, revotes or rejected."""
    if "bulletins_issued" not in frame or "transaction_count" not in frame:
        return 1.5
    lines = frame["transaction_count"].sum()
    issuing = (
        lines - frame["votes_cast"].sum() - frame.get("revote_count", 0).sum() - frame.get("rejected_count", 0).sum()
    )
    return batch_dispersion(float(frame["bulletins_issued"].sum()), float(issuing))


def election_volumes(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    windows: dict[str, VotingWindow] | None = None,
    now: datetime | None = None,
) -> list[ElectionVolume]:
    """The volume model of each election with constituencies that have peers."""
    windows = windows or {}
    if hourly.empty:
        return []
    peers = peer_groups(constituencies)
    known = constituencies[(constituencies["registered"] > 0) & constituencies["election_id"].notna()]
    votes = hourly.assign(constituency_id=hourly["constituency_id"].astype(str))
    out = []
    for eid, members in known.groupby("election_id"):
        ids = sorted(str(i) for i in members["id"])
        mine = {cid: peers[cid] for cid in ids if cid in peers}
        if not mine:
            continue
        frame = votes[votes["constituency_id"].isin(ids)]
        if frame.empty:
            continue
        window = next((windows[c] for c in ids if c in windows), None)
        hours = _election_hours(frame, window, now)
        if not hours:
            continue
        grid = (
            frame.pivot_table(index="constituency_id", columns="hour", values="votes_cast", aggfunc="sum", fill_value=0)
            .reindex(index=ids, fill_value=0)
            .reindex(columns=pd.DatetimeIndex(hours), fill_value=0)
            .fillna(0)
        )
        counts = grid.to_numpy(dtype=float)
        out.append(_model(str(eid), ids, hours, counts, mine, window, _dispersion(frame)))
    return out


def _model(
    eid: str,
    ids: list[str],
    hours: list[datetime],
    counts: np.ndarray,
    peers: dict[str, list[str]],
    window: VotingWindow | None,
    dispersion: float,
) -> ElectionVolume:
    totals = counts.sum(axis=1)
    with np.errstate(all="ignore"):
        shares = counts / np.where(totals > 0, totals, np.nan)[:, None]
    row = {cid: i for i, cid in enumerate(ids)}
    voting = totals > 0
    shape = np.zeros_like(counts)
    # the shape neighbours' shape where the election has enough voting constituencies; the
    # peers' shape shrunk toward the election's for the other rows
    kept = _use_shape_neighbours(shares, voting, shape)
    todo = {cid: i for cid, i in row.items() if not len(kept[i])}
    if not todo:
        return ElectionVolume(eid, ids, hours, counts, shape, peers, dispersion, window, kept)
    if len(row) < len(ids) or len(hours) < 2 or any(len(set(p)) < len(p) for p in peers.values()):
        # an id twice, or one column (numpy adds a single column pairwise): one by one
        for cid, i in todo.items():
            others = [j for j in range(len(ids)) if j != i and voting[j]]
            peer_rows = [row[p] for p in peers.get(cid, []) if p in row and voting[row[p]]]
            shape[i] = _expected_shape(shares, others, peer_rows, len(hours))
        return ElectionVolume(eid, ids, hours, counts, shape, peers, dispersion, window, kept)
    flat = np.full(len(hours), 1 / len(hours))
    # the election's shape for each constituency: the trimmed mean of the others that voted
    voters = np.flatnonzero(voting)
    election = np.tile(_trimmed_mean(shares[voters]) if len(voters) else flat, (len(ids), 1))
    election[voters] = _leave_one_out_trimmed_mean(shares[voters]) if len(voters) > 1 else flat
    # its peers' shape: constituencies with the same voting peers (itself among them when
    # it voted) share one sort
    groups: dict[tuple[int, ...], list[int]] = {}
    counted: dict[int, int] = {}
    for cid, i in todo.items():
        voting_peers = {row[p] for p in peers.get(cid, []) if p in row and voting[row[p]]}
        counted[i] = len(voting_peers)
        if voting_peers:
            groups.setdefault(tuple(sorted(voting_peers | ({i} if voting[i] else set()))), []).append(i)
    peer_shape = np.zeros_like(counts)
    for members, rows in groups.items():
        matrix = shares[list(members)]
        inside = [i for i in rows if voting[i]]
        if inside:
            loo = _leave_one_out_trimmed_mean(matrix)
            at = {m: q for q, m in enumerate(members)}
            peer_shape[inside] = loo[[at[i] for i in inside]]
        outside = [i for i in rows if not voting[i]]
        if outside:
            peer_shape[outside] = _trimmed_mean(matrix)
    for i in todo.values():
        k = counted[i]
        s = election[i]
        if k:
            s = (k * peer_shape[i] + SHAPE_PRIOR_PEERS * s) / (k + SHAPE_PRIOR_PEERS)
        total = s.sum()
        shape[i] = s / total if total > 0 else 1 / len(hours)
    return ElectionVolume(eid, ids, hours, counts, shape, peers, dispersion, window, kept)


def shape_neighbours(shares: np.ndarray, voting: np.ndarray) -> list[np.ndarray]:
    """Row ``i``: the rows of the :data:`SHAPE_NEIGHBOURS` other voting constituencies whose
    daily shape is closest to row ``i``'s (none when fewer than :data:`NEIGHBOURS_MIN` other
    constituencies voted). Closeness is the Bhattacharyya coefficient Σ √(a·b) of the two
    shares (1 for the same shape, 0 for shapes without a common hour); ties go to the
    lower row."""
    q = np.sqrt(np.nan_to_num(shares))
    similar = q @ q.T
    similar[:, ~voting] = -np.inf
    np.fill_diagonal(similar, -np.inf)
    n_voting = int(voting.sum())
    out = []
    for i in range(shares.shape[0]):
        k = min(SHAPE_NEIGHBOURS, n_voting - int(voting[i]))
        out.append(np.argsort(-similar[i], kind="stable")[:k] if k >= NEIGHBOURS_MIN else np.array([], dtype=int))
    return out


def _use_shape_neighbours(shares: np.ndarray, voting: np.ndarray, shape: np.ndarray) -> list[np.ndarray]:
    """Replace, in place, the shape of every constituency that has shape neighbours by
    their trimmed mean (scaled to sum to 1); returns, per row, the neighbours used (none
    where the shape was left as it was)."""
    used = []
    for i, rows in enumerate(shape_neighbours(shares, voting)):
        s = _trimmed_mean(np.nan_to_num(shares[rows])) if len(rows) else None
        if s is not None and s.sum() > 0:
            shape[i] = s / s.sum()
            used.append(rows)
        else:
            used.append(np.array([], dtype=int))
    return used


def trimmed_count(n: int, trim: float = 0.2) -> int:
    """How many of ``n`` rows :func:`_trimmed_mean` keeps."""
    return n - 2 * (int(trim * n) if n >= 5 else 0)


def _expected_shape(shares: np.ndarray, others: list[int], peer_rows: list[int], hours: int) -> np.ndarray:
    """One constituency's expected shape: its peers' trimmed mean shape (``peer_rows``)
    shrunk toward the election's (``others``), scaled to sum to 1."""
    election_shape = _trimmed_mean(shares[others]) if others else np.full(hours, 1 / hours)
    if peer_rows:
        k = len(peer_rows)
        s = (k * _trimmed_mean(shares[peer_rows]) + SHAPE_PRIOR_PEERS * election_shape) / (k + SHAPE_PRIOR_PEERS)
    else:
        s = election_shape
    total = s.sum()
    return s / total if total > 0 else np.full(hours, 1 / hours)


def _leave_one_out_trimmed_mean(matrix: np.ndarray, trim: float = 0.2) -> np.ndarray:
    """Row ``i``: :func:`_trimmed_mean` of the other rows (of at least two columns: the kept
    values are added in their sorted order, as the column-wise mean adds them)."""
    n, m = matrix.shape
    left = n - 1
    if left <= 0:
        return np.zeros((n, m))
    g = int(trim * left) if left >= 5 else 0
    order = np.argsort(matrix, axis=0, kind="stable")
    ordered = np.take_along_axis(matrix, order, axis=0)
    rank = np.empty_like(order)
    np.put_along_axis(rank, order, np.broadcast_to(np.arange(n)[:, None], (n, m)), axis=0)
    cols = np.arange(m)[None, :]
    total = np.zeros((n, m))
    for p in range(g, left - g):  # position p among the other rows' sorted values
        total += ordered[p + (p >= rank), cols]
    return total / (left - 2 * g)


def scan(
    model: ElectionVolume,
    cid: str,
    allowed: np.ndarray,
    relative_spread: float,
    max_hours: int = MAX_SCAN_HOURS,
) -> list[Run]:
    """Every run of 1..``max_hours`` consecutive ``allowed`` hours of ``cid`` where the votes
    exceed the expected ones, with its tail probability and scan z (see the module
    docstring); the runs whose count is not even 2 standard deviations above the expected
    one are left out (their scan z would be 0)."""
    return scan_all(model, [cid], allowed, relative_spread, max_hours)[cid]


def scan_all(
    model: ElectionVolume,
    cids: list[str],
    allowed: np.ndarray,
    relative_spread: float,
    max_hours: int = MAX_SCAN_HOURS,
    worth: Callable[[float, float], bool] | None = None,
) -> dict[str, list[Run]]:
    """:func:`scan` of each of ``cids`` (constituencies of ``model``), all at once: the same
    runs, in the same order (by length, then start). With ``worth``, only the runs for which
    ``worth(votes, expected)`` holds (the others' tail probability is not worked out)."""
    out: dict[str, list[Run]] = {cid: [] for cid in cids}
    todo = [cid for cid in dict.fromkeys(cids) if model.counts[model.row(cid)].sum() > 0]
    if not todo:
        return out
    rows = np.array([model.row(cid) for cid in todo])
    widen = np.array([_widening(model, cid) for cid in todo])
    counts = model.counts[rows]
    zeros = np.zeros((len(rows), 1))
    cum_x = np.concatenate([zeros, np.cumsum(counts, axis=1)], axis=1)
    cum_s = np.concatenate([zeros, np.cumsum(model.shape[rows], axis=1)], axis=1)
    cum_ok = np.concatenate([[0], np.cumsum(allowed.astype(int))])
    n = counts.shape[1]
    measured = _measured(model)
    candidates: list[list[tuple[int, int, float, float, float, float, float]]] = [[] for _ in todo]
    tested = np.zeros(len(rows), dtype=np.int64)
    for length in range(1, min(max_hours, n) + 1):
        starts, stops, lo, hi = model.context(length)
        whole = (cum_ok[stops] - cum_ok[starts]) == length
        x = cum_x[:, stops] - cum_x[:, starts]
        s = cum_s[:, stops] - cum_s[:, starts]
        other = cum_x[:, starts] - cum_x[:, lo] + cum_x[:, hi] - cum_x[:, stops]
        s_other = cum_s[:, starts] - cum_s[:, lo] + cum_s[:, hi] - cum_s[:, stops]
        with np.errstate(all="ignore"):
            r = s / s_other
            valid = whole & (s_other > 0) & (r <= MAX_RUN_RATIO)
            tested += valid.sum(axis=1)
            e = np.maximum(other * r, MIN_EXPECTED_PER_HOUR * length)
            least = _least_spread(measured, length, relative_spread)
            c2 = np.maximum(model.shape_spreads(length)[rows], least) * widen[:, None]
            var = model.dispersion * e * (1 + r) + c2 * e * e
            z = (x - e) / np.sqrt(var)
        for q, j in zip(*np.nonzero(valid & (z > 2.0) & (x > e)), strict=True):
            candidates[q].append(
                (
                    int(starts[j]),
                    int(stops[j]),
                    float(x[q, j]),
                    float(e[q, j]),
                    float(r[q, j]),
                    float(c2[q, j]),
                    float(other[q, j]),
                )
            )
    for q, cid in enumerate(todo):
        runs = out[cid]
        for a, b, x_, e_, r_, c2_, other_ in candidates[q]:
            if worth is not None and not worth(x_, e_):
                continue
            p = scaled_count_sf(x_, e_, model.dispersion * (1 + r_), c2_)
            runs.append(Run(a, b, x_, e_, r_, c2_, other_, p, int(tested[q]), tail_to_z(min(1.0, p * int(tested[q])))))
    return out


def _widening(model: ElectionVolume, cid: str) -> float:
    """The factor on ``cid``'s c² for the error of a mean of few: 1 + 1/the shares kept of
    its shape neighbours; with peers, 1 + 1/(peers + SHAPE_PRIOR_PEERS)."""
    k = trimmed_count(len(model.neighbour_ids(cid)))
    if k:
        return 1 + 1 / k
    ids = set(model.ids)
    return 1 + 1 / (len([p for p in model.peers.get(cid, []) if p in ids]) + SHAPE_PRIOR_PEERS)


def _measured(model: ElectionVolume) -> int:
    """The other voting constituencies the spread of ``model``'s errors is measured on."""
    return int((model.counts.sum(axis=1) > 0).sum()) - 1


def _least_spread(measured: int, length: int, relative_spread: float) -> float:
    """The least c² of a run of ``length`` hours: :data:`MIN_RELATIVE_SPREAD`²/length, or
    ``relative_spread``² where too few constituencies voted (``measured``, see
    :func:`_measured`) to measure the spread."""
    return relative_spread**2 if measured < MIN_MEASURED else MIN_RELATIVE_SPREAD**2 / length


def pick_runs(runs: list[Run], keep: Callable[[Run], bool], limit: int = 5) -> list[Run]:
    """The most significant run that ``keep`` accepts, then the most significant one not
    overlapping it, and so on (at most ``limit``)."""
    chosen: list[Run] = []
    for run in sorted(runs, key=lambda r: (-r.scan_z, r.p_value, r.start, r.hours)):
        if len(chosen) >= limit:
            break
        if not keep(run):
            continue
        if any(run.start < c.stop and c.start < run.stop for c in chosen):
            continue
        chosen.append(run)
    return sorted(chosen, key=lambda r: r.start)


def votes_needed(run: Run, dispersion: float, z: float) -> int:
    """The fewest votes in ``run``'s hours that would reach scan z ``z`` (other hours and
    expectation unchanged)."""
    d = dispersion * (1 + run.ratio)

    def scan_z(x: float) -> float:
        return tail_to_z(min(1.0, scaled_count_sf(x, run.expected, d, run.relative_var) * run.runs_tested))

    lo, hi = math.floor(run.expected), max(math.ceil(run.votes), math.ceil(run.expected) + 1)
    while scan_z(hi) <= z:
        hi *= 2
        if hi > 10**9:
            return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if scan_z(mid) > z:
            hi = mid
        else:
            lo = mid
    return hi


def own_days_model(model: ElectionVolume) -> tuple[ElectionVolume, np.ndarray] | None:
    """The volume model with each constituency's expected shape taken from its *own other
    days*: an hour's share is the mean of the constituency's shares at the same local clock
    time on the election's other local dates. Returns it with the hours that have such a
    counterpart on another date (none in a one-day election: then None). A station that votes
    unlike every other one in its election (an urban station among rural ones) is predicted
    by its own habits here, which is how ``unusual_spike`` tells such a station from a
    burst before it calls a run critical."""
    if model.window is None or not len(model.hours):
        return None
    local = [model.window.local(h) for h in model.hours]
    by_clock: dict[tuple[int, int], list[int]] = {}
    for j, t in enumerate(local):
        by_clock.setdefault((t.hour, t.minute), []).append(j)
    totals = model.counts.sum(axis=1)
    with np.errstate(all="ignore"):
        shares = np.nan_to_num(model.counts / np.where(totals > 0, totals, np.nan)[:, None])
    shape = np.zeros_like(shares)
    counterpart = np.zeros(len(local), dtype=bool)
    for same in by_clock.values():
        for j in same:
            others = [q for q in same if local[q].date() != local[j].date()]
            if others:
                shape[:, j] = shares[:, others].mean(axis=1)
                counterpart[j] = True
    if not counterpart.any():
        return None
    return replace(model, shape=shape, neighbours=None, robust_errors=True), counterpart


def run_against(model: ElectionVolume, cid: str, run: Run, allowed: np.ndarray, relative_spread: float) -> Run | None:
    """The most excessive part of ``run``'s hours of ``cid`` (the whole run or any run of
    consecutive hours inside it) judged by ``model``, another model of the same election
    (:func:`own_days_model`), as :func:`scan_all` judges runs, with the tail probability
    multiplied by the runs ``run`` was tested among; None where that model cannot judge an
    hour of it (not ``allowed``). Where no part is even 2 standard deviations above that
    model's expectation, the whole run with scan z 0; the whole run is judged even when it
    is expected to hold more than :data:`MAX_RUN_RATIO` × its context's votes (a scan
    would skip it), since the question is only whether that model, too, finds votes in
    excess."""
    if not allowed[run.start : run.stop].all():
        return None
    inside = np.zeros_like(allowed)
    inside[run.start : run.stop] = True
    found = scan_all(model, [cid], inside, relative_spread, max_hours=run.hours)[cid]
    if found:
        r = min(found, key=lambda f: (f.p_value, f.start, f.hours))
        return replace(r, runs_tested=run.runs_tested, scan_z=tail_to_z(min(1.0, r.p_value * run.runs_tested)))
    row = model.row(cid)
    starts, stops, lo, hi = model.context(run.hours)
    j = run.start
    s = model.shape[row]
    s_run = float(s[starts[j] : stops[j]].sum())
    s_other = float(s[lo[j] : starts[j]].sum() + s[stops[j] : hi[j]].sum())
    if s_other <= 0:
        return None
    ratio = s_run / s_other
    expected = max(run.context_votes * ratio, MIN_EXPECTED_PER_HOUR * run.hours)
    least = _least_spread(_measured(model), run.hours, relative_spread)
    c2 = max(float(model.shape_spreads(run.hours)[row, j]), least) * _widening(model, cid)
    p = scaled_count_sf(run.votes, expected, model.dispersion * (1 + ratio), c2) if run.votes > expected else 1.0
    z = tail_to_z(min(1.0, p * run.runs_tested))
    return Run(run.start, run.stop, run.votes, expected, ratio, c2, run.context_votes, p, run.runs_tested, z)
