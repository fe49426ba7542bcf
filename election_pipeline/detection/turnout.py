"""``integer_percentage`` (info): a final turnout that is a whole-number percentage.

After Kobak, Shpilkin and Pshenichnikov, "Integer percentages as electoral falsification
fingerprints", Annals of Applied Statistics 10(1), 2016: when results are written rather
than counted, round percentages (80.00%, 85.00%) appear far more often than chance allows.
One unit at an integer percentage is weak evidence, hence ``info``; the alert also reports,
for the whole election, how many units are integer and how many chance predicts (with a
Poisson p-value), which is the paper's actual test.
"""

from __future__ import annotations

from collections.abc import Collection
from functools import lru_cache

import numpy as np
import pandas as pd

from .context import constituency_names, label
from .findings import Finding
from .stats import poisson_sf
from .thresholds import DetectionThresholds

#: A turnout counts as integer when it is within this many percentage points of a whole
#: number, i.e. it reads as a whole number when shown with two decimals (80.00%).
TOLERANCE_PP = 0.005


def is_integer_percentage(voters: int, registered: int) -> bool:
    """Is 100·voters/registered within :data:`TOLERANCE_PP` of a whole number (exact
    integer arithmetic; exactly at the tolerance is not integer)?"""
    if registered <= 0:
        return False
    k = round(100 * voters / registered)
    # |100 v / N − k| < 0.005  <=>  200 · |100 v − k N| < N
    return 200 * abs(100 * voters - k * registered) < registered


@lru_cache(maxsize=4096)
def integer_chance(registered: int) -> float:
    """The share of possible voter counts 1..N whose turnout is an integer percentage: the
    chance that an honest unit of this size lands on one by accident."""
    if registered <= 0:
        return 0.0
    v = np.arange(1, registered + 1, dtype=np.int64)
    k = np.rint(100 * v / registered).astype(np.int64)
    hits = 200 * np.abs(100 * v - k * registered) < registered
    return float(hits.mean())


def integer_percentage(
    constituencies: pd.DataFrame,
    totals: pd.DataFrame,
    closed: Collection[str],
    thresholds: DetectionThresholds,
) -> list[Finding]:
    """Info, at close: the turnout (distinct voters / registered voters) is a whole-number
    percentage. Units with fewer than ``integer_min_voters`` registered voters (100) are
    skipped, as in the paper: for them most counts give a round percentage."""
    findings: list[Finding] = []
    if totals.empty:
        return findings
    names = constituency_names(constituencies)
    voters = dict(zip(totals["constituency_id"].astype(str), totals["votes_cast"], strict=False))
    units = []
    for rec in constituencies.itertuples(index=False):
        cid, reg = str(rec.id), int(rec.registered)
        if cid not in closed or reg < thresholds.integer_min_voters or not voters.get(cid):
            continue
        units.append((cid, rec.election_id, reg, int(voters[cid])))
    per_election: dict[object, tuple[int, float, int]] = {}
    for _cid, eid, reg, v in units:
        hits, expected, n = per_election.get(eid, (0, 0.0, 0))
        per_election[eid] = (hits + is_integer_percentage(v, reg), expected + integer_chance(reg), n + 1)
    for cid, eid, reg, v in units:
        if not is_integer_percentage(v, reg):
            continue
        pct = 100 * v / reg
        chance = integer_chance(reg)
        hits, expected, n = per_election[eid]
        p_election = poisson_sf(hits, expected)
        findings.append(
            Finding(
                rule="integer_percentage",
                severity="info",
                constituency_id=cid,
                title=f"Turnout of {label(names, cid)} is a whole percentage: {pct:.2f}%",
                description=(
                    f"{v} voters of {reg} registered: exactly {pct:.2f}%. An honest unit of this size lands on a "
                    f"whole percentage with probability {chance:.1%}. Across the election {hits} of {n} units do, "
                    f"where chance predicts {expected:.1f} (Poisson p-value {p_election:.2g}). Round turnouts are a "
                    "known fingerprint of results written rather than counted (Kobak, Shpilkin and "
                    "Pshenichnikov, 2016)."
                ),
                statistic=round(pct, 4),
                expected=round(chance, 5),
                threshold=TOLERANCE_PP,
                strength=1.0 - chance,
                figures={
                    "voters": v,
                    "registered_voters": reg,
                    "turnout_percent": round(pct, 4),
                    "chance_by_accident": round(chance, 5),
                    "election_integer_units": hits,
                    "election_units_checked": n,
                    "election_expected_integer_units": round(expected, 3),
                    "election_p_value": float(f"{p_election:.3g}"),
                    "min_registered_voters": thresholds.integer_min_voters,
                },
            )
        )
    return findings
