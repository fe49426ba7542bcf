"""The share rules (rejections, revotes, unused bulletins, participation) and
integer_percentage on hand-built frames, at their edges."""

import math
from datetime import datetime, timedelta

import pytest

from election_pipeline.detection.context import constituency_windows
from election_pipeline.detection.rates import (
    high_rejection_rate,
    high_revote_rate,
    issued_not_voted_gap,
    low_participation,
)
from election_pipeline.detection.stats import (
    binomial_sf,
    negative_binomial_sf,
    poisson_sf,
    rate_exceeds,
    scaled_count_sf,
    tail_to_z,
)
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.detection.turnout import integer_chance, integer_percentage, is_integer_percentage

from .frames import END, START, constituencies, elections, hourly, totals

T = DetectionThresholds()

HOUR = datetime(2024, 9, 7, 12)


# --------------------------------------------------------------------------------------
# statistics
# --------------------------------------------------------------------------------------


def test_binomial_and_poisson_tails_by_hand():
    assert binomial_sf(2, 3, 0.5) == pytest.approx(0.5)  # (3 + 1) / 8
    assert binomial_sf(1, 2, 0.1) == pytest.approx(0.19)  # 1 − 0.9²
    assert binomial_sf(0, 5, 0.3) == 1.0 and binomial_sf(6, 5, 0.3) == 0.0
    assert poisson_sf(1, 2.0) == pytest.approx(1 - 2.718281828459045**-2)
    assert poisson_sf(3, 1.0) == pytest.approx(1 - 2.5 * 2.718281828459045**-1)


def test_negative_binomial_and_scaled_tails_by_hand():
    # size 1, mean 1: geometric, P(X = j) = 0.5^(j+1), so P(X ≥ k) = 0.5^k
    assert negative_binomial_sf(1, 1.0, 1.0) == pytest.approx(0.5)
    assert negative_binomial_sf(3, 1.0, 1.0) == pytest.approx(0.125)
    # size 2, mean 2: q = 2/(2+2) = 0.5; P(0) = 0.5² = 0.25, P(1) = 2 × 0.25 × 0.5 = 0.25
    assert negative_binomial_sf(2, 2.0, 2.0) == pytest.approx(0.5)
    # an infinite size is the Poisson tail
    assert negative_binomial_sf(3, 1.0, math.inf) == poisson_sf(3, 1.0)
    # x = 3 with dispersion 2: x/2 = 1.5 of a Poisson with mean 2/2 = 1, between
    # P(X ≥ 1) = 1 − e⁻¹ and P(X ≥ 2) = 1 − 2e⁻¹, geometrically halfway
    halfway = math.sqrt((1 - math.exp(-1)) * (1 - 2 * math.exp(-1)))
    assert scaled_count_sf(3, 2.0, 2.0, 0.0) == pytest.approx(halfway)
    assert scaled_count_sf(4, 2.0, 2.0, 0.0) == pytest.approx(1 - 2 * math.exp(-1))
    # the normal z of a tail: 2.5% is 1.96; half or more is 0
    assert tail_to_z(0.025) == pytest.approx(1.959964, abs=1e-6) and tail_to_z(0.6) == 0.0


def test_rate_exceeds_needs_both_the_share_and_significance():
    assert rate_exceeds(10, 1000, 0.01, 0.5) == (False, 1.0)  # exactly at the threshold rate
    fires, p = rate_exceeds(1, 2, 0.01, 1e-5)  # 50%, but one of two proves nothing
    assert not fires and p == pytest.approx(binomial_sf(1, 2, 0.01))
    p_exact = binomial_sf(30, 100, 0.01)
    assert rate_exceeds(30, 100, 0.01, p_exact) == (True, p_exact)  # p equal to alpha fires
    assert rate_exceeds(30, 100, 0.01, p_exact * 0.999)[0] is False


# --------------------------------------------------------------------------------------
# high_rejection_rate / high_revote_rate
# --------------------------------------------------------------------------------------


