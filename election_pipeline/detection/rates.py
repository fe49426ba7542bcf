"""Statistical rules about shares: rejections, revotes, unused bulletins, participation.

The three rate rules (``high_rejection_rate``, ``high_revote_rate``,
``issued_not_voted_gap``) fire when a share is above its threshold **and** the excess is
significant: the one-sided binomial p-value of the count, against the threshold rate, is at
most ``rate_alpha`` (0.005). One rejected transaction out of three is 33%, but it is no
evidence of anything; forty out of a hundred is.

The two hourly ones add the counts of every run of 1 to 12 consecutive hours (a scan), so
eight hours of a quarter of the votes rejected in a small constituency add up to a clear
signal even when no single hour does; the p-value of a run is multiplied by the number of
runs tested for the constituency (Bonferroni) before it is compared with ``rate_alpha``.
"""

from __future__ import annotations

import itertools
from collections.abc import Collection, Iterator
from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

from .context import HOUR, VotingWindow, constituency_names, describe_hour, label, to_naive_instant
from .findings import Finding
from .stats import binomial_sf, rate_exceeds
from .thresholds import DetectionThresholds

#: Longest run of consecutive hours the rate rules add up.
MAX_RUN_HOURS = 12


@dataclass(frozen=True)
class HourlyRate:
    """What one hourly rate rule counts and how its alert speaks of it: ``count`` out of the
    sum of the ``base`` columns of ``hourly_stats``, in the words ``noun`` out of
    ``base_noun``, with ``advice`` for the observer and the transactions of ``evidence``."""

    rule: str
    count: str
    base: tuple[str, ...]
    noun: str
    base_noun: str
    advice: str
    evidence: str


REJECTIONS = HourlyRate(
    rule="high_rejection_rate",
    count="rejected_count",
    base=("transaction_count",),
    noun="rejected",
    base_noun="transactions",
    advice="Many rejections can mean a faulty client, repeated bulletin requests or an attempt to vote "
    "without a valid signature.",
    evidence="rejected",
)
REVOTES = HourlyRate(
    rule="high_revote_rate",
    count="revote_count",
    base=("votes_cast", "revote_count"),
    noun="revotes",
    base_noun="accepted votes",
    advice="A burst of revotes can mean voters being made to vote again under supervision.",
    evidence="revote",
)


def _runs_of_hours(
    k: np.ndarray, n: np.ndarray, threshold: float
) -> tuple[list[tuple[int, int, int, int, float]], int]:
    """Every run of 1..``MAX_RUN_HOURS`` consecutive hours (rows of ``k``, ``n``, one per
    hour) whose share k/n is above ``threshold``, with its binomial tail P(X ≥ k | n,
    threshold): (start, stop, k, n, p); and how many runs were tested (those with n > 0)."""
    ck = np.concatenate([[0], np.cumsum(k)])
    cn = np.concatenate([[0], np.cumsum(n)])
    out = []
    tested = 0
    for length in range(1, min(MAX_RUN_HOURS, len(k)) + 1):
        starts = np.arange(0, len(k) - length + 1)
        kk = ck[starts + length] - ck[starts]
        nn = cn[starts + length] - cn[starts]
        tested += int((nn > 0).sum())
        for j in np.flatnonzero((nn > 0) & (kk > nn * threshold)):
            kj, nj = int(kk[j]), int(nn[j])
            out.append((int(starts[j]), int(starts[j]) + length, kj, nj, binomial_sf(kj, nj, threshold)))
    return out, tested


def _hourly_series(frame: pd.DataFrame) -> Iterator[tuple[str, np.ndarray, datetime]]:
    """Per constituency (in id order): its ``_k`` and ``_n`` summed per hour over every hour
    from its first to its last (rows 0 and 1; hours without a row are 0), and its first hour."""
    if frame.empty:
        return
    hours = pd.to_datetime(frame["hour"])
    if hours.dt.tz is not None:
        hours = hours.dt.tz_convert("UTC").dt.tz_localize(None)
    work = pd.DataFrame(
        {
            "cid": frame["constituency_id"].to_numpy(),
            "at": hours.to_numpy(dtype="datetime64[ns]").astype("int64"),
            "k": frame["_k"].to_numpy(),
            "n": frame["_n"].to_numpy(),
        }
    ).sort_values(["cid", "at"], kind="stable")
    cids = work["cid"].to_numpy()
    at = work["at"].to_numpy()
    values = work[["k", "n"]].to_numpy(dtype="int64").T
    bounds = np.flatnonzero(np.r_[True, cids[1:] != cids[:-1], True])
    step = pd.Timedelta(hours=1).value
    for a, b in itertools.pairwise(bounds):
        first, last = at[a], at[b - 1]  # sorted: the first and last hour of the constituency
        offset = at[a:b] - first
        on_axis = offset % step == 0  # an hour off the hourly grid from the first is not on the axis
        slots = offset[on_axis] // step
        length = (last - first) // step + 1
        series = np.zeros((2, length), dtype="int64")
        for row in (0, 1):
            np.add.at(series[row], slots, values[row, a:b][on_axis])
        yield str(cids[a]), series, to_naive_instant(pd.Timestamp(first))


