"""Small, exact statistics the rules share: robust z-score, binomial and Poisson tails.

No SciPy: the tails are summed term by term in log space, which is exact enough for the
counts an election produces and fast because the rules only ask for upper tails above the
mean (where terms shrink geometrically).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

#: For normal data the MAD is 0.6745 standard deviations: 0.6745·(x − median)/MAD is a
#: z-score that a few outliers cannot inflate.
MAD_SCALE = 0.6745
#: Mean absolute deviation × 1.2533 estimates σ for normal data; used when the MAD is 0.
MEANAD_SCALE = 1.253314


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