def test_high_rejection_rate():
    c = constituencies([("A", 1000), ("B", 1000), ("C", 1000)])
    frame = hourly(
        [
            {"constituency_id": "A", "hour": HOUR, "rejected_count": 10, "transaction_count": 1000},  # exactly 1%
            {"constituency_id": "B", "hour": HOUR, "rejected_count": 1, "transaction_count": 3},  # 33%, not significant
            {"constituency_id": "C", "hour": HOUR, "rejected_count": 12, "transaction_count": 30},  # 40%
        ]
    )
    [f] = high_rejection_rate(frame, c, T)
    assert (f.rule, f.severity, f.constituency_id, f.statistic, f.threshold) == (
        "high_rejection_rate",
        "warning",
        "C",
        0.4,
        0.01,
    )
    assert f.expected == round(23 / 1033, 4)  # the share over every hour given
    assert f.figures["rejected"] == 12 and f.figures["transactions"] == 30
    assert f.figures["p_value"] < 1e-5 and f.evidence_kind == "rejected" and f.hours == [HOUR]


def test_rejections_add_up_over_a_run_of_hours():
    """D: 2 of 10 transactions rejected in each of three hours. One hour: P(X ≥ 2 | 10, 1%)
    = 1 − 0.99¹⁰ − 10 × 0.01 × 0.99⁹ = 0.00427, far from significant. The three hours:
    6 of 30, P(X ≥ 6 | 30, 1%) ≈ C(30, 6) × 0.01⁶ × 0.99²⁴ = 4.7e-7 (4.8e-7 with the
    terms above 6); six runs were tested
    (three of one hour, two of two, one of three): 6 × 4.8e-7 = 2.9e-6 ≤ 1e-5."""
    one_hour = 1 - 0.99**10 - 10 * 0.01 * 0.99**9
    assert binomial_sf(2, 10, 0.01) == pytest.approx(one_hour)
    c = constituencies([("D", 1000)])
    hours = [HOUR + timedelta(hours=k) for k in range(3)]
    frame = hourly([{"constituency_id": "D", "hour": h, "rejected_count": 2, "transaction_count": 10} for h in hours])
    [f] = high_rejection_rate(frame, c, T)
    p = binomial_sf(6, 30, 0.01)
    first_term = 30 * 29 * 28 * 27 * 26 * 25 / 720 * 0.01**6 * 0.99**24  # P(X = 6); the rest adds 3.6%
    assert p == pytest.approx(first_term, rel=0.04)
    assert (f.hours, f.statistic, f.window_key) == (hours, 0.2, "2024-09-07T12")
    assert (f.figures["rejected"], f.figures["transactions"], f.figures["runs_tested"]) == (6, 30, 6)
    assert f.figures["p_value"] == float(f"{p:.3g}")
    # with a stricter alpha (6 × p just above it) nothing fires
    assert high_rejection_rate(frame, c, DetectionThresholds(rate_alpha=6 * p * 0.999)) == []


def test_high_revote_rate():
    c = constituencies([("A", 1000), ("B", 1000)])
    frame = hourly(
        [
            {"constituency_id": "A", "hour": HOUR, "votes_cast": 90, "revote_count": 10},  # exactly 10%
            {"constituency_id": "B", "hour": HOUR, "votes_cast": 10, "revote_count": 15},  # 60%
        ]
    )
    [f] = high_revote_rate(frame, c, T)
    assert (f.constituency_id, f.statistic, f.threshold, f.evidence_kind) == ("B", 0.6, 0.1, "revote")
    assert f.figures["revotes"] == 15 and f.figures["accepted_votes"] == 25
    assert high_revote_rate(frame, c, DetectionThresholds(revote_rate=0.6)) == []  # 60% is not above 60%


# --------------------------------------------------------------------------------------
# issued_not_voted_gap
# --------------------------------------------------------------------------------------


