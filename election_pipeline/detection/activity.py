"""Statistical rules about *when* things happen: spikes, night-time votes, silence.

* ``unusual_spike``: the votes of an hour or a run of hours far above what the
  constituency's own level and the daily shape of the constituencies that vote most like it
  (its *shape neighbours*, :mod:`~.volume`) predict.
* ``night_activity``: votes between 00:00 and 06:00 local time, judged the same way over
  runs of night hours, or above a share of the constituency's own daytime median.
* ``constituency_offline``: no transactions for N hours inside the voting window while
  peers were active.

Peers are the other constituencies of the same election and region (of the whole
election when the region has fewer than three others); see
:func:`~election_pipeline.detection.context.peer_groups`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Collection
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property, partial

import numpy as np
import pandas as pd

from election_pipeline.vocabulary import Severity, SeverityName

from .context import (
    HOUR,
    VotingWindow,
    constituency_names,
    describe_hour,
    hour_ceil,
    hour_floor,
    label,
    peer_groups,
    to_naive_instant,
)
from .findings import Finding
from .thresholds import DetectionThresholds, SpikeThresholds
from .volume import (
    ElectionVolume,
    Run,
    election_volumes,
    own_days_model,
    pick_runs,
    run_against,
    scan_all,
    votes_needed,
)

#: Local hours that count as night (00:00-06:00) and as daytime (08:00-22:00).
NIGHT_HOURS = range(0, 6)
DAY_HOURS = range(8, 22)
#: ``night_activity`` needs this many daytime hours before it can judge a night.
MIN_DAY_HOURS = 6
#: ``constituency_offline`` needs at least this share of peers to have been active.
MIN_ACTIVE_PEERS = 0.5


def _registered(constituencies: pd.DataFrame) -> dict[str, float]:
    return {str(i): float(r) for i, r in zip(constituencies["id"], constituencies["registered"], strict=False)}


def _pivot(hourly: pd.DataFrame, column: str) -> pd.DataFrame:
    frame = hourly.pivot_table(index="constituency_id", columns="hour", values=column, aggfunc="sum", fill_value=0)
    frame.index = frame.index.astype(str)
    return frame


# --------------------------------------------------------------------------------------
# unusual_spike
# --------------------------------------------------------------------------------------


def unusual_spike(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    thresholds: SpikeThresholds,
    closed: Collection[str] | None = None,
    windows: dict[str, VotingWindow] | None = None,
    now: datetime | None = None,
) -> list[Finding]:
    """Warning/critical: more votes in one hour, or in a run of consecutive hours, than the
    constituency's own turnout and the daily shape of its shape neighbours can explain.

    For every run of 1 to 12 consecutive hours (inside the voting window, up to ``now``)
    the expected votes are the constituency's own votes in the surrounding hours × the
    ratio of the run's votes to those hours' votes in the daily shape of its shape
    neighbours (the constituencies of the election whose hour-by-hour shares are closest
    to its own; its peers' shape in an election of six or fewer)
    (:mod:`election_pipeline.detection.volume`), and
    the count is judged against a negative binomial that allows for voters coming in
    groups (the election's fitted dispersion) and for the uncertainty of that shape.
    Because many runs are tested, the tail probability is multiplied by their number and
    turned into a z-score (the *scan z*, the finding's ``statistic``): warning above
    ``warning_z``, critical above ``critical_z`` (exactly at a threshold does not fire).
    A run is flagged only when it holds at least ``min_votes`` votes more than expected.
    One finding per run; overlapping runs are reported once, by the most significant.
    In an election of fewer than 17 constituencies, a run above ``critical_z`` is critical
    only if it, or a part of it, is also above ``warning_z`` against the constituency's *own
    other days* (the same local hours of the election's other dates,
    :func:`~.volume.own_days_model`, :func:`~.volume.run_against`); otherwise it stays a
    warning and says so. There a station can vote unlike every other station of its
    election (the one urban station among rural ones): it peaks every day where they do
    not, and that is not a burst. In a one-day election the check cannot be made. In larger
    elections a station's shape neighbours vote like it.

    Separately, once a constituency's voting is over (``closed``; all of them when
    ``closed`` is None), an hour holding more than ``hour_share`` of its total votes
    (total at least 100) is a warning.
    """
    if hourly.empty:
        return []
    windows = windows or {}
    names = constituency_names(constituencies)
    peers = peer_groups(constituencies)
    votes = _pivot(hourly, "votes_cast")
    ids = sorted(set(votes.index) | {p for ps in peers.values() for p in ps} | set(peers))
    grid = votes.reindex(ids, fill_value=0)
    findings = []
    for model in election_volumes(hourly, constituencies, windows, now):
        cids = [cid for cid in sorted(model.peers) if cid in votes.index]
        scans = scan_all(
            model,
            cids,
            np.ones(len(model.hours), dtype=bool),
            thresholds.relative_spread,
            worth=lambda votes, expected: votes - expected >= thresholds.min_votes,
        )
        these = thresholds.for_election(model.robust_spread)
        own_days = _OwnDays(model, thresholds.relative_spread)
        for cid in cids:
            chosen = pick_runs(scans[cid], partial(_worth_a_warning, these))
            findings += [
                _scan_finding(
                    model,
                    cid,
                    names,
                    windows.get(cid),
                    r,
                    these,
                    own_days.judge(cid, r) if r.scan_z > these.critical_z and not model.robust_spread else None,
                )
                for r in chosen
            ]
    return findings + _hour_share_findings(votes, grid, peers, names, windows, closed, thresholds)


class _OwnDays:
    """The own-other-days model of one election (:func:`~.volume.own_days_model`), built
    the first time a run needs it."""

    def __init__(self, model: ElectionVolume, relative_spread: float) -> None:
        self.model = model
        self.relative_spread = relative_spread

    @cached_property
    def _own(self) -> tuple[ElectionVolume, np.ndarray] | None:
        return own_days_model(self.model)

    def judge(self, cid: str, run: Run) -> Run | None:
        """``run`` judged against ``cid``'s own other days; None where it cannot be."""
        if self._own is None:
            return None
        own, counterpart = self._own
        return run_against(own, cid, run, counterpart, self.relative_spread)


def _worth_a_warning(thresholds: SpikeThresholds, run: Run) -> bool:
    """Whether ``run`` is above the warning level and holds enough votes more than expected."""
    return run.scan_z > thresholds.warning_z and run.votes - run.expected >= thresholds.min_votes


def _peer_stats(matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Column-wise median and MAD over the rows (peers), ignoring NaN."""
    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # a column of peers with no votes at all
        # np.median gives the same result when nothing is missing, and much faster.
        middle = np.nanmedian if np.isnan(matrix).any() else np.median
        median = middle(matrix, axis=0)
        mad = middle(np.abs(matrix - median), axis=0)
    return np.nan_to_num(median), np.nan_to_num(mad)


def _run_span(model: ElectionVolume, run: Run, window: VotingWindow | None) -> str:
    """``2024-09-06 10:00 local (07:00 UTC)``, or ``... to 13:00 local`` for several hours."""
    start, stop = model.hours[run.start], model.hours[run.stop - 1] + HOUR
    if run.hours == 1:
        return f"the hour starting {describe_hour(start, window)}"
    if window is None:
        return f"the {run.hours} hours {start:%Y-%m-%d %H:00}-{stop:%H:00} UTC"
    return (
        f"the {run.hours} hours {window.local(start):%Y-%m-%d %H:%M}-{window.local(stop):%H:%M} local "
        f"({start:%H:00}-{stop:%H:00} UTC)"
    )


def _run_figures(model: ElectionVolume, cid: str, run: Run, warning_z: float, critical_z: float | None) -> dict:
    figures = {
        "votes": int(run.votes),
        "expected_votes": round(run.expected, 2),
        "run_hours": run.hours,
        "context_votes": int(run.context_votes),
        "peers_run_to_context_ratio": round(run.ratio, 5),
        "dispersion": round(model.dispersion, 3),
        "expected_relative_uncertainty": round(math.sqrt(run.relative_var), 4),
        "p_value": float(f"{run.p_value:.3g}"),
        "runs_tested": run.runs_tested,
        "votes_for_warning": votes_needed(run, model.dispersion, warning_z),
        "peers": len(model.peers.get(cid, [])),
        "shape_neighbours": model.neighbour_ids(cid),
        "kind": "scan",
    }
    if critical_z is not None:
        figures["votes_for_critical"] = votes_needed(run, model.dispersion, critical_z)
    return figures


def _shape_source(model: ElectionVolume, cid: str) -> str:
    """Whose votes gave the expected shape, for a finding's description."""
    neighbours = model.neighbour_ids(cid)
    if neighbours:
        return f"the {len(neighbours)} constituencies of the election whose daily shape is closest to its own"
    return f"its {len(model.peers.get(cid, []))} peers"


def _scan_finding(
    model: ElectionVolume,
    cid: str,
    names: dict[str, str],
    window: VotingWindow | None,
    run: Run,
    thresholds: SpikeThresholds,
    own_days: Run | None = None,
) -> Finding:
    z = run.scan_z
    severity: SeverityName = "critical" if z > thresholds.critical_z else "warning"
    hrs = model.hours[run.start : run.stop]
    figures = _run_figures(model, cid, run, thresholds.warning_z, thresholds.critical_z)
    what = "Vote spike" if run.hours == 1 else f"Excess votes over {run.hours} hours"
    own_note = ""
    if own_days is not None:
        same = (own_days.start, own_days.stop) == (run.start, run.stop)
        figures["own_days_votes"] = int(own_days.votes)
        figures["own_days_expected_votes"] = round(own_days.expected, 2)
        figures["own_days_run_hours"] = own_days.hours
        figures["own_days_scan_z"] = round(own_days.scan_z, 3)
        part = "in these hours" if same else f"in the most excessive part of them, {_run_span(model, own_days, window)}"
        own_note = (
            f" Against its own other days (the same local hours on the election's other dates), {part}: "
            f"{int(own_days.votes)} votes where about {own_days.expected:.1f} were expected, scan z "
            f"{own_days.scan_z:.1f}"
        )
        if own_days.scan_z <= thresholds.warning_z:
            severity = "warning"
            own_note += (
                f", not above the warning level {thresholds.warning_z:g}, so this is a warning, not a critical: the "
                "constituency votes like this on its other days too, unlike the others."
            )
        else:
            own_note += ", above the warning level there too."
    return Finding(
        rule="unusual_spike",
        severity=severity,
        constituency_id=cid,
        title=f"{what} in {label(names, cid)} from {describe_hour(hrs[0], window)}",
        description=(
            f"{int(run.votes)} votes in {_run_span(model, run, window)}, where about {run.expected:.1f} were "
            f"expected: its {int(run.context_votes)} votes in the surrounding hours × {run.ratio:.3f}, the "
            f"ratio of these hours' votes to the surrounding hours' among {_shape_source(model, cid)} "
            f"(±{math.sqrt(run.relative_var):.0%}, "
            f"and voters coming in groups: variance {model.dispersion:.2f} × the mean). Chance of so many: "
            f"{run.p_value:.1e} in one try, {run.runs_tested} runs of hours tested: scan z {z:.1f} (warning "
            f"above {thresholds.warning_z:g}, from about {figures['votes_for_warning']} votes; critical above "
            f"{thresholds.critical_z:g}, from about {figures['votes_for_critical']}).{own_note} Look at who voted "
            "in these hours and how fast."
        ),
        window_start=hrs[0],
        window_end=hrs[-1] + HOUR,
        statistic=round(float(z), 3),
        expected=round(float(run.expected), 2),
        threshold=thresholds.critical_z if severity == Severity.CRITICAL else thresholds.warning_z,
        strength=min(1.0, float(z) / thresholds.critical_z) if thresholds.critical_z > 0 else 1.0,
        hours=list(hrs),
        figures=figures,
        evidence_kind="vote",
        window_key=f"{hrs[0]:%Y-%m-%dT%H}",
    )


def _hour_share_findings(
    votes: pd.DataFrame,
    grid: pd.DataFrame,
    peers: dict[str, list[str]],
    names: dict[str, str],
    windows: dict[str, VotingWindow],
    closed: Collection[str] | None,
    thresholds: SpikeThresholds,
) -> list[Finding]:
    """The hours holding more than ``hour_share`` of a closed constituency's votes."""
    findings: list[Finding] = []
    totals = votes.sum(axis=1)
    peer_hour_share = grid.div(grid.sum(axis=1).replace(0, np.nan), axis=0)
    for cid in sorted(votes.index):
        if closed is not None and cid not in closed:
            continue
        total = float(totals[cid])
        if total < 100:
            continue
        window = windows.get(cid)
        for hour, n in votes.loc[cid].items():
            share = float(n) / total
            if n < thresholds.min_votes or share <= thresholds.hour_share:
                continue
            h = to_naive_instant(hour)
            peer_ids = peers.get(cid, [])
            peer_values = peer_hour_share.loc[peer_ids, hour].to_numpy(dtype=float) if peer_ids else np.array([])
            expected = (
                float(np.nanmedian(peer_values))
                if np.isfinite(peer_values).any()
                else 1.0 / max(1, int((votes.loc[cid] > 0).sum()))
            )
            findings.append(
                Finding(
                    rule="unusual_spike",
                    severity="warning",
                    constituency_id=cid,
                    title=f"One hour holds {share:.0%} of the votes of {label(names, cid)}",
                    description=(
                        f"The hour starting {describe_hour(h, window)} holds {int(n)} of {int(total)} votes ({share:.1%}), "
                        f"more than {thresholds.hour_share:.0%} of the constituency's total in a single hour"
                        + (
                            f" (its peers cast a median {expected:.1%} of their votes in that hour)."
                            if peer_ids
                            else "."
                        )
                    ),
                    window_start=h,
                    window_end=h + HOUR,
                    statistic=round(share, 4),
                    expected=round(expected, 4),
                    threshold=thresholds.hour_share,
                    strength=min(1.0, share / (2 * thresholds.hour_share)),
                    hours=[h],
                    figures={"votes": int(n), "total_votes": int(total), "kind": "hour_share"},
                    evidence_kind="vote",
                    window_key=f"{h:%Y-%m-%dT%H}|share",
                )
            )
    return findings


# --------------------------------------------------------------------------------------
# night_activity
# --------------------------------------------------------------------------------------


def _window_hours(window: VotingWindow, now: datetime) -> list[datetime]:
    """UTC hours from the window's first to the one holding ``min(end, now)``."""
    last = hour_ceil(min(window.end, now))
    h = hour_floor(window.start)
    out = []
    while h < last:
        out.append(h)
        h += HOUR
    return out


def night_activity(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    windows: dict[str, VotingWindow],
    thresholds: DetectionThresholds,
    now: datetime | None = None,
) -> list[Finding]:
    """Warning: votes between 00:00 and 06:00 **local time** (the election's time zone).

    Two tests, one alert per constituency and night (the local date of the night):

    * **A run of night hours** (1 to 6 consecutive 00:00-06:00 local hours inside the
      voting window) holding more votes than the constituency's own level × its shape
      neighbours' night-time shape explains, as for ``unusual_spike`` (:mod:`~.volume`): scan z above
      ``night_warning_z``, the runs tested being the night runs only, and at least
      ``night_min_votes`` votes in the run. An honest constituency casts a fraction of a
      vote in a night hour, so three hours of 5-8 votes stand out.
    * **One night hour** with at least ``night_min_votes`` votes **and** more than
      ``night_share`` × the constituency's median votes per daytime hour (08:00-22:00
      local, hours without votes counting as 0; at least six daytime hours are needed);
      this needs no peers.

    Each UTC hour is placed by the local time of its start (in zones with a half-hour
    offset that is the nearest local hour).
    """
    if hourly.empty or not windows:
        return []
    now = now or max(w.end for w in windows.values())
    names = constituency_names(constituencies)
    scanned = _night_scan_findings(hourly, constituencies, windows, thresholds, now, names)
    seen = {(f.constituency_id, f.window_key) for f in scanned}
    share = [
        f
        for f in _night_share_findings(hourly, windows, thresholds, now, names)
        if (f.constituency_id, f.window_key) not in seen
    ]
    return sorted(scanned + share, key=lambda f: (f.constituency_id, f.window_key))


def _night_scan_findings(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    windows: dict[str, VotingWindow],
    thresholds: DetectionThresholds,
    now: datetime,
    names: dict[str, str],
) -> list[Finding]:
    """The runs of night hours the volume model finds (see :func:`night_activity`)."""
    findings: list[Finding] = []
    for model in election_volumes(hourly, constituencies, windows, now):
        if model.window is None:
            continue
        window = model.window
        local = [window.local(h) for h in model.hours]
        night = np.array([loc.hour in NIGHT_HOURS for loc in local])
        if not night.any():
            continue
        cids = [cid for cid in sorted(model.peers) if cid in windows]
        scans = scan_all(
            model,
            cids,
            night,
            thresholds.spike_relative_spread,
            max_hours=len(NIGHT_HOURS),
            worth=lambda votes, _expected: votes >= thresholds.night_min_votes,
        )
        for cid in cids:
            chosen = pick_runs(
                scans[cid], lambda r: r.scan_z > thresholds.night_warning_z and r.votes >= thresholds.night_min_votes
            )
            by_night: dict[date, Run] = {}
            for r in chosen:  # the most significant run of each night
                d = local[r.start].date()
                if d not in by_night or r.scan_z > by_night[d].scan_z:
                    by_night[d] = r
            for d, r in sorted(by_night.items()):
                findings.append(_night_scan_finding(model, cid, names, window, d, r, thresholds))
    return findings


def _night_scan_finding(
    model: ElectionVolume,
    cid: str,
    names: dict[str, str],
    window: VotingWindow,
    night: date,
    run: Run,
    thresholds: DetectionThresholds,
) -> Finding:
    hrs = model.hours[run.start : run.stop]
    counts = model.counts[model.row(cid), run.start : run.stop]
    by_hour = {f"{window.local(h):%H:%M}": int(v) for h, v in zip(hrs, counts, strict=True)}
    figures = _run_figures(model, cid, run, thresholds.night_warning_z, None)
    figures.update(
        {"night": night.isoformat(), "timezone": window.timezone, "votes_by_local_hour": by_hour, "kind": "night_scan"}
    )
    listing = ", ".join(f"{k} ({v})" for k, v in by_hour.items())
    return Finding(
        rule="night_activity",
        severity="warning",
        constituency_id=cid,
        title=f"Night-time votes in {label(names, cid)} on the night of {night:%Y-%m-%d}",
        description=(
            f"{int(run.votes)} votes in {_run_span(model, run, window)} ({window.timezone}), by local hour: "
            f"{listing}; about {run.expected:.1f} were expected from its {int(run.context_votes)} votes in the "
            f"surrounding hours × {run.ratio:.4f}, the night votes to those hours' votes of "
            f"{_shape_source(model, cid)}. Chance of so many: {run.p_value:.1e} in one try, {run.runs_tested} night runs tested: "
            f"scan z {run.scan_z:.1f} (warning above {thresholds.night_warning_z:g}, from about "
            f"{figures['votes_for_warning']} votes). Check who voted at night."
        ),
        window_start=hrs[0],
        window_end=hrs[-1] + HOUR,
        statistic=round(run.scan_z, 3),
        expected=round(run.expected, 2),
        threshold=thresholds.night_warning_z,
        strength=min(1.0, run.scan_z / (2 * thresholds.night_warning_z)) if thresholds.night_warning_z > 0 else 1.0,
        hours=list(hrs),
        figures=figures,
        evidence_kind="vote",
        window_key=f"{night:%Y-%m-%d}",
    )


def _night_share_findings(
    hourly: pd.DataFrame,
    windows: dict[str, VotingWindow],
    thresholds: DetectionThresholds,
    now: datetime,
    names: dict[str, str],
) -> list[Finding]:
    """The night hours above ``night_share`` × the daytime median (see :func:`night_activity`)."""
    findings: list[Finding] = []
    votes = _pivot(hourly, "votes_cast")
    by_window: dict[VotingWindow, tuple[list[datetime], list[datetime], pd.DataFrame]] = {}
    for cid in sorted(windows):
        if cid not in votes.index:
            continue
        window = windows[cid]
        if window not in by_window:  # the hours of a window, in local time, and its constituencies' votes
            hours = _window_hours(window, now)
            mine = sorted(c for c, w in windows.items() if w == window and c in votes.index)
            by_window[window] = (
                hours,
                [window.local(h) for h in hours],
                votes.loc[mine].reindex(columns=pd.DatetimeIndex(hours), fill_value=0) if hours else votes.iloc[:0],
            )
        hours, local, grid = by_window[window]
        if not hours:
            continue
        series = grid.loc[cid]
        day = [float(v) for v, loc in zip(series, local, strict=False) if loc.hour in DAY_HOURS]
        if len(day) < MIN_DAY_HOURS:
            continue
        median = float(np.median(day))
        limit = thresholds.night_share * median
        nights: dict[date, list[tuple[datetime, datetime, int]]] = {}
        for h, loc, v in zip(hours, local, series, strict=False):
            if loc.hour in NIGHT_HOURS and v >= thresholds.night_min_votes and v > limit:
                nights.setdefault(loc.date(), []).append((h, loc, int(v)))
        for night, flagged in sorted(nights.items()):
            worst = max(v for _h, _l, v in flagged)
            ratio = worst / max(median, 1.0)
            hrs = [h for h, _l, _v in flagged]
            listing = ", ".join(f"{loc:%H:%M} ({v})" for _h, loc, v in flagged)
            findings.append(
                Finding(
                    rule="night_activity",
                    severity="warning",
                    constituency_id=cid,
                    title=f"Night-time votes in {label(names, cid)} on the night of {night:%Y-%m-%d}",
                    description=(
                        f"{sum(v for *_x, v in flagged)} votes between 00:00 and 06:00 local time ({window.timezone}) "
                        f"on {night:%Y-%m-%d}, by local hour: {listing}. A daytime hour holds a median {median:g} "
                        f"votes; a night hour is flagged above {thresholds.night_share:g} × that (and from "
                        f"{thresholds.night_min_votes} votes). Check who voted at night."
                    ),
                    window_start=hrs[0],
                    window_end=hrs[-1] + HOUR,
                    statistic=round(ratio, 3),
                    expected=median,
                    threshold=thresholds.night_share,
                    strength=min(1.0, ratio / (4 * thresholds.night_share)) if thresholds.night_share > 0 else 1.0,
                    hours=hrs,
                    figures={
                        "night": night.isoformat(),
                        "timezone": window.timezone,
                        "votes_by_local_hour": {f"{loc:%H:%M}": v for _h, loc, v in flagged},
                        "night_votes": sum(v for *_x, v in flagged),
                        "worst_hour_votes": worst,
                        "daytime_median_votes": median,
                        "daytime_hours": len(day),
                        "min_votes": thresholds.night_min_votes,
                    },
                    evidence_kind="vote",
                    window_key=f"{night:%Y-%m-%d}",
                )
            )
    return findings


# --------------------------------------------------------------------------------------
# constituency_offline
# --------------------------------------------------------------------------------------


def _runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """[start, stop) index ranges where ``mask`` is true."""
    out, start = [], None
    for i, flag in enumerate(mask):
        if flag and start is None:
            start = i
        elif not flag and start is not None:
            out.append((start, i))
            start = None
    if start is not None:
        out.append((start, len(mask)))
    return out


def constituency_offline(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    windows: dict[str, VotingWindow],
    thresholds: DetectionThresholds,
    now: datetime | None = None,
) -> list[Finding]:
    """Warning: no transactions for ``offline_after_hours`` (rounded up) or more whole hours inside the voting
    window, while peers were active.

    Only whole UTC hours inside the window and before ``now`` count, so the rule also fires
    from the schedule while a constituency stays silent (no file needs to arrive). A silent
    run is flagged when its peers predict at least ``offline_min_votes`` votes for it and
    at least half of the peers sent transactions during it. The prediction is the smaller
    of registered voters × the peers' median votes per registered voter (hour by hour) and
    the constituency's own votes (scaled up for the silent hours) × the share of their
    votes the peers cast in those hours, so a low-turnout constituency is judged by its
    own level. Votes, not transactions, are
    predicted because each voter brings a bulletin and a vote together: an honest
    constituency is silent for the run only if no voter came, which has probability
    e^-(predicted votes), about 6e-6 at the default of 12. The alert is keyed by the
    run's first hour, so a silence that goes on updates the same alert.
    """
    if not windows:
        return []
    now = now or max(w.end for w in windows.values())
    names = constituency_names(constituencies)
    registered = _registered(constituencies)
    peers = peer_groups(constituencies)
    needed = max(1, math.ceil(thresholds.offline_after_hours))
    tx = _pivot(hourly, "transaction_count") if not hourly.empty else pd.DataFrame()
    votes = _pivot(hourly, "votes_cast") if not hourly.empty else pd.DataFrame()
    findings: list[Finding] = []
    for cid in sorted(peers):
        window = windows.get(cid)
        if window is None:
            continue
        hours = window.full_hours(now)
        if len(hours) < needed:
            continue
        index = pd.DatetimeIndex(hours)
        own = (
            tx.loc[cid].reindex(index, fill_value=0).to_numpy(dtype=float) if cid in tx.index else np.zeros(len(hours))
        )
        silent_runs = [(i0, i1) for i0, i1 in _runs(own == 0) if i1 - i0 >= needed]
        if not silent_runs:  # nothing to judge: the peers' figures are not needed
            continue
        activity = _PeerActivity.of(cid, peers[cid], index, tx, votes, registered)
        for i0, i1 in silent_runs:
            expected = activity.predicted_votes(i0, i1)
            active = activity.active_share(i0, i1)
            if expected < thresholds.offline_min_votes or active < MIN_ACTIVE_PEERS:
                continue
            ongoing = i1 == len(hours) and now < window.end
            findings.append(
                _offline_finding(
                    cid,
                    names,
                    window,
                    hours[i0:i1],
                    ongoing=ongoing,
                    expected=expected,
                    active=active,
                    peers=len(peers[cid]),
                    needed=needed,
                    thresholds=thresholds,
                )
            )
    return findings


@dataclass(frozen=True)
class _PeerActivity:
    """What a constituency's peers did in the hours of its window (``index``), against which
    its silent runs are judged (see :func:`constituency_offline`)."""

    expected_by_hour: np.ndarray  # registered voters × the peers' median votes per registered voter
    shape: np.ndarray  # the peers' median share of their own votes, hour by hour
    peer_tx: np.ndarray  # transactions, peers × hours
    own_total: float  # the constituency's own votes in these hours

    @classmethod
    def of(
        cls,
        cid: str,
        peer_ids: list[str],
        index: pd.DatetimeIndex,
        tx: pd.DataFrame,
        votes: pd.DataFrame,
        registered: dict[str, float],
    ) -> _PeerActivity:
        peer_tx = (
            tx.reindex(index=peer_ids, columns=index).fillna(0).to_numpy(dtype=float)
            if not tx.empty
            else np.zeros((len(peer_ids), len(index)))
        )
        peer_votes = (
            votes.reindex(index=peer_ids, columns=index).fillna(0).to_numpy(dtype=float)
            if not votes.empty
            else np.zeros((len(peer_ids), len(index)))
        )
        rates = peer_votes / np.array([registered[p] for p in peer_ids])[:, None]
        expected_by_hour = registered[cid] * np.median(rates, axis=0)
        peer_totals = peer_votes.sum(axis=1)
        with np.errstate(all="ignore"):
            shape, _ = _peer_stats(peer_votes / np.where(peer_totals > 0, peer_totals, np.nan)[:, None])
        own_votes = (
            votes.loc[cid].reindex(index, fill_value=0).to_numpy(dtype=float)
            if cid in votes.index
            else np.zeros(len(index))
        )
        return cls(expected_by_hour, shape, peer_tx, float(own_votes.sum()))

    def predicted_votes(self, i0: int, i1: int) -> float:
        """The votes the peers predict for the hours ``[i0, i1)``: the smaller of the
        register-based prediction and the constituency's own turnout, scaled up for the
        silent hours, times the peers' hourly shape."""
        expected = float(self.expected_by_hour[i0:i1].sum())
        run_share = float(self.shape[i0:i1].sum())
        if self.own_total > 0 and run_share < 1:
            expected = min(expected, self.own_total / (1 - run_share) * run_share)
        return expected

    def active_share(self, i0: int, i1: int) -> float:
        """The share of the peers that sent transactions in the hours ``[i0, i1)``."""
        return float(np.mean((self.peer_tx[:, i0:i1] > 0).any(axis=1)))


def _offline_finding(
    cid: str,
    names: dict[str, str],
    window: VotingWindow,
    run: list[datetime],
    *,
    ongoing: bool,
    expected: float,
    active: float,
    peers: int,
    needed: int,
    thresholds: DetectionThresholds,
) -> Finding:
    """The alert for the silent hours ``run``."""
    length = len(run)
    start, stop = run[0], run[-1] + HOUR
    return Finding(
        rule="constituency_offline",
        severity="warning",
        constituency_id=cid,
        title=(
            f"{label(names, cid)} silent for {length} h from {window.local(start):%Y-%m-%d %H:%M} local"
            + (" (ongoing)" if ongoing else "")
        ),
        description=(
            f"No transaction from {window.local(start):%Y-%m-%d %H:%M} to "
            f"{window.local(stop):%H:%M} local time "
            f"({start:%H:00}-{stop:%H:00} UTC){', and still silent' if ongoing else ''}, inside the voting "
            f"window, while {active:.0%} of its {peers} peers sent transactions and their turnout "
            f"predicted about {expected:.0f} votes here (silence by chance: about {math.exp(-expected):.0e}). "
            "Check the node, the export and the polling station's connection."
        ),
        window_start=start,
        window_end=stop,
        statistic=float(length),
        expected=round(expected, 2),
        threshold=float(needed),
        strength=min(1.0, length / (3 * needed)),
        hours=run,
        figures={
            "silent_hours": length,
            "predicted_votes": round(expected, 2),
            "active_peer_share": round(active, 3),
            "peers": peers,
            "min_predicted_votes": thresholds.offline_min_votes,
            "ongoing": ongoing,
            "timezone": window.timezone,
        },
        evidence_kind="around",
        window_key=f"{start:%Y-%m-%dT%H}",
    )