def _hourly_rate_rule(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    windows: dict[str, VotingWindow] | None,
    rate: HourlyRate,
    threshold: float,
    alpha: float,
) -> list[Finding]:
    findings: list[Finding] = []
    if hourly.empty:
        return findings
    windows = windows or {}
    names = constituency_names(constituencies)
    frame = hourly.assign(
        constituency_id=hourly["constituency_id"].astype(str),
        _k=hourly[rate.count].astype("int64"),
        _n=hourly[list(rate.base)].sum(axis=1).astype("int64"),
    )
    overall = float(frame["_k"].sum()) / float(frame["_n"].sum()) if frame["_n"].sum() else 0.0
    # only constituencies with at least one hour above the threshold can have a run above it
    above = frame.loc[(frame["_n"] > 0) & (frame["_k"] > frame["_n"] * threshold), "constituency_id"].unique()
    for cid, own, first in _hourly_series(frame[frame["constituency_id"].isin(above)]):
        runs, tested = _runs_of_hours(own[0], own[1], threshold)
        chosen: list[tuple[int, int, int, int, float]] = []
        for run in sorted(runs, key=lambda r: (r[4], r[0], r[1] - r[0])):
            if run[4] * tested > alpha:
                break
            if any(run[0] < c[1] and c[0] < run[1] for c in chosen):
                continue
            chosen.append(run)
            if len(chosen) >= 5:
                break
        for i0, i1, k, n, p in sorted(chosen):
            hrs = [first + i * HOUR for i in range(i0, i1)]
            findings.append(
                _rate_finding(rate, cid, names, windows.get(cid), hrs, k, n, p, tested, overall, threshold, alpha)
            )
    return findings


def _rate_finding(
    rate: HourlyRate,
    cid: str,
    names: dict[str, str],
    window: VotingWindow | None,
    hrs: list[datetime],
    k: int,
    n: int,
    p: float,
    tested: int,
    overall: float,
    threshold: float,
    alpha: float,
) -> Finding:
    noun, base_noun = rate.noun, rate.base_noun
    share = k / n
    h = hrs[0]
    span = (
        f"the hour starting {describe_hour(h, window)}"
        if len(hrs) == 1
        else f"the {len(hrs)} hours from {describe_hour(h, window)}"
    )
    return Finding(
        rule=rate.rule,
        severity="warning",
        constituency_id=cid,
        title=f"{share:.0%} {noun} in {label(names, cid)} from {describe_hour(h, window)}"
        + ("" if len(hrs) == 1 else f" ({len(hrs)} h)"),
        description=(
            f"{k} of {n} {base_noun} in {span} were {noun} ({share:.1%}); the threshold is {threshold:.0%} and "
            f"across all hours the share is {overall:.2%}. A count this high from a constituency running at the "
            f"threshold has probability {p:.1e}; {tested} runs of hours were tested, so the alert needs "
            f"{tested} × that at most {alpha:g}. {rate.advice}"
        ),
        window_start=h,
        window_end=hrs[-1] + HOUR,
        statistic=round(share, 4),
        expected=round(overall, 4),
        threshold=threshold,
        strength=min(1.0, share / (10 * threshold)),
        hours=hrs,
        figures={
            noun.replace(" ", "_"): k,
            base_noun.replace(" ", "_"): n,
            "run_hours": len(hrs),
            "p_value": float(f"{p:.3g}"),
            "runs_tested": tested,
            "alpha": alpha,
            "share_all_hours": round(overall, 5),
        },
        evidence_kind=rate.evidence,
        window_key=f"{h:%Y-%m-%dT%H}",
    )


def high_rejection_rate(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    thresholds: DetectionThresholds,
    windows: dict[str, VotingWindow] | None = None,
) -> list[Finding]:
    """Warning: the share of transactions the contract rejected (``FAIL`` in ``diff``) in
    an hour is above ``rejection_rate`` (1%), significantly (see the module docstring)."""
    return _hourly_rate_rule(
        hourly, constituencies, windows, REJECTIONS, thresholds.rejection_rate, thresholds.rate_alpha
    )


def high_revote_rate(
    hourly: pd.DataFrame,
    constituencies: pd.DataFrame,
    thresholds: DetectionThresholds,
    windows: dict[str, VotingWindow] | None = None,
) -> list[Finding]:
    """Warning: the share of an hour's accepted votes that are revotes (a key voting again)
    is above ``revote_rate`` (10%), significantly (see the module docstring)."""
    return _hourly_rate_rule(hourly, constituencies, windows, REVOTES, thresholds.revote_rate, thresholds.rate_alpha)


