"""Varied synthetic elections for the detection benchmark, built directly as the frames the
rules read (``election_pipeline.detection.rules``), with labelled anomalies.

Unlike the sample election (``election_pipeline.sample``, used by ``make run``), these
elections are meant to be hard: 3-40 constituencies in regions of 3-6, many time zones
(including half- and quarter-hour offsets), honest turnout 32-80 %, urban and rural daily
shapes in local time within the same region, 1-3 day windows with their nights, several
bulletins per issuing transaction (a ``blindSigIssue`` issues 1-3 bulletins, and the voters
of one issuing transaction vote in the same hour, so honest hourly counts are
overdispersed: variance about 1.5-2x the mean), and a day-to-day and hour-to-hour
variation of each constituency's level.

Counting follows docs/input-format.md: ``bulletins_issued`` counts the items of the
issuing transactions (bulletins, not lines); ``transaction_count`` counts the lines
(issuing transactions + votes + revotes + rejected lines); a rejected (``FAIL``) line is
counted only in ``rejected_count`` and ``transaction_count``.

Anomalies (``Planted.kind``) and the rule expected to find each (``Planted.rules``):

* ``spike`` (unusual_spike): one daytime hour at 3x-10x its expected votes;
* ``spike_low_turnout`` (unusual_spike): a 6.7x hour in a constituency at 34 % turnout;
* ``stuffing_run`` (unusual_spike): +3 / +6 / +12 votes an hour over 6 daytime hours;
* ``night_run`` (night_activity): 3 consecutive night hours (01:00-04:00 local) of 5-8,
  15-25 or 40-60 votes each (an honest night hour has about 0.2);
* ``rejection_run`` (high_rejection_rate): 25-30 % of the votes rejected for 8 hours, in a
  small constituency (300-600 registered voters);
* ``rejection_hour`` (high_rejection_rate): one hour with 40 % of its transactions rejected;
* ``revote_burst`` (high_revote_rate): two hours where 40 % of the accepted votes are revotes;
* ``offline`` (constituency_offline): 3 or 5 daytime hours without a transaction;
* ``votes_exceed_bulletins`` (votes_exceed_bulletins): votes cast without bulletins;
* ``unused_bulletins`` (issued_not_voted_gap): 15 % more bulletins issued than used;
* ``over_registered`` (bulletins_exceed_registered): more voters than registered voters.

**How findable each anomaly is at all** (``Planted.oracle_p``): the generator knows what no
detector knows, each hour's true expected votes (before the hour-to-hour variation) and the
true group sizes. The *oracle* tail probability is the chance that the planted hours of an
honest constituency hold as many votes (or rejections, revotes; for a silence: no
transaction at all) as they hold after planting, under that true model: for votes, a count
with variance φ·Λ + Σλ²/100 (φ the true batch dispersion, Λ = Σλ, the hour-to-hour
Gamma(100) variation); for rejections and revotes, the binomial of their honest rate; for a
silence, no issuing transaction in Poisson(Λ / mean group size). It is the test of a detector
told the true expectation and which hours to look at. A detector that must look at every run
of hours tests about ``Planted.runs`` of them; ``oracle_p × runs`` is what even the
true-model scan would see. The invariant anomalies (arithmetic on totals) have no oracle
(``None``): they are certain.

**What the oracle's advantage is** (``Planted.blind_p``, vote-count anomalies only): the same
tail probability for an oracle told less. It knows the true daily shape of each kind of
station, which kind each one is and its level (its day levels and total). It is not told
the station's own hourly habits (its profile, ±8 % an hour), whose variation it adds to the
hour-to-hour one. If this oracle finds what the first finds, the rule's misses do not come
from those habits, which no detector can know in a short election. They come from having to
estimate the shapes and levels themselves.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from election_pipeline.detection.context import VotingWindow
from election_pipeline.detection.stats import binomial_sf, scaled_count_sf

H = timedelta(hours=1)
#: Each station's own hourly habits: a lognormal factor of this σ per local hour.
HABITS_SD = 0.08
#: The hour-to-hour variation: a Gamma factor of this shape (mean 1, variance 1/shape).
HOUR_SHAPE = 100.0

TIMEZONES = (
    "Europe/Moscow",
    "Asia/Kolkata",
    "America/New_York",
    "Asia/Vladivostok",
    "Europe/Lisbon",
    "Asia/Kathmandu",
    "Australia/Adelaide",
    "America/Los_Angeles",
    "Pacific/Auckland",
    "Africa/Nairobi",
    "America/Sao_Paulo",
    "Asia/Tokyo",
)

#: Relative votes by local hour (0-23). Nights carry a trace (about 0.2 votes an hour in a
#: constituency of average size), the opening hour of a rural station is a rush.
URBAN = np.array(
    [0.012, 0.01, 0.01, 0.01, 0.01, 0.012, 0.1, 0.4, 1.0, 1.3, 1.2, 1.0]
    + [0.9, 0.9, 0.9, 1.0, 1.1, 1.4, 1.6, 1.4, 0.8, 0.4, 0.2, 0.08]
)
RURAL = np.array(
    [0.01, 0.01, 0.01, 0.01, 0.01, 0.01, 0.05, 0.3, 1.8, 1.8, 1.6, 1.3]
    + [1.0, 0.8, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.2, 0.1, 0.05, 0.03]
)

KINDS = (
    "spike",
    "spike_low_turnout",
    "stuffing_run",
    "night_run",
    "rejection_run",
    "rejection_hour",
    "revote_burst",
    "offline",
    "votes_exceed_bulletins",
    "unused_bulletins",
    "over_registered",
)
RULE_OF = {
    "spike": "unusual_spike",
    "spike_low_turnout": "unusual_spike",
    "stuffing_run": "unusual_spike",
    "night_run": "night_activity",
    "rejection_run": "high_rejection_rate",
    "rejection_hour": "high_rejection_rate",
    "revote_burst": "high_revote_rate",
    "offline": "constituency_offline",
    "votes_exceed_bulletins": "votes_exceed_bulletins",
    "unused_bulletins": "issued_not_voted_gap",
    "over_registered": "bulletins_exceed_registered",
}


@dataclass
class Planted:
    kind: str
    size: str
    constituency_id: str
    start: datetime | None
    end: datetime | None
    oracle_p: float | None = None  # the true-model tail probability of the planted hours (module docstring)
    runs: int = 0  # the runs of 1-12 hours a scanning detector tests in this constituency
    blind_p: float | None = None  # the same, not told the station's own habits (vote counts only)

    @property
    def rules(self) -> tuple[str, ...]:
        return (RULE_OF[self.kind],)


@dataclass
class VariedElection:
    name: str
    timezone: str
    hourly: pd.DataFrame
    constituencies: pd.DataFrame
    totals: pd.DataFrame
    elections: pd.DataFrame
    now: datetime
    planted: list[Planted] = field(default_factory=list)
    clean_ids: list[str] = field(default_factory=list)
    dispersion: float = 1.0  # variance / mean of the honest daytime hourly votes (as generated)


@dataclass
class _Unit:
    cid: str
    region: str
    registered: int
    turnout: float
    shape: np.ndarray
    votes: np.ndarray
    bulletins: np.ndarray
    issuing: np.ndarray
    revotes: np.ndarray
    rejected: np.ndarray
    lam: np.ndarray
    habits: np.ndarray  # each hour's factor of the station's own profile (in lam)


def _clustered(rng: np.random.Generator, lam: np.ndarray, batch_p: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Votes per hour when voters come in groups of 1-3 (one issuing transaction each):
    returns (votes, issuing transactions)."""
    mean_batch = float(np.dot(batch_p, [1, 2, 3]))
    tx = rng.poisson(lam / mean_batch)
    votes = np.array([int(rng.choice([1, 2, 3], size=t, p=batch_p).sum()) if t else 0 for t in tx])
    return votes, tx


