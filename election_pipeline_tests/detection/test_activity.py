"""unusual_spike, night_activity and constituency_offline on hand-built frames.

The expected votes and tail probabilities are computed here by hand from the documented
model (:mod:`election_pipeline.detection.volume`), on frames small enough to follow:
peers with identical daily shapes (so the spread of shapes is 0) and one bulletin per
issuing transaction (so the dispersion is 1 and the counts are Poisson).
"""

import math
from datetime import datetime, timedelta

import numpy as np
import pytest

from election_pipeline.detection import volume
from election_pipeline.detection.activity import constituency_offline, night_activity, unusual_spike
from election_pipeline.detection.context import constituency_windows
from election_pipeline.detection.stats import scaled_count_sf, tail_to_z
from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.detection.volume import batch_dispersion, election_volumes, scan, votes_needed

from .frames import START, constituencies, elections, hourly

T = DetectionThresholds()
#: The spike thresholds without the least shape spread, so that the tails are plain Poisson.
#: The hand-computed spikes below have scan z between 3.5 and the default warning level
#: (4.5): they are judged at 3.5, so each rule's arithmetic is tested, not the default.
Z35 = 3.5
#: The hand-built silences below are predicted 12-15 votes (the default asks 15, as calibrated).
OFFLINE12 = DetectionThresholds(offline_min_votes=12.0)
EXACT = DetectionThresholds(spike_relative_spread=0.0, spike_warning_z=Z35).spike

H0 = datetime(2024, 9, 6, 9)
PEERS = ["P1", "P2", "P3", "P4"]


def flat_frames(a_votes: dict[int, int], hours: int = 6, level: int = 10, a_level: int | None = None):
    """Four peers and A, 1000 registered each, ``level`` votes in each of ``hours`` hours
    from 09:00 UTC (A: ``a_level``, default the same), except A's hours in ``a_votes``."""
    rows = []
    for cid in [*PEERS, "A"]:
        for k in range(hours):
            n = (a_votes.get(k, a_level or level)) if cid == "A" else level
            rows.append(
                {"constituency_id": cid, "hour": H0 + timedelta(hours=k), "votes_cast": n, "bulletins_issued": n}
            )
    return hourly(rows), constituencies([(c, 1000) for c in [*PEERS, "A"]])


def poisson_tail(k: int, mean: float) -> float:
    """P(X ≥ k) for a Poisson mean, summed term by term."""
    return 1 - sum(math.exp(-mean) * mean**j / math.factorial(j) for j in range(k))


def test_dispersion_from_the_group_size():
    # b = bulletins per issuing transaction; B − 1 geometric with mean m = b − 1:
    # φ = (m(1 + m) + b²)/b
    assert batch_dispersion(100, 100) == 1.0  # one bulletin each: Poisson
    assert batch_dispersion(125, 100) == pytest.approx((0.25 * 1.25 + 1.25**2) / 1.25)  # 1.5
    assert batch_dispersion(150, 100) == pytest.approx(2.0)  # (0.5 × 1.5 + 2.25) / 1.5
    assert batch_dispersion(0, 0) == 1.5  # nothing issued: a typical value


def test_spike_expected_from_own_volume_and_tail_by_hand():
    """A casts 30 votes in hour 11 (index 2) and 10 in the others; so do the peers, 10 an hour.

    Context of hour 11: the other five hours (up to six on each side), 50 of A's votes.
    The peers cast 1/5 as many votes in hour 11 as in those five: E = 50 × 0.2 = 10.
    x − E has variance φ·E·(1 + 0.2) with φ = 1 (one bulletin per transaction), so x/1.2
    is Poisson with mean 10/1.2 = 8.333: P(x ≥ 30) = P(X ≥ 25 | 8.333).
    Runs tested: the 6 one-hour runs, 5 two-hour (ratio 2/4) and 4 three-hour (3/3) ones;
    four hours would be expected to hold twice their context's votes (above 1.5): 15.
    Scan z: the normal z of 15 × that tail."""
    frame, c = flat_frames({2: 30})
    p = poisson_tail(25, 10 / 1.2)
    z = tail_to_z(15 * p)
    assert z == pytest.approx(3.972, abs=1e-3)
    [f] = unusual_spike(frame, c, EXACT, closed=set())
    assert (f.rule, f.severity, f.constituency_id) == ("unusual_spike", "warning", "A")
    assert f.hours == [H0 + timedelta(hours=2)] and f.window_key == "2024-09-06T11"
    assert f.statistic == round(z, 3) and f.expected == 10.0 and f.threshold == 3.5
    assert f.figures["p_value"] == float(f"{p:.3g}") and f.figures["runs_tested"] == 15
    assert (f.figures["dispersion"], f.figures["context_votes"], f.evidence_kind) == (1.0, 50, "vote")


