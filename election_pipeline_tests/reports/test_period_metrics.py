"""Metrics by period, local-hour patterns, velocity trends and the issued-but-not-voted gap,
against figures computed by hand from the rows described in conftest.py."""

from datetime import datetime

import pandas as pd
import pytest
from sqlalchemy.orm import Session

from election_pipeline.analytics import period_metrics as pm
from election_pipeline.db.models import Constituency, Election, HourlyStats
from election_pipeline_tests.builders import THRESHOLDS

from .conftest import C1, C2, CX, E1, H


def test_constituency_by_local_day_splits_at_local_midnight(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    days = pm.metrics_by_period(metrics_db.engine, scope, "day")
    # 20:00 UTC is 23:00 in Moscow (day 6); 21:00 UTC is 00:00 on day 7.
    assert list(days["period_start"]) == ["2024-09-06T00:00:00+03:00", "2024-09-07T00:00:00+03:00"]
    assert list(days["period_start_utc"]) == [datetime(2024, 9, 5, 21), datetime(2024, 9, 6, 21)]
    day6, day7 = days.to_dict("records")
    assert (day6["bulletins_issued"], day6["votes_cast"], day6["revote_count"], day6["transaction_count"]) == (
        17,
        16,
        1,
        36,
    )
    assert (day6["hours_with_activity"], day6["cumulative_votes"], day6["participation_rate"]) == (3, 16, 16.0)
    assert day6["participation_gain"] == 16.0 and day6["issued_not_voted"] == 1
    assert day6["vote_velocity"] == round(16 / 180, 4) and day6["peak_vote_velocity"] == 0.1333
    assert (day7["votes_cast"], day7["bulletins_issued"], day7["anomaly_count"]) == (4, 0, 1)
    assert (day7["participation_rate"], day7["participation_gain"], day7["issued_not_voted"]) == (20.0, 4.0, -3)
    assert (day6["vote_share"], day7["vote_share"]) == (80.0, 20.0)


def test_week_and_month_hold_everything_and_start_on_monday_and_the_first(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    week = pm.metrics_by_period(metrics_db.engine, scope, "week").to_dict("records")
    month = pm.metrics_by_period(metrics_db.engine, scope, "month").to_dict("records")
    assert [w["period_start"] for w in week] == ["2024-09-02T00:00:00+03:00"]  # 6 September 2024 is a Friday
    assert [m["period_start"] for m in month] == ["2024-09-01T00:00:00+03:00"]
    for row in week + month:
        assert (row["votes_cast"], row["bulletins_issued"], row["transaction_count"], row["hours_with_activity"]) == (
            20,
            17,
            40,
            4,
        )
        assert row["participation_rate"] == 20.0 and row["vote_share"] == 100.0


def test_hour_periods_over_a_range_fill_silent_hours_and_keep_cumulative_figures(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    hours = pm.metrics_by_period(metrics_db.engine, scope, "hour", start="2024-09-06T06:00", end="2024-09-06T21:00")
    assert len(hours) == 15  # 06:00 .. 20:00 UTC, silent hours included
    first, last = hours.iloc[0], hours.iloc[-1]
    assert first["period_start"] == "2024-09-06T09:00:00+03:00"
    # Cumulative figures count from the start of the election, not of the range.
    assert (
        first["votes_cast"],
        first["cumulative_votes"],
        first["participation_rate"],
        first["participation_gain"],
    ) == (6, 14, 14.0, 6.0)
    silent = hours[hours["transaction_count"] == 0]
    assert len(silent) == 13 and set(silent["cumulative_votes"]) == {14}
    assert (last["votes_cast"], last["cumulative_votes"]) == (2, 16)
    assert hours["vote_share"].sum() == pytest.approx(100.0)


def test_ranges_accept_offsets_and_reject_garbage(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    # 09:00+03:00 is 06:00 UTC: the same first hour as above.
    series = pm.hourly_series(metrics_db.engine, scope, start="2024-09-06T09:00+03:00", end="2024-09-06T07:00Z")
    assert list(series["hour"]) == [pd.Timestamp("2024-09-06 06:00")]
    with pytest.raises(ValueError, match="not an ISO 8601"):
        pm.hourly_series(metrics_db.engine, scope, start="yesterday")
    with pytest.raises(ValueError, match="unknown period"):
        pm.metrics_by_period(metrics_db.engine, scope, "fortnight")


def test_election_series_sums_constituencies_and_carries_cumulative_figures(metrics_db):
    scope = pm.election_scope(metrics_db.engine, E1)
    assert scope.registered_voters == 200 and scope.timezone == "Europe/Moscow"
    series = pm.hourly_series(metrics_db.engine, scope).set_index("hour")
    assert len(series) == 17  # 05:00 .. 21:00 UTC
    # 06:00: C1 has 15/14 so far, C2 (silent this hour) still 4/4.
    assert tuple(series.loc[H(6, 6), ["cumulative_bulletins", "cumulative_votes"]]) == (19, 18)
    assert tuple(series.loc[H(6, 7), ["bulletins_issued", "votes_cast", "cumulative_votes"]]) == (2, 1, 19)
    end = series.loc[H(6, 21)]
    assert (end["cumulative_bulletins"], end["cumulative_votes"], end["issued_not_voted"]) == (23, 25, -2)
    assert end["participation_rate"] == 12.5  # 25 / 200 (C3 and C4 are registered too)
    assert series["transaction_count"].sum() == 51  # the unknown contract CX is in no election


def test_activity_pattern_uses_the_elections_local_hours(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    pattern = pm.hourly_activity_pattern(metrics_db.engine, scope).set_index("local_hour")
    assert len(pattern) == 24
    active = pattern[pattern["votes_cast"] > 0]
    assert dict(active["votes_cast"]) == {0: 4, 8: 8, 9: 6, 23: 2}
    assert dict(active["vote_share"]) == {0: 20.0, 8: 40.0, 9: 30.0, 23: 10.0}
    assert pattern["vote_share"].sum() == pytest.approx(100.0)
    assert pattern.loc[8, "bulletin_share"] == round(10 / 17 * 100, 2)
    assert pattern.loc[12, "days"] == 0 and pattern.loc[8, "days"] == 1


def test_activity_pattern_follows_daylight_saving_time(tmp_path):
    from election_pipeline.db.session import create_tables, get_engine

    engine = get_engine(f"sqlite:///{tmp_path / 'dst.db'}")
    create_tables(engine)
    with Session(engine) as db:
        db.add(
            Election(
                id="eu",
                name="Berlin",
                start_date=datetime(2024, 3, 30),
                end_date=datetime(2024, 4, 1),
                timezone="Europe/Berlin",
            )
        )
        db.flush()
        db.add(Constituency(id="B1", election_id="eu", name="Mitte", registered_voters=10))
        db.flush()
        # 00:00 UTC on 31 March is 01:00 CET; clocks jump at 01:00 UTC, so 01:00 UTC is 03:00 CEST.
        for n, hour in enumerate([datetime(2024, 3, 31, 0), datetime(2024, 3, 31, 1)], start=1):
            db.add(
                HourlyStats(
                    constituency_id="B1",
                    election_id="eu",
                    hour=hour,
                    votes_cast=n,
                    transaction_count=n,
                    cumulative_votes=n * (n + 1) // 2,
                )
            )
        db.commit()
    scope = pm.constituency_scope(engine, "B1")
    pattern = pm.hourly_activity_pattern(engine, scope).set_index("local_hour")
    assert dict(pattern[pattern["votes_cast"] > 0]["votes_cast"]) == {1: 1, 3: 2}


def test_velocity_trend_ratio_and_rolling_window(metrics_db):
    scope = pm.constituency_scope(metrics_db.engine, C1)
    trend = pm.velocity_trend(metrics_db.engine, scope, window_hours=2).set_index("hour")
    assert len(trend) == 17
    at6 = trend.loc[H(6, 6)]
    assert (at6["bulletin_velocity"], at6["vote_velocity"], at6["vote_to_bulletin_ratio"]) == (0.0833, 0.1, 1.2)
    assert (at6["rolling_vote_velocity"], at6["rolling_ratio"]) == (round(14 / 120, 4), round(14 / 15, 4))
    # The first hour's window holds only that hour.
    assert trend.loc[H(6, 5), "rolling_vote_velocity"] == round(8 / 60, 4)
    # 07:00 issued nothing: no ratio for the hour, but the window (06:00-07:00) still has one.
    assert pd.isna(trend.loc[H(6, 7), "vote_to_bulletin_ratio"]) and trend.loc[H(6, 7), "rolling_ratio"] == 1.2
    # The night hour: 4 votes, no bulletins; window 20:00-21:00 holds 2 bulletins and 6 votes.
    assert trend.loc[H(6, 21), "rolling_ratio"] == 3.0 and trend.loc[H(6, 21), "rolling_vote_velocity"] == 0.05
    ranged = pm.velocity_trend(metrics_db.engine, scope, 2, start=H(6, 20))
    assert list(ranged["hour"]) == [pd.Timestamp(H(6, 20)), pd.Timestamp(H(6, 21))]
    with pytest.raises(ValueError):
        pm.velocity_trend(metrics_db.engine, scope, window_hours=0)


def test_issued_not_voted_gap_turns_negative_with_votes_without_bulletins(metrics_db):
    gap = pm.issued_not_voted(metrics_db.engine, pm.constituency_scope(metrics_db.engine, C1)).set_index("hour")
    assert tuple(gap.loc[H(6, 5)]) == (10, 8, 2, 20.0)
    assert tuple(gap.loc[H(6, 20)]) == (17, 16, 1, round(1 / 17 * 100, 2))
    assert tuple(gap.loc[H(6, 21)]) == (17, 20, -3, round(-3 / 17 * 100, 2))


def test_scopes_and_unknown_ids(metrics_db):
    unknown = pm.find_scope(metrics_db.engine, CX)
    assert (unknown.kind, unknown.election_id, unknown.timezone, unknown.registered_voters) == (
        "constituency",
        None,
        "UTC",
        0,
    )
    series = pm.hourly_series(metrics_db.engine, unknown)
    assert list(series["participation_rate"]) == [0.0]  # nobody registered: 0, never a division error
    assert pm.find_scope(metrics_db.engine, E1).kind == "election"
    assert pm.find_scope(metrics_db.engine, C2).registered_voters == 50
    with pytest.raises(LookupError, match="no constituency or election"):
        pm.find_scope(metrics_db.engine, "nope")
    empty = pm.constituency_scope(metrics_db.engine, "CtrEastThree")
    assert pm.metrics_by_period(metrics_db.engine, empty, "day").empty
    assert pm.hourly_activity_pattern(metrics_db.engine, empty)["vote_share"].sum() == 0


def test_voters_of_a_constituency_without_registered_voters_do_not_inflate_participation(tmp_path):
    from election_pipeline.db.session import create_tables, get_engine
    from election_pipeline.stages.election_metrics import compute_election_metrics

    engine = get_engine(f"sqlite:///{tmp_path / 'z.db'}")
    create_tables(engine)
    with Session(engine) as db:
        db.add(Election(id="z", name="Z", start_date=datetime(2024, 9, 6), end_date=datetime(2024, 9, 7)))
        db.flush()
        db.add_all(
            [
                Constituency(id="Z1", election_id="z", name="Known", registered_voters=10, votes_cast=2),
                Constituency(id="Z2", election_id="z", name="No register", registered_voters=0, votes_cast=5),
            ]
        )
        db.flush()
        for cid, votes in (("Z1", 2), ("Z2", 5)):
            db.add(
                HourlyStats(
                    constituency_id=cid,
                    election_id="z",
                    hour=datetime(2024, 9, 6, 10),
                    votes_cast=votes,
                    transaction_count=votes,
                    cumulative_votes=votes,
                    timestamp=datetime(2024, 9, 6, 10, 5),
                )
            )
        db.commit()
    row = pm.hourly_series(engine, pm.election_scope(engine, "z")).iloc[0]
    assert (row["cumulative_votes"], row["participation_rate"]) == (7, 20.0)  # 2 of 10, not 7 of 10
    [figures] = compute_election_metrics(engine, THRESHOLDS.offline_after_hours)
    assert (figures["votes_cast"], figures["participation_rate"]) == (7, 20.0)
