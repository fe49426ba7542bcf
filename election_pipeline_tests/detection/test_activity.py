"""unusual_spike, night_activity and constituency_offline on hand-built frames.

The expected z-scores are computed here from the documented formula, so an edge test can
put the threshold exactly at the z-score (no alert) and just below it (alert).
"""

import math
from datetime import datetime, timedelta

import pytest

from election_pipeline.detection.activity import (
    constituency_offline,
    night_activity,
    spike_noise_floor,
    spread_with_median_error,
    unusual_spike,
)
from election_pipeline.detection.context import constituency_windows
from election_pipeline.detection.stats import MAD_SCALE
from election_pipeline.detection.thresholds import DetectionThresholds

from .frames import START, constituencies, elections, hourly

T = DetectionThresholds()
SPIKE = T.spike

H0, H1 = datetime(2024, 9, 6, 9), datetime(2024, 9, 6, 10)
PEERS = ["P1", "P2", "P3", "P4"]


def spike_frames(x: int):
    """Four peers and A, 1000 registered each: 90 votes in hour 09, then 10 for the peers
    and ``x`` for A in hour 10."""
    rows = []
    for cid in [*PEERS, "A"]:
        rows.append({"constituency_id": cid, "hour": H0, "votes_cast": 90, "bulletins_issued": 90})
        rows.append(
            {
                "constituency_id": cid,
                "hour": H1,
                "votes_cast": x if cid == "A" else 10,
                "bulletins_issued": x if cid == "A" else 10,
            }
        )
    return hourly(rows), constituencies([(c, 1000) for c in [*PEERS, "A"]])


def expected_z(x: int, rho: float = 0.25) -> float:
    """By hand: peers agree exactly (MAD 0), so the noise floor is the spread.
    Registered: E = 1000 × 0.01 = 10, σ = √(E + (ρE)²), z = (x − 10)/σ.
    Turnout-adjusted: peers cast 10% of their votes in hour 10; A's total is 90 + x,
    E' = 0.1 (90 + x), z' = (x − E')/√(E' + (ρE')²). The rule keeps the smaller."""
    e = 10.0
    z_reg = (x - e) / math.sqrt(e + (rho * e) ** 2)
    e2 = 0.1 * (90 + x)
    z_adj = (x - e2) / math.sqrt(e2 + (rho * e2) ** 2)
    return min(z_reg, z_adj)


def test_spike_z_score_by_hand():
    frame, c = spike_frames(40)
    z = expected_z(40)  # min(30/4.031, 27/4.854) = 5.562
    assert z == pytest.approx(5.5623, abs=1e-4)
    [f] = unusual_spike(frame, c, SPIKE, closed=set())
    assert (f.rule, f.severity, f.constituency_id, f.hours) == ("unusual_spike", "warning", "A", [H1])
    assert f.statistic == round(z, 3)
    assert f.expected == 10.0  # registered voters × the peers' median share
    assert f.threshold == 3.5 and f.figures["peers"] == 4 and f.evidence_kind == "vote"
    assert f.window_key == "2024-09-06T10"


def test_spike_exactly_at_the_warning_and_critical_thresholds():
    frame, c = spike_frames(40)
    z = expected_z(40)
    none: set[str] = set()  # nobody has finished voting: only the peer z-score applies
    assert unusual_spike(frame, c, DetectionThresholds(spike_warning_z=z + 1e-9, spike_critical_z=10).spike, none) == []
    [f] = unusual_spike(frame, c, DetectionThresholds(spike_warning_z=z - 1e-9, spike_critical_z=10).spike, none)
    assert f.severity == "warning"
    [f] = unusual_spike(frame, c, DetectionThresholds(spike_warning_z=3.5, spike_critical_z=z + 1e-9).spike, none)
    assert f.severity == "warning"
    [f] = unusual_spike(frame, c, DetectionThresholds(spike_warning_z=3.5, spike_critical_z=z - 1e-9).spike, none)
    assert f.severity == "critical" and f.threshold == pytest.approx(z - 1e-9)


def test_spike_needs_min_votes():
    frame, c = spike_frames(40)
    assert unusual_spike(frame, c, DetectionThresholds(spike_min_votes=41).spike, closed=set()) == []
    assert len(unusual_spike(frame, c, DetectionThresholds(spike_min_votes=40).spike, closed=set())) == 1