def test_spike_exactly_at_the_warning_and_critical_thresholds():
    frame, c = flat_frames({2: 30})
    z = tail_to_z(15 * poisson_tail(25, 10 / 1.2))
    none: set[str] = set()
    at = DetectionThresholds(spike_relative_spread=0, spike_warning_z=z + 1e-9, spike_critical_z=10)
    assert unusual_spike(frame, c, at.spike, none) == []
    below = DetectionThresholds(spike_relative_spread=0, spike_warning_z=z - 1e-9, spike_critical_z=10)
    [f] = unusual_spike(frame, c, below.spike, none)
    assert f.severity == "warning"
    crit = DetectionThresholds(spike_relative_spread=0, spike_warning_z=1, spike_critical_z=z - 1e-9)
    [f] = unusual_spike(frame, c, crit.spike, none)
    assert f.severity == "critical" and f.threshold == pytest.approx(z - 1e-9)


def test_spike_needs_min_votes_above_the_expected():
    frame, c = flat_frames({2: 30})  # 30 votes, 10 expected: 20 more
    assert (
        len(
            unusual_spike(
                frame,
                c,
                DetectionThresholds(spike_relative_spread=0, spike_min_votes=20, spike_warning_z=Z35).spike,
                set(),
            )
        )
        == 1
    )
    assert (
        unusual_spike(
            frame, c, DetectionThresholds(spike_relative_spread=0, spike_min_votes=21, spike_warning_z=Z35).spike, set()
        )
        == []
    )


def test_a_burst_in_a_low_turnout_constituency_is_judged_by_its_own_level():
    """A votes half as much as its peers (5 an hour), and 15 in hour 11. Against its
    registered voters (peers: 10 an hour) 21 would be about twice the expected; against its
    own level, E = 25 × 0.2 = 5, and P(x ≥ 21) = P(X ≥ 17.5 | 5/1.2), halfway between the
    whole numbers 17 and 18 (geometric interpolation: the square root of their product)."""
    frame, c = flat_frames({2: 21}, a_level=5)
    [f] = unusual_spike(
        frame, c, DetectionThresholds(spike_relative_spread=0, spike_min_votes=5, spike_warning_z=Z35).spike, set()
    )
    assert f.expected == 5.0
    p = math.sqrt(poisson_tail(17, 5 / 1.2) * poisson_tail(18, 5 / 1.2))
    assert f.figures["p_value"] == float(f"{p:.3g}")


def test_a_run_of_hours_adds_up():
    """Twelve hours; A casts 25 instead of 10 in hours 3-5. The run 3-5: context hours 0-2
    and 6-11 (90 votes), peers' ratio 3/9, E = 30; x = 75, and x/(1 + 1/3) is Poisson with
    mean 22.5. No single hour (25 against 10, tail P(X ≥ 20.8 | 8.3) about 1e-4) comes
    close once many runs are tested; the three hours together do."""
    frame, c = flat_frames({3: 25, 4: 25, 5: 25}, hours=12)
    [f] = unusual_spike(frame, c, EXACT, closed=set())
    assert f.hours == [H0 + timedelta(hours=k) for k in (3, 4, 5)]
    assert (f.expected, f.figures["votes"], f.figures["run_hours"]) == (30.0, 75, 3)
    # 75 / (4/3) = 56.25: a quarter of the way from 56 to 57, interpolated in log space
    p = poisson_tail(56, 22.5) ** 0.75 * poisson_tail(57, 22.5) ** 0.25
    assert f.figures["p_value"] == float(f"{p:.3g}")


