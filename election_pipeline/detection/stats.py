"""Small, exact statistics the rules share: robust z-score, binomial, Poisson and
negative-binomial tails.

No SciPy: the tails are summed term by term in log space, which is exact enough for the
counts an election produces and fast because the rules only ask for upper tails above the
mean (where terms shrink geometrically).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from statistics import NormalDist

import numpy as np

#: For normal data the MAD is 0.6745 standard deviations: 0.6745·(x − median)/MAD is a
#: z-score that a few outliers cannot inflate.
MAD_SCALE = 0.6745
#: Mean absolute deviation × 1.2533 estimates σ for normal data; used when the MAD is 0.
MEANAD_SCALE = 1.253314
#: The standard normal distribution (for turning a tail probability into a z-score).
NORMAL = NormalDist()


def robust_z(values: Sequence[float] | np.ndarray, x: float, floor: float = 0.0) -> tuple[float, float, float]:
    """Robust z-score of ``x`` against ``values``: 0.6745·(x − median)/MAD.

    ``floor`` is the least MAD the score is computed against (the noise an honest unit
    shows even when its peers happen to agree). When the MAD is 0 and there is no floor,
    the mean absolute deviation (×1.2533, as a σ) stands in; when that is 0 too the score
    is 0. Returns (z, median, the MAD used).
    """
    arr = np.asarray(values, dtype=float)
    if arr.size == 0:
        return 0.0, 0.0, 0.0
    median = float(np.median(arr))
    mad = float(np.median(np.abs(arr - median)))
    mad_used = max(mad, floor)
    if mad_used > 0:
        return MAD_SCALE * (x - median) / mad_used, median, mad_used
    mean_ad = float(np.mean(np.abs(arr - median)))
    if mean_ad > 0:
        return (x - median) / (MEANAD_SCALE * mean_ad), median, MAD_SCALE * MEANAD_SCALE * mean_ad
    return 0.0, median, 0.0


def binomial_sf(k: int, n: int, p: float) -> float:
    """P(X ≥ k) for X ~ Binomial(n, p)."""
    if k <= 0:
        return 1.0
    if k > n:
        return 0.0
    if p <= 0.0:
        return 0.0
    if p >= 1.0:
        return 1.0
    log_term = (
        math.lgamma(n + 1) - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * math.log(p) + (n - k) * math.log1p(-p)
    )
    term = math.exp(log_term)
    total = term
    ratio_p = p / (1.0 - p)
    j = k
    while j < n:
        term *= (n - j) / (j + 1) * ratio_p
        j += 1
        total += term
        if j > n * p and term < total * 1e-17:
            break
    return min(1.0, total)


def poisson_sf(k: int, mu: float) -> float:
    """P(X ≥ k) for X ~ Poisson(mu)."""
    if k <= 0:
        return 1.0
    if mu <= 0:
        return 0.0
    log_term = -mu + k * math.log(mu) - math.lgamma(k + 1)
    term = math.exp(log_term)
    total = term
    j = k
    while True:
        j += 1
        term *= mu / j
        total += term
        if j > mu and term < total * 1e-17:
            break
    return min(1.0, total)


def rate_exceeds(k: int, n: int, threshold: float, alpha: float) -> tuple[bool, float]:
    """Is ``k`` out of ``n`` above ``threshold``, and significantly so?

    True when k/n > threshold **and** the one-sided binomial p-value P(X ≥ k | n,
    threshold) is at most ``alpha``: an honest unit running exactly at the threshold rate
    would produce a count this high less than once in 1/alpha tries. Returns (fires, p).
    """
    if n <= 0 or k <= 0 or k / n <= threshold:
        return False, 1.0
    p = binomial_sf(k, n, threshold)
    return p <= alpha, p


def negative_binomial_sf(k: int, mean: float, size: float) -> float:
    """P(X ≥ k) for X negative binomial with this ``mean`` and ``size`` (variance
    mean + mean²/size; a Poisson count whose mean is itself Gamma-distributed with
    coefficient of variation 1/√size). ``size`` = inf is the Poisson tail."""
    if k <= 0:
        return 1.0
    if mean <= 0:
        return 0.0
    if not math.isfinite(size):
        return poisson_sf(k, mean)
    q = size / (size + mean)  # P(X = j) = Γ(j + r) / (Γ(r) j!) q^r (1 − q)^j
    log_q, log_1q = math.log(q), math.log1p(-q)

    def log_pmf(j: int) -> float:
        return math.lgamma(j + size) - math.lgamma(size) - math.lgamma(j + 1) + size * log_q + j * log_1q

    if k <= mean:  # the lower side is the shorter sum
        below = sum(math.exp(log_pmf(j)) for j in range(k))
        return max(0.0, 1.0 - below)
    term = math.exp(log_pmf(k))
    total = term
    j = k
    while term > total * 1e-17:
        term *= (j + size) / (j + 1) * (1 - q)
        j += 1
        total += term
        if j - k > 100_000:
            break
    return min(1.0, total)


def scaled_count_sf(x: float, mean: float, dispersion: float, relative_var: float) -> float:
    """P(X ≥ x) for an overdispersed count: X/``dispersion`` negative binomial with mean
    ``mean``/``dispersion`` and squared coefficient of variation of its mean
    ``relative_var``, so that Var X = dispersion·mean + relative_var·mean² (a quasi-Poisson
    scale, for voters coming in groups, and a Gamma-distributed mean, for the uncertainty
    of the expected value). X/dispersion is rarely a whole number: the tail is interpolated
    geometrically between the two whole numbers around it."""
    d = max(dispersion, 1e-9)
    k = x / d
    m = mean / d
    size = 1.0 / relative_var if relative_var > 0 else math.inf
    lo = math.floor(k)
    p_lo = negative_binomial_sf(lo, m, size)
    f = k - lo
    if f == 0:
        return p_lo
    p_hi = negative_binomial_sf(lo + 1, m, size)
    if p_lo <= 0 or p_hi <= 0:
        return p_hi
    return math.exp((1 - f) * math.log(p_lo) + f * math.log(p_hi))


def tail_to_z(p: float) -> float:
    """The standard normal z with upper tail ``p`` (0 for p ≥ 0.5; capped at 37.5, where
    doubles run out)."""
    if p >= 0.5:
        return 0.0
    if p <= 1e-300:
        return 37.5
    return -NORMAL.inv_cdf(p)