def _local_hours(window: VotingWindow, hours: list[datetime]) -> np.ndarray:
    return np.array([window.local(h).hour for h in hours])


def generate_election(
    name: str, seed: int, n_constituencies: int, timezone: str, days: int, *, anomalies: bool = True
) -> VariedElection:
    """One election; ``anomalies=False`` plants none (every constituency honest)."""
    rng = np.random.default_rng(seed)
    eid = f"E-{name}"
    # window: 08:00 local on the first day to 20:00 local on the last
    probe = VotingWindow(eid, datetime(2024, 9, 6), datetime(2024, 9, 9), timezone)
    start = probe.utc(datetime(2024, 9, 6, 8))
    end = probe.utc(datetime(2024, 9, 6 + days - 1, 20))
    window = VotingWindow(eid, start, end, timezone)
    first = start.replace(minute=0)
    hours = []
    h = first
    while h < end:
        hours.append(h)
        h += H
    local = _local_hours(window, hours)
    day_of = np.array([(window.local(h).date() - window.local(start).date()).days for h in hours])
    batch_p = np.array(rng.choice([[0.8, 0.15, 0.05], [0.7, 0.2, 0.1], [0.6, 0.3, 0.1]]))

    # regions of 3-6 constituencies
    regions: list[str] = []
    r = 0
    while len(regions) < n_constituencies:
        regions += [f"R{r}"] * int(rng.integers(3, 7))
        r += 1
    regions = regions[:n_constituencies]

    # which constituencies get which anomaly (distinct constituencies; at most a third)
    n_anomalies = max(1, min(len(KINDS), n_constituencies // 3))
    kinds = list(rng.permutation(KINDS)[:n_anomalies])
    targets = rng.permutation(n_constituencies)[:n_anomalies]
    kind_of = {int(t): str(k) for t, k in zip(targets, kinds, strict=True)}
    if not anomalies:
        kind_of = {}

    units: list[_Unit] = []
    planted: list[Planted] = []
    for i in range(n_constituencies):
        cid = f"{name}-C{i:02d}"
        kind = kind_of.get(i)
        registered = int(rng.integers(300, 4000))
        turnout = float(rng.uniform(0.32, 0.80))
        if kind == "rejection_run":
            registered = int(rng.integers(300, 600))
        if kind == "spike_low_turnout":
            turnout = 0.34
        shape = URBAN if rng.random() < 0.5 else RURAL
        habits = rng.lognormal(0.0, HABITS_SD, size=24)  # each station its own profile
        shape = shape * habits
        level = shape[local] * rng.lognormal(0.0, 0.1, size=days)[day_of]
        lam = registered * turnout * level / level.sum()
        lam_noisy = lam * rng.gamma(HOUR_SHAPE, 1 / HOUR_SHAPE, size=len(hours))  # hour-to-hour
        votes, issuing = _clustered(rng, lam_noisy, batch_p)
        unused = rng.binomial(issuing, 0.01)
        bulletins = votes + unused
        revotes = rng.binomial(votes, 0.02)
        rejected = rng.binomial(votes + issuing, 0.003)
        u = _Unit(
            cid,
            regions[i],
            registered,
            turnout,
            shape,
            votes,
            bulletins,
            issuing,
            revotes,
            rejected,
            lam,
            habits[local],
        )
        if kind is not None:
            planted.append(_plant(rng, kind, u, lam, hours, local, batch_p))
        units.append(u)

    rows = []
    for u in units:
        tx = u.issuing + u.votes + u.revotes + u.rejected
        for j, h in enumerate(hours):
            if tx[j] > 0:
                rows.append((u.cid, pd.Timestamp(h), u.bulletins[j], u.votes[j], u.revotes[j], u.rejected[j], tx[j]))
    hourly = pd.DataFrame(
        rows,
        columns=[
            "constituency_id",
            "hour",
            "bulletins_issued",
            "votes_cast",
            "revote_count",
            "rejected_count",
            "transaction_count",
        ],
    )
    hourly = hourly.sort_values(["constituency_id", "hour"]).reset_index(drop=True)
    hourly["cumulative_bulletins"] = hourly.groupby("constituency_id")["bulletins_issued"].cumsum()
    hourly["cumulative_votes"] = hourly.groupby("constituency_id")["votes_cast"].cumsum()
    constituencies = pd.DataFrame(
        [
            {
                "id": u.cid,
                "election_id": eid,
                "region": u.region,
                "registered": u.registered,
                "in_reference": True,
                "name": u.cid,
            }
            for u in units
        ]
    )
    totals = pd.DataFrame(
        [
            {
                "constituency_id": u.cid,
                "bulletins_issued": int(u.bulletins.sum()),
                "votes_cast": int(u.votes.sum()),
                "transaction_count": int((u.issuing + u.votes + u.revotes + u.rejected).sum()),
                "voting_finished": end,
            }
            for u in units
        ]
    )
    elections = pd.DataFrame([{"id": eid, "start_date": start, "end_date": end, "timezone": timezone}])
    anomalous = {p.constituency_id for p in planted}
    day = np.isin(local, range(9, 19))
    # variance / mean around the hour's expected votes (before the day and hour variation)
    honest = [u for u in units if u.cid not in anomalous]
    ratios = [
        float(((u.votes[day] - u.lam[day]) ** 2).sum() / u.lam[day].sum()) for u in honest if u.lam[day].mean() > 5
    ]
    return VariedElection(
        name,
        timezone,
        hourly,
        constituencies,
        totals,
        elections,
        end + H,
        planted,
        [u.cid for u in units if u.cid not in anomalous],
        float(np.median(ratios)) if ratios else float("nan"),
    )


def _daytime(local: np.ndarray, lo: int = 10, hi: int = 18) -> np.ndarray:
    return np.flatnonzero((local >= lo) & (local < hi))


def _plant(
    rng: np.random.Generator,
    kind: str,
    u: _Unit,
    lam: np.ndarray,
    hours: list[datetime],
    local: np.ndarray,
    batch_p: np.ndarray,
) -> Planted:
    """Change ``u`` in place; the label of what was done."""
    day = _daytime(local)

    n_hours = len(hours)
    runs = sum(n_hours - length + 1 for length in range(1, min(12, n_hours) + 1))
    phi = float(np.dot(batch_p, [1, 4, 9]) / np.dot(batch_p, [1, 2, 3]))  # E[B²]/E[B]
    before = {"votes": u.votes.copy(), "issuing": u.issuing.copy()}

    def label(size: str, j0: int | None, j1: int | None, oracle: Callable[[int, int], float] | None = None) -> Planted:
        p = blind = None
        if oracle is not None and j0 is not None and j1 is not None:
            p = oracle(j0, j1)
            if oracle is votes_oracle:
                blind = votes_blind(j0, j1)
        return Planted(
            kind,
            size,
            u.cid,
            hours[j0] if j0 is not None else None,
            hours[j1 - 1] + H if j1 is not None else None,
            p,
            runs,
            blind,
        )

    def votes_tail(expected: np.ndarray, relative_var: float, j0: int, j1: int) -> float:
        # the planted hours' votes against ``expected``, each hour's expectation itself
        # uncertain by ``relative_var`` (relative variance, independent from hour to hour)
        mean = float(expected[j0:j1].sum())
        squares = float((expected[j0:j1] ** 2).sum())
        return scaled_count_sf(float(u.votes[j0:j1].sum()), mean, phi, relative_var * squares / mean**2)

    def votes_oracle(j0: int, j1: int) -> float:
        return votes_tail(lam, 1 / HOUR_SHAPE, j0, j1)

    def votes_blind(j0: int, j1: int) -> float:
        # the expected votes without the station's own habits (the same total), whose
        # variation joins the hour-to-hour one: Var(λ·H) ≈ λ²(e^σ² − 1) for H lognormal(0, σ)
        plain = lam / u.habits
        plain = plain * lam.sum() / plain.sum()
        return votes_tail(plain, 1 / HOUR_SHAPE + math.expm1(HABITS_SD**2), j0, j1)

    def rejected_oracle(j0: int, j1: int) -> float:
        lines = int((before["votes"][j0:j1] + before["issuing"][j0:j1]).sum())
        return binomial_sf(int(u.rejected[j0:j1].sum()), lines, 0.003)

    def revotes_oracle(j0: int, j1: int) -> float:
        return binomial_sf(int(u.revotes[j0:j1].sum()), int(u.votes[j0:j1].sum()), 0.02)

    def silence_oracle(j0: int, j1: int) -> float:
        return float(np.exp(-lam[j0:j1].sum() / np.dot(batch_p, [1, 2, 3])))

    if kind in ("spike", "spike_low_turnout"):
        k = 6.7 if kind == "spike_low_turnout" else float(rng.choice([3.0, 4.5, 6.7, 10.0]))
        j = int(rng.choice(day))
        extra = round(float((k - 1) * lam[j]))
        u.votes[j] += extra
        u.bulletins[j] += extra
        u.issuing[j] += extra
        return label(f"x{k:g}", j, j + 1, votes_oracle)
    if kind == "stuffing_run":
        a = int(rng.choice([3, 6, 12]))
        j0 = int(rng.choice(day[:-6])) if len(day) > 6 else int(day[0])
        for j in range(j0, j0 + 6):
            u.votes[j] += a
            u.bulletins[j] += a
            u.issuing[j] += a
        return label(f"+{a}/h x6h", j0, j0 + 6, votes_oracle)
    if kind == "night_run":
        size = str(rng.choice(["5-8", "15-25", "40-60"]))
        lo, hi = (int(x) for x in size.split("-"))
        nights = np.flatnonzero(local == 1)
        nights = nights[nights + 3 <= len(hours)]
        if not len(nights):
            # a one-day window has no night: a spike instead
            return _plant(rng, "spike", u, lam, hours, local, batch_p)
        j0 = int(rng.choice(nights))
        for j in range(j0, j0 + 3):
            v = int(rng.integers(lo, hi + 1))
            u.votes[j] += v
            u.bulletins[j] += v
            u.issuing[j] += v
        return label(f"{size}/h x3h", j0, j0 + 3, votes_oracle)
    if kind == "rejection_run":
        rate = float(rng.uniform(0.25, 0.30))
        j0 = int(rng.choice(day[: max(1, len(day) - 8)]))
        for j in range(j0, j0 + 8):
            # rejected vote attempts: the voter's vote line FAILs (counted only as rejected)
            u.rejected[j] += int(rng.binomial(max(u.votes[j], 1), rate / (1 - rate)))
        return label(f"{rate:.0%} x8h", j0, j0 + 8, rejected_oracle)
    if kind == "rejection_hour":
        j = int(rng.choice(day))
        tx = u.issuing[j] + u.votes[j] + u.revotes[j]
        u.rejected[j] += round(float(tx * 0.4 / 0.6))
        return label("40% x1h", j, j + 1, rejected_oracle)
    if kind == "revote_burst":
        j0 = int(rng.choice(day[:-2]))
        for j in (j0, j0 + 1):
            u.revotes[j] = round(float(u.votes[j] * 0.4 / 0.6))
        return label("40% x2h", j0, j0 + 2, revotes_oracle)
    if kind == "offline":
        n = int(rng.choice([3, 5]))
        j0 = int(rng.choice(day[: max(1, len(day) - n)]))
        for arr in (u.votes, u.bulletins, u.issuing, u.revotes, u.rejected):
            arr[j0 : j0 + n] = 0
        return label(f"{n}h", j0, j0 + n, silence_oracle)
    if kind == "votes_exceed_bulletins":
        j = int(rng.choice(day))
        gap = int((u.bulletins[: j + 1] - u.votes[: j + 1]).sum())
        u.votes[j] += gap + 10
        return label("+10 unbacked", j, len(hours))
    if kind == "unused_bulletins":
        u.bulletins += rng.binomial(u.issuing, 0.15)
        return label("15% unused", None, None)
    if kind == "over_registered":
        u.registered = int(u.votes.sum() * 0.95)
        return label("voters 105% of register", None, None)
    raise ValueError(kind)


@dataclass(frozen=True)
class Spec:
    name: str
    seed: int
    constituencies: int
    timezone: str
    days: int


def default_specs(count: int = 24, first_seed: int = 1000) -> list[Spec]:
    """``count`` elections of 3-40 constituencies, cycling through the time zones, with the
    seeds from ``first_seed`` on (the benchmark's are 1000 and up; the calibration's, 5000
    and up)."""
    rng = np.random.default_rng(2026)
    sizes = [3, 4, 5, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30, 32, 34, 36, 38, 40, 12, 25, 40]
    out = []
    for n in range(count):
        size = sizes[n % len(sizes)]
        out.append(
            Spec(f"v{n:02d}", first_seed + n, size, TIMEZONES[n % len(TIMEZONES)], int(rng.choice([1, 2, 2, 3])))
        )
    return out