def test_votes_needed_is_the_first_count_that_fires():
    frame, c = flat_frames({2: 30})
    [model] = election_volumes(frame, c)
    [run] = [r for r in scan(model, "A", np.ones(len(model.hours), dtype=bool), 0.0) if r.hours == 1 and r.start == 2]
    needed = votes_needed(run, model.dispersion, 3.5)
    assert 20 < needed <= 30  # 30 fires at 3.5
    [f] = unusual_spike(frame, c, EXACT, closed=set())
    assert f.figures["votes_for_warning"] == needed


def test_honest_flat_day_is_quiet():
    frame, c = flat_frames({})
    assert unusual_spike(frame, c, T.spike) == []


def test_hour_share_only_once_voting_is_over():
    # A: 100 votes, 25 of them in one hour: exactly 25% is not more than 25%.
    hours = [datetime(2024, 9, 6, h) for h in range(6, 12)]
    votes = [25, 15, 15, 15, 15, 15]
    rows = [{"constituency_id": "A", "hour": h, "votes_cast": v} for h, v in zip(hours, votes, strict=False)]
    c = constituencies([("A", 1000)])
    assert [f for f in unusual_spike(hourly(rows), c, T.spike) if f.figures["kind"] == "hour_share"] == []
    rows[0]["votes_cast"] = 26  # 26 of 101 = 25.7%
    [f] = unusual_spike(hourly(rows), c, T.spike, closed={"A"})
    assert (f.severity, f.window_key, f.statistic, f.threshold) == ("warning", "2024-09-06T06|share", 0.2574, 0.25)
    assert unusual_spike(hourly(rows), c, T.spike, closed=set()) == []  # still voting: the total is not final


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


def test_a_run_of_night_hours_against_the_peers_night_shape_by_hand():
    """Four peers and A vote 10 an hour from 08:00 to 23:00 Moscow time (05:00-20:00 UTC)
    and 10 again at 06:00-08:00; nobody votes at night, except A: 4 votes at each of 02:00,
    03:00 and 04:00 local. The peers cast no night votes, so the expected votes are the
    floor of 0.25 an hour: 0.75 for the three hours, and P(x ≥ 12) is the Poisson tail at
    0.75 (φ = 1, no shape spread). Night runs tested: 6 + 5 + 4 + 3 + 2 + 1 = 21 (the six
    night hours, runs of 1 to 6)."""
    rows = []
    day = [START + timedelta(hours=k) for k in range(16)] + [START + timedelta(hours=22 + k) for k in range(3)]
    for cid in [*PEERS, "A"]:
        rows += [{"constituency_id": cid, "hour": h, "votes_cast": 10, "bulletins_issued": 10} for h in day]
    night = [datetime(2024, 9, 6, 23), datetime(2024, 9, 7, 0), datetime(2024, 9, 7, 1)]  # 02:00-05:00 local
    rows += [{"constituency_id": "A", "hour": h, "votes_cast": 4, "bulletins_issued": 4} for h in night]
    c = constituencies([(cid, 1000) for cid in [*PEERS, "A"]])
    windows = constituency_windows(c, elections())
    thresholds = DetectionThresholds(spike_relative_spread=0.0, spike_warning_z=Z35)
    [f] = night_activity(hourly(rows), c, windows, thresholds, now=datetime(2024, 9, 7, 6))
    z = tail_to_z(21 * poisson_tail(12, 0.75))
    assert (f.rule, f.constituency_id, f.window_key, f.hours) == ("night_activity", "A", "2024-09-07", night)
    assert (f.statistic, f.expected, f.threshold) == (round(z, 3), 0.75, 3.0)
    assert f.figures["votes_by_local_hour"] == {"02:00": 4, "03:00": 4, "04:00": 4}
    assert f.figures["runs_tested"] == 21
    # at least night_min_votes in the run: 12 is enough for 12, not for 13
    assert (
        night_activity(
            hourly(rows), c, windows, thresholds.model_copy(update={"night_min_votes": 13}), now=datetime(2024, 9, 7, 6)
        )
        == []
    )


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
    assert constituency_offline(frame, c, windows, OFFLINE12, now=now) == []
    frame, c, windows = offline_frames(silent=[3, 4])
    [f] = constituency_offline(frame, c, windows, OFFLINE12, now=now)
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
    assert constituency_offline(frame, c, windows, OFFLINE12, now=START + timedelta(hours=6, minutes=30)) == []
    [f] = constituency_offline(frame, c, windows, OFFLINE12, now=START + timedelta(hours=7, minutes=10))
    assert f.window_start == start_of_silence and f.statistic == 2.0 and f.figures["ongoing"]
    [g] = constituency_offline(frame, c, windows, OFFLINE12, now=START + timedelta(hours=8, minutes=10))
    assert g.fingerprint == f.fingerprint and g.statistic == 3.0  # the same alert, grown