def test_small_early_numbers_with_closely_agreeing_peers_are_not_a_spike():
    """The false critical the first version raised: in an early hour five peers of
    different sizes happened to vote at almost the same rate (MAD nearly 0), and a
    constituency with 24 votes where 13 were predicted got z > 6. With the noise floor
    that is (24 − 13)/√(13 + 3.3²) ≈ 2.3: nothing to flag."""
    registered = {"P1": 858, "P2": 434, "P3": 725, "P4": 795, "P5": 460, "A": 874}
    rates = {"P1": 0.0151, "P2": 0.0152, "P3": 0.0150, "P4": 0.0151, "P5": 0.0152}
    rows = [{"constituency_id": cid, "hour": H1, "votes_cast": round(registered[cid] * r)} for cid, r in rates.items()]
    rows.append({"constituency_id": "A", "hour": H1, "votes_cast": 24})
    for cid in registered:  # the rest of the day, equal shares
        rows.append({"constituency_id": cid, "hour": H1 + timedelta(hours=1), "votes_cast": registered[cid] // 20})
    c = constituencies(list(registered.items()))
    assert unusual_spike(hourly(rows), c, SPIKE) == []


def test_spike_noise_floor_and_median_error_by_hand():
    # σ = √(16 + 4²) = √32 for 16 expected votes; as a MAD in share-of-400 units
    assert spike_noise_floor(16.0, 400.0, 0.25) == pytest.approx(MAD_SCALE * math.sqrt(32) / 400)
    assert spike_noise_floor(0.0, 400.0, 0.25) == pytest.approx(MAD_SCALE * math.sqrt(1 + 0.0625) / 400)
    # peers' MAD 0.02 with 8 peers: √(0.02² + π/2 × 0.02² / 8)
    assert spread_with_median_error(0.02, 0.01, 8) == pytest.approx(0.02 * math.sqrt(1 + math.pi / 16))


def test_hour_share_only_once_voting_is_over():
    # A: 100 votes, 25 of them in one hour: exactly 25% is not more than 25%.
    hours = [datetime(2024, 9, 6, h) for h in range(6, 12)]
    votes = [25, 15, 15, 15, 15, 15]
    rows = [{"constituency_id": "A", "hour": h, "votes_cast": v} for h, v in zip(hours, votes, strict=False)]
    c = constituencies([("A", 1000)])
    assert [f for f in unusual_spike(hourly(rows), c, SPIKE) if f.figures["kind"] == "hour_share"] == []
    rows[0]["votes_cast"] = 26  # 26 of 101 = 25.7%
    [f] = unusual_spike(hourly(rows), c, SPIKE, closed={"A"})
    assert (f.severity, f.window_key, f.statistic, f.threshold) == ("warning", "2024-09-06T06|share", 0.2574, 0.25)
    assert unusual_spike(hourly(rows), c, SPIKE, closed=set()) == []  # still voting: the total is not final


# --------------------------------------------------------------------------------------
# night_activity
# --------------------------------------------------------------------------------------


def night_frames(night_votes: int, night_hour_utc: datetime):
    """One constituency, 10 votes in every UTC hour of day 1 from 05:00 to 18:00 (08:00-21:00
    Moscow), and ``night_votes`` in ``night_hour_utc``."""
    rows = [{"constituency_id": "A", "hour": START + timedelta(hours=k), "votes_cast": 10} for k in range(14)]
    rows.append({"constituency_id": "A", "hour": night_hour_utc, "votes_cast": night_votes})
    c = constituencies([("A", 1000)])
    return hourly(rows), c


NIGHT_UTC = datetime(2024, 9, 6, 23)  # 02:00 in Moscow on 2024-09-07
NOW = datetime(2024, 9, 7, 12)


def test_night_votes_in_local_time():
    frame, c = night_frames(10, NIGHT_UTC)
    windows = constituency_windows(c, elections("Europe/Moscow"))
    # daytime median 10 votes (the 08:00-22:00 local hours without votes count as 0 but
    # there are none before NOW on day 1), limit 0.5 × 10 = 5; 10 votes and ≥ 10 minimum
    [f] = night_activity(frame, c, windows, T, now=NOW)
    assert (f.rule, f.severity, f.window_key) == ("night_activity", "warning", "2024-09-07")
    assert f.figures["votes_by_local_hour"] == {"02:00": 10}
    assert (f.expected, f.threshold, f.hours) == (10.0, 0.5, [NIGHT_UTC])
    # The same UTC hour is 23:00 in a UTC election (voting from 08:00 UTC): not night.
    utc_windows = constituency_windows(c, elections("UTC", START + timedelta(hours=3), START + timedelta(days=3)))
    assert night_activity(frame, c, utc_windows, T, now=NOW) == []


def test_night_activity_edges():
    windows = constituency_windows(constituencies([("A", 1000)]), elections())
    frame, c = night_frames(9, NIGHT_UTC)
    assert night_activity(frame, c, windows, T, now=NOW) == []  # below the 10-vote minimum
    frame, c = night_frames(10, NIGHT_UTC)
    # exactly at night_share × median (1.0 × 10): not above
    assert night_activity(frame, c, windows, DetectionThresholds(night_share=1.0), now=NOW) == []
    assert len(night_activity(frame, c, windows, DetectionThresholds(night_share=0.99), now=NOW)) == 1
    # Too early to judge: fewer than six daytime hours seen.
    assert night_activity(frame, c, windows, T, now=START + timedelta(hours=5)) == []


# --------------------------------------------------------------------------------------
# constituency_offline
# --------------------------------------------------------------------------------------

REG = 1024  # a power of two keeps the hand-computed predictions exact in floating point


def offline_frames(silent: list[int], hours: int = 8, votes: int = 6):
    """Four peers and A (1024 registered each), ``votes`` votes (and as many bulletins) in
    each of the first ``hours`` hours of the window; A is silent in the hours ``silent``."""
    rows = []
    for cid in [*PEERS, "A"]:
        for k in range(hours):
            if cid == "A" and k in silent:
                continue
            rows.append(
                {
                    "constituency_id": cid,
                    "hour": START + timedelta(hours=k),
                    "votes_cast": votes,
                    "bulletins_issued": votes,
                }
            )
    c = constituencies([(cid, REG) for cid in [*PEERS, "A"]])
    return hourly(rows), c, constituency_windows(c, elections())


def test_offline_exactly_n_hours_fires_one_less_does_not():
    now = START + timedelta(hours=8)
    frame, c, windows = offline_frames(silent=[3])
    assert constituency_offline(frame, c, windows, T, now=now) == []
    frame, c, windows = offline_frames(silent=[3, 4])
    [f] = constituency_offline(frame, c, windows, T, now=now)
    assert (f.rule, f.severity, f.constituency_id) == ("constituency_offline", "warning", "A")
    assert f.hours == [START + timedelta(hours=3), START + timedelta(hours=4)]
    # peers predict 2 × 6 = 12 votes (registered × median rate; A's own level gives the same)
    assert (f.statistic, f.expected, f.threshold) == (2.0, 12.0, 2.0)
    assert f.evidence_kind == "around" and f.figures["active_peer_share"] == 1.0
    assert not f.figures["ongoing"]


def test_offline_needs_enough_predicted_votes():
    now = START + timedelta(hours=8)
    frame, c, windows = offline_frames(silent=[3, 4])
    assert len(constituency_offline(frame, c, windows, DetectionThresholds(offline_min_votes=12.0), now=now)) == 1
    assert constituency_offline(frame, c, windows, DetectionThresholds(offline_min_votes=12.0 + 1e-9), now=now) == []


def test_offline_fires_from_the_schedule_as_time_passes():
    """No new data: the same frame, judged at later and later instants."""
    frame, c, windows = offline_frames(silent=[5, 6, 7], hours=8)
    start_of_silence = START + timedelta(hours=5)
    # At 5:30 past the start only hour 5 is... not even whole yet; at 7:00, hours 5-6 are whole.
    assert constituency_offline(frame, c, windows, T, now=START + timedelta(hours=6, minutes=30)) == []
    [f] = constituency_offline(frame, c, windows, T, now=START + timedelta(hours=7, minutes=10))
    assert f.window_start == start_of_silence and f.statistic == 2.0 and f.figures["ongoing"]
    [g] = constituency_offline(frame, c, windows, T, now=START + timedelta(hours=8, minutes=10))
    assert g.fingerprint == f.fingerprint and g.statistic == 3.0  # the same alert, grown


def test_offline_is_quiet_when_peers_are_quiet_too():
    now = START + timedelta(hours=8)
    frame, c, windows = offline_frames(silent=[3, 4])
    quiet = frame[~frame["hour"].isin([START + timedelta(hours=3), START + timedelta(hours=4)])]
    assert constituency_offline(quiet, c, windows, T, now=now) == []