def issued_not_voted_gap(
    constituencies: pd.DataFrame,
    totals: pd.DataFrame,
    closed: Collection[str],
    thresholds: DetectionThresholds,
) -> list[Finding]:
    """Warning, at close: the share of issued bulletins that were never used to vote,
    (bulletins − voters) / bulletins, is above ``issued_not_voted_gap`` (5%), significantly.

    Judged only once the constituency's voting is over (``closed``). No transaction ids are
    attached: blind signatures make a bulletin impossible to link to a vote, by design.
    """
    findings: list[Finding] = []
    if totals.empty:
        return findings
    names = constituency_names(constituencies)
    known = set(constituencies["id"].astype(str))
    t = totals[totals["constituency_id"].astype(str).isin(known)]
    gaps = [(b - v) / b for b, v in zip(t["bulletins_issued"], t["votes_cast"], strict=False) if b > 0]
    median_gap = float(np.median(gaps)) if gaps else 0.0
    for rec in t.itertuples(index=False):
        cid = str(rec.constituency_id)
        b, v = int(rec.bulletins_issued), int(rec.votes_cast)
        if cid not in closed or b <= 0 or v >= b:
            continue
        fires, p = rate_exceeds(b - v, b, thresholds.issued_not_voted_gap, thresholds.rate_alpha)
        if not fires:
            continue
        share = (b - v) / b
        findings.append(
            Finding(
                rule="issued_not_voted_gap",
                severity="warning",
                constituency_id=cid,
                title=f"{share:.0%} of issued bulletins unused in {label(names, cid)}",
                description=(
                    f"At the close, {b} bulletins were issued but only {v} distinct voters voted: {b - v} bulletins "
                    f"({share:.1%}) were never used (threshold {thresholds.issued_not_voted_gap:.0%}; median across "
                    f"constituencies {median_gap:.1%}; binomial p-value {p:.1e}). Unused bulletins can hide "
                    "bulletins issued for people who never asked for them."
                ),
                statistic=round(share, 4),
                expected=round(median_gap, 4),
                threshold=thresholds.issued_not_voted_gap,
                strength=min(1.0, share / (4 * thresholds.issued_not_voted_gap)),
                figures={
                    "bulletins_issued": b,
                    "voters": v,
                    "unused_bulletins": b - v,
                    "p_value": float(f"{p:.3g}"),
                    "alpha": thresholds.rate_alpha,
                    "evidence_note": "blind signatures make bulletins unlinkable to votes",
                },
            )
        )
    return findings


def low_participation(
    constituencies: pd.DataFrame,
    totals: pd.DataFrame,
    windows: dict[str, VotingWindow],
    closed: Collection[str],
    thresholds: DetectionThresholds,
    now: datetime | None = None,
) -> list[Finding]:
    """Warning: participation (distinct voters / registered voters) below
    ``low_participation`` (0.3).

    Judged only after the first voting day (local midnight after the window opens). Until
    the close the threshold is pro-rated by the share of the voting window that has
    passed (at the close, and after it, the full threshold applies); exactly at the
    threshold does not fire.
    """
    findings: list[Finding] = []
    voters = dict(zip(totals["constituency_id"].astype(str), totals["votes_cast"], strict=False)) if len(totals) else {}
    names = constituency_names(constituencies)
    eligible = [
        (str(rec.id), float(rec.registered))
        for rec in constituencies.itertuples(index=False)
        if rec.registered > 0 and str(rec.id) in windows
    ]
    rates = [voters.get(cid, 0) / reg for cid, reg in eligible]
    median_rate = float(np.median(rates)) if rates else 0.0
    for cid, reg in eligible:
        window = windows[cid]
        at = now or window.end
        if at < window.first_day_end:
            continue
        progress = 1.0 if cid in closed else window.elapsed_share(at)
        limit = thresholds.low_participation * progress
        rate = voters.get(cid, 0) / reg
        if rate >= limit:
            continue
        findings.append(
            Finding(
                rule="low_participation",
                severity="warning",
                constituency_id=cid,
                title=f"Low participation in {label(names, cid)}: {rate:.1%}",
                description=(
                    f"{int(voters.get(cid, 0))} of {int(reg)} registered voters have voted ({rate:.1%}), below "
                    f"{limit:.1%} (the {thresholds.low_participation:.0%} threshold"
                    + ("" if progress >= 1 else f" × {progress:.0%} of the voting window passed")
                    + "). "
                    f"The median across the election is {median_rate:.1%}. Check for voters turned away, a wrong "
                    "register or missing exports."
                ),
                statistic=round(rate, 4),
                expected=round(median_rate, 4),
                threshold=round(limit, 4),
                strength=min(1.0, (limit - rate) / limit) if limit > 0 else 0.0,
                figures={
                    "voters": int(voters.get(cid, 0)),
                    "registered_voters": int(reg),
                    "full_threshold": thresholds.low_participation,
                    "window_elapsed_share": round(progress, 4),
                },
                higher_is_worse=False,
            )
        )
    return findings