def test_offline_is_quiet_when_peers_are_quiet_too():
    now = START + timedelta(hours=8)
    frame, c, windows = offline_frames(silent=[3, 4])
    quiet = frame[~frame["hour"].isin([START + timedelta(hours=3), START + timedelta(hours=4)])]
    assert constituency_offline(quiet, c, windows, T, now=now) == []


RURAL_DAY = [30, 20, 10, 10, 10, 10, 5, 5]  # an opening rush
URBAN_DAY = [5, 5, 10, 10, 10, 10, 20, 30]  # an evening peak


def mixed_election(a_votes: dict[int, int] | None = None):
    """Twenty constituencies over eight hours from 09:00 UTC, one bulletin per issuing
    transaction: ten rural (RURAL_DAY) and ten urban (URBAN_DAY). A is urban, but its region,
    North, holds four rural stations; the other urban ones are in South, the other rural ones
    in East. ``a_votes`` changes A's votes in some hours."""
    specs = [("A", 1000, "North")] + [(f"R{k}", 1000, "North") for k in range(1, 5)]
    specs += [(f"U{k}", 1000, "South") for k in range(1, 10)] + [(f"R{k}", 1000, "East") for k in range(5, 11)]
    rows = []
    for cid, _, _ in specs:
        day = RURAL_DAY if cid.startswith("R") else URBAN_DAY
        for k, usual in enumerate(day):
            n = (a_votes or {}).get(k, usual) if cid == "A" else usual
            rows.append(
                {"constituency_id": cid, "hour": H0 + timedelta(hours=k), "votes_cast": n, "bulletins_issued": n}
            )
    return hourly(rows), constituencies(specs)


def test_an_urban_station_among_rural_peers_is_judged_by_the_stations_that_vote_like_it():
    """A's four region peers open with a rush; A, like the nine other urban stations, peaks
    in the evening. Its expected shape comes from its eight *shape neighbours* (the other
    constituencies whose shares are closest to its own): urban ones, so an honest evening
    is not a spike, and a real one is measured against the urban shape."""
    frame, c = mixed_election()
    [model] = election_volumes(frame, c)
    a = model.row("A")
    assert model.shape[a] == pytest.approx(np.array(URBAN_DAY) / 100, rel=1e-12)
    # eight neighbours (one dropped at each end of the mean), all urban
    chosen = model.neighbour_ids("A")
    assert len(chosen) == 8 and set(chosen) <= {f"U{k}" for k in range(1, 10)}
    assert unusual_spike(frame, c, T.spike, closed=set()) == []

    # 40 votes instead of 10 at 12:00 UTC (hour 3). Context: the other seven hours, 90 of
    # A's votes; the urban shape holds 10 in hour 3 for 90 in those: E = 90 × 1/9 = 10.
    # Every other constituency is predicted exactly (rel. error 0), so the spread is the
    # least one, MIN_RELATIVE_SPREAD² = 0.01, widened by the mean of six: c² = 0.01 × 7/6.
    frame, c = mixed_election({3: 40})
    [f] = unusual_spike(frame, c, T.spike, closed=set())
    assert (f.constituency_id, f.hours, f.expected) == ("A", [H0 + timedelta(hours=3)], 10.0)
    p = scaled_count_sf(40, 10, 1 + 1 / 9, 0.01 * 7 / 6)
    assert f.figures["p_value"] == float(f"{p:.3g}")
    assert f.statistic == round(tail_to_z(p * f.figures["runs_tested"]), 3) > T.spike_warning_z