def test_issued_not_voted_gap_at_close():
    c = constituencies([("A", 2000), ("B", 2000), ("C", 2000)])
    t = totals(
        [
            {"constituency_id": "A", "bulletins_issued": 1000, "votes_cast": 950},  # exactly 5%
            {"constituency_id": "B", "bulletins_issued": 1000, "votes_cast": 800},  # 20%
            {"constituency_id": "C", "bulletins_issued": 100, "votes_cast": 120},  # more votes: another rule
        ]
    )
    closed = {"A", "B", "C"}
    [f] = issued_not_voted_gap(c, t, closed, T)
    assert (f.constituency_id, f.statistic, f.threshold) == ("B", 0.2, 0.05)
    assert f.figures["unused_bulletins"] == 200 and f.evidence_tx_ids == []
    assert issued_not_voted_gap(c, t, {"A", "C"}, T) == []  # B still voting


# --------------------------------------------------------------------------------------
# low_participation
# --------------------------------------------------------------------------------------


def test_low_participation_at_close_and_pro_rated_before():
    c = constituencies([("A", 1000), ("B", 1000), ("C", 1000)])
    windows = constituency_windows(c, elections())
    t = totals(
        [
            {"constituency_id": "A", "votes_cast": 300},  # exactly 30%
            {"constituency_id": "B", "votes_cast": 299},
            {"constituency_id": "C", "votes_cast": 700},
        ]
    )
    after = END + timedelta(hours=1)
    [f] = low_participation(c, t, windows, closed={"A", "B", "C"}, thresholds=T, now=after)
    assert (f.constituency_id, f.statistic, f.threshold, f.expected) == ("B", 0.299, 0.3, 0.3)
    assert f.higher_is_worse is False

    # Halfway through the window: the threshold is 0.3 × 0.5 = 0.15.
    halfway = START + (END - START) / 2
    t = totals(
        [
            {"constituency_id": "A", "votes_cast": 150},
            {"constituency_id": "B", "votes_cast": 149},
            {"constituency_id": "C", "votes_cast": 400},
        ]
    )
    [g] = low_participation(c, t, windows, set(), T, now=halfway)
    assert (g.constituency_id, g.threshold, g.figures["window_elapsed_share"]) == ("B", 0.15, 0.5)
    # Before the first voting day is over (midnight Moscow = 21:00 UTC): no judgement yet.
    assert low_participation(c, t, windows, set(), T, now=datetime(2024, 9, 6, 20, 59)) == []


# --------------------------------------------------------------------------------------
# integer_percentage
# --------------------------------------------------------------------------------------


def test_integer_percentage_definition():
    assert is_integer_percentage(320, 640)  # 50.00%
    assert not is_integer_percentage(321, 640)  # 50.16%
    assert is_integer_percentage(10000, 20000)
    assert not is_integer_percentage(10001, 20000)  # 50.005%: exactly at the tolerance
    # 640 = 20 × 32: only multiples of 32 voters give a whole percentage
    assert integer_chance(640) == pytest.approx(20 / 640)
    # 437 is prime to 100: 100·v mod 437 takes every value once, and within the tolerance
    # (|100 v − 437 k| < 437/200 = 2.185) are the residues −2..2: five counts of 437
    assert integer_chance(437) == pytest.approx(5 / 437)


def test_integer_percentage_rule():
    c = constituencies([("A", 640), ("B", 640), ("C", 99), ("D", 100), ("E", 437)])
    t = totals(
        [
            {"constituency_id": "A", "votes_cast": 448},  # 70.00%
            {"constituency_id": "B", "votes_cast": 449},
            {"constituency_id": "C", "votes_cast": 55},  # 55.56% ... and under 100 voters anyway
            {"constituency_id": "D", "votes_cast": 55},  # 55.00%, 100 registered: checked
            {"constituency_id": "E", "votes_cast": 300},
        ]
    )
    found = {f.constituency_id: f for f in integer_percentage(c, t, {"A", "B", "C", "D", "E"}, T)}
    assert set(found) == {"A", "D"}
    a = found["A"]
    assert (a.severity, a.statistic, a.expected) == ("info", 70.0, round(20 / 640, 5))
    assert a.figures["election_integer_units"] == 2 and a.figures["election_units_checked"] == 4
    assert "Kobak" in a.description
    assert integer_percentage(c, t, {"B"}, T) == []  # A not closed: not judged