def test_the_large_election_warning_level_applies_from_17_constituencies():
    """30 votes instead of 10 at 12:00 UTC in A of :func:`mixed_election`: E = 10 as above,
    c² = 0.01 × 7/6, 28 runs tested (the runs of A's hours expected to hold at most 1.5 × the
    votes of their context). The scan z, about 3.65, is above the warning level of an election of
    17 or more constituencies (3.0), below that of a smaller one (4.5). Taking east's rural
    stations away one by one changes nothing in A's figures (its shape neighbours are the
    nine urban ones; its context, the other seven hours, is the same with 6 or 12 hours on
    each side): only the level it is judged against."""
    p = scaled_count_sf(30, 10, 1 + 1 / 9, 0.01 * 7 / 6)
    z = round(tail_to_z(28 * p), 3)
    assert T.spike_large_warning_z < z < T.spike_warning_z
    frame, c = mixed_election({3: 30})
    for dropped, threshold in ((0, 3.0), (3, 3.0), (4, None)):  # 20, 17, 16 constituencies
        gone = [f"R{k}" for k in range(11 - dropped, 11)]
        sub = frame[~frame["constituency_id"].isin(gone)]
        kept = c[~c["id"].isin(gone)]
        assert len(kept) == 20 - dropped
        found = unusual_spike(sub, kept, T.spike, closed=set())
        if threshold is None:
            assert found == []
            continue
        [f] = found
        assert (f.constituency_id, f.severity, f.expected, f.threshold) == ("A", "warning", 10.0, threshold)
        assert (f.statistic, f.figures["runs_tested"]) == (z, 28)


def test_a_large_elections_spread_of_one_hour_is_shrunk_toward_its_days():
    """18 constituencies, 3 runs, no counting noise. In every run the errors are −a, 0 and +a,
    six of each, so whichever constituency is left out the other 17 have median 0 and MAD a:
    the robust spread is (a / 0.6745)². a is 0.1 in the first two runs, 0.4 in the third: its
    spread (0.352) is shrunk toward the median over the runs (0.022), which weighs as much as
    100 constituencies against the 17 measured: (17 × 0.352 + 100 × 0.022) / 117 = 0.070."""
    pattern = np.repeat([-1.0, 0.0, 1.0], 6)
    rel = np.stack([pattern * a for a in (0.1, 0.1, 0.4)], axis=1)
    counting = np.zeros_like(rel)
    low, high = (0.1 / 0.6745) ** 2, (0.4 / 0.6745) ** 2
    shrunk = (17 * high + 100 * low) / 117
    assert volume.SPREAD_PRIOR_CONSTITUENCIES == 100
    spreads = volume._leave_one_out_spread(rel, counting)
    assert spreads == pytest.approx(np.tile([low, low, shrunk], (18, 1)), rel=1e-12)
    assert shrunk == pytest.approx(0.0699, abs=1e-4)
    # never below the day's median, and a run nobody was measured in takes the median
    assert volume.shrink_spread(np.array([[0.01, 0.04, 0.09]]), np.array([[17, 17, 0]])) == pytest.approx(
        np.array([[0.04, 0.04, 0.04]])
    )


RURAL_12 = [40, 30, 20, 15, 10, 10, 10, 10, 10, 10, 5, 5]  # 08:00-20:00 local: an opening rush
URBAN_12 = RURAL_12[::-1]  # an evening peak


def lone_urban_election(spike: int | None = None):
    """Six constituencies of one region over the three days of :func:`~.frames.elections`
    (08:00-20:00 Moscow time), one bulletin per issuing transaction: five rural stations
    (RURAL_12 each day) and A, the only urban one (URBAN_12 each day). ``spike``: A's votes
    at 13:00 on the second day instead of 10."""
    specs = [("A", 1000)] + [(f"R{k}", 1000) for k in range(1, 6)]
    rows = []
    for day in range(3):
        for k in range(12):
            hour = START + timedelta(days=day, hours=k)
            for cid, _ in specs:
                n = URBAN_12[k] if cid == "A" else RURAL_12[k]
                if cid == "A" and spike is not None and (day, k) == (1, 5):
                    n = spike
                rows.append({"constituency_id": cid, "hour": hour, "votes_cast": n, "bulletins_issued": n})
    c = constituencies(specs)
    return hourly(rows), c, constituency_windows(c, elections())


def test_in_a_small_election_a_lone_stations_daily_peak_is_a_warning_not_a_critical():
    """A's evenings are far above what its rural neighbours' shape implies (scan z above the
    critical 7), but its own other days show the same evenings: against them its votes are
    not excessive at all (scan z 0), so each is a warning that says why. A burst on one day
    only is above the warning level against its own other days too, and stays critical: the
    run found (11:00-20:00 on the second day, 295 votes) holds it, and its hour alone held
    150 where the other days held 10 at 13:00."""
    frame, c, windows = lone_urban_election()
    found = unusual_spike(frame, c, T.spike, closed=set(), windows=windows)
    assert found and all(f.constituency_id == "A" for f in found)
    for f in found:
        assert (
            f.statistic is not None
            and f.statistic > T.spike_critical_z
            and f.severity == "warning"
            and f.threshold == T.spike_warning_z
        )
        assert f.figures["own_days_scan_z"] == 0.0
        assert "own other days" in f.description and "so this is a warning, not a critical" in f.description

    frame, c, windows = lone_urban_election(spike=150)
    found = unusual_spike(frame, c, T.spike, closed=set(), windows=windows)
    burst = [f for f in found if START + timedelta(days=1, hours=5) in f.hours]
    [f] = burst
    assert f.severity == "critical" and f.figures["own_days_scan_z"] > T.spike_warning_z
    # the part that is excessive against its own days is the burst's hour: 150 votes where
    # its other days' 13:00 held 10 each
    assert (f.figures["own_days_run_hours"], f.figures["own_days_votes"]) == (1, 150)
    assert f.figures["own_days_expected_votes"] == 10.0
    assert "the most excessive part of them, the hour starting 2024-09-07 13:00 local" in f.description
    # the same election in 17 constituencies or more is not checked against its own days
    # (its stations' shape neighbours vote like them): see the large-election tests above


def test_a_run_judged_again_by_the_same_model_keeps_its_figures():
    """:func:`~election_pipeline.detection.volume.run_against` judges the hours of a run as
    the scan does: given the model that found the run, the spike's hour comes back with the
    same expected votes, tail probability and scan z."""
    frame, c = mixed_election({3: 40})
    [model] = election_volumes(frame, c)
    allowed = np.ones(len(model.hours), dtype=bool)
    [run] = [r for r in scan(model, "A", allowed, T.spike_relative_spread) if (r.start, r.hours) == (3, 1)]
    again = volume.run_against(model, "A", run, allowed, T.spike_relative_spread)
    assert again is not None
    assert (again.start, again.stop, again.expected, again.p_value) == (run.start, run.stop, run.expected, run.p_value)
    assert again.scan_z == run.scan_z > T.spike_warning_z
    # an hour the other model cannot judge: no verdict
    assert volume.run_against(model, "A", run, ~allowed, T.spike_relative_spread) is None
