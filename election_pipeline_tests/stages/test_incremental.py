"""Small increments: only the constituencies that changed are recomputed, and the published
figures are still exactly those of a computation over the whole history.

Real DuckDB and operational database files in a temporary folder; the real ingest, stages
and checks. "A full recompute" is :func:`figure_cache.rebuild` (every stored figure computed
again from the raw transactions) followed by the same stages: it must change nothing.
"""

from __future__ import annotations

import pytest
from sqlalchemy import select, text

from election_pipeline.analytics import change_log, figure_cache
from election_pipeline.analytics.aggregation import (
    constituency_totals,
    constituency_totals_from_raw,
    hourly_figures,
    hourly_figures_from_raw,
)
from election_pipeline.db.models import Constituency, HourlyStats
from election_pipeline.stages import quality
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.metrics import publish_metrics

from ..builders import THRESHOLDS
from .conftest import C1, C2, C3, at, bsi, file_name, hour, rollback_of, vote

#: Minutes between the checks' full passes (ELECTION_FULL_CHECK_EVERY_MINUTES).
EVERY = 60.0

B2 = bsi("B2", at(8, 1), 2)
V2 = vote("V2", at(8, 5), "K2")


def first_election(ws) -> None:
    ws.write_reference(
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,10,active", f"{C2},E1,South,R1,rural,20,active", f"{C3},E1,East,R1,rural,30,active"],
    )
    ws.drop(file_name(C1, 8), [bsi("B1", at(8, 1), 2), vote("V1", at(8, 5), "K1")])
    ws.drop(file_name(C2, 8), [B2, V2, vote("V3", at(8, 7), "K3")])
    ws.drop(file_name(C3, 8), [bsi("B3", at(8, 2), 1), vote("V4", at(8, 9), "K4")])
    ws.run()


def published(ws) -> tuple[list[tuple], list[tuple]]:
    """Every published figure: hourly rows and constituency rows."""
    with ws.engine.connect() as conn:
        hours = conn.execute(
            select(
                HourlyStats.constituency_id,
                HourlyStats.hour,
                HourlyStats.election_id,
                HourlyStats.timestamp,
                HourlyStats.bulletins_issued,
                HourlyStats.votes_cast,
                HourlyStats.revote_count,
                HourlyStats.rejected_count,
                HourlyStats.transaction_count,
                HourlyStats.cumulative_bulletins,
                HourlyStats.cumulative_votes,
                HourlyStats.participation_rate,
                HourlyStats.anomaly_count,
            ).order_by(HourlyStats.constituency_id, HourlyStats.hour)
        ).all()
        places = conn.execute(
            select(
                Constituency.id,
                Constituency.bulletins_issued,
                Constituency.votes_cast,
                Constituency.revote_count,
                Constituency.transaction_count,
                Constituency.rejected_count,
                Constituency.participation_rate,
                Constituency.registered_voters,
                Constituency.anomaly_score,
            ).order_by(Constituency.id)
        ).all()
    return [tuple(r) for r in hours], [tuple(r) for r in places]


def assert_equal_to_full_recompute(ws) -> None:
    """The stored figures equal the raw store's, and a full recompute publishes nothing new."""
    assert hourly_figures(ws.duck).equals(hourly_figures_from_raw(ws.duck))
    assert constituency_totals(ws.duck).equals(constituency_totals_from_raw(ws.duck))
    before = published(ws)
    figure_cache.rebuild(ws.duck)
    hourly = publish_hourly_stats(ws.duck, ws.engine)
    publish_metrics(ws.duck, ws.engine, THRESHOLDS)
    assert (hourly.inserted, hourly.updated, hourly.deleted) == (0, 0, 0)
    assert published(ws) == before


def test_an_increment_recomputes_only_the_changed_constituency(ws):
    first_election(ws)
    ws.drop(file_name(C2, 9), [vote("V5", at(9, 10), "K5"), vote("V6", at(9, 11), "K2")])  # a voter and a revote
    ws.ingest()

    refreshed = figure_cache.refresh(ws.duck)
    assert not refreshed.full and refreshed.changed == [C2]
    assert figure_cache.refresh(ws.duck).changed == []  # nothing new since

    ws.publish()
    assert ws.hourly_figures(C2, "votes_cast", "revote_count", "transaction_count") == {
        hour(8): (2, 0, 3),
        hour(9): (1, 1, 2),
    }
    assert_equal_to_full_recompute(ws)

    # The checks look at every constituency once, then at the changed one only.
    checks = (
        quality.no_transaction_counted_twice,
        quality.hourly_totals_reconcile,
        quality.every_transaction_in_a_known_hour,
    )
    for check in checks:
        assert check(ws.duck, ws.engine, full_every_minutes=EVERY).figures["scope"] == "all constituencies"
    ws.drop(file_name(C3, 9), [vote("V7", at(9, 20), "K7")])
    ws.run()
    for check in checks:
        result = check(ws.duck, ws.engine, full_every_minutes=EVERY)
        assert result.passed, result
        assert result.figures["scope"] == "constituencies changed since the last pass: 1"
    assert (
        quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY, full=True).figures["scope"]
        == "all constituencies"
    )


def test_the_ingest_logs_what_it_changed_in_the_same_transaction(ws):
    """The ingest writes the change log itself (one entry per group of files, in the
    transaction that writes the rows), so the readers' catch-up finds nothing left to scan for; a rollback line logs
    the constituency of the transaction it cancels."""
    first_election(ws)
    seq = change_log.catch_up(ws.duck)

    ws.drop(file_name(C3, 9), [vote("V7", at(9, 20), "K7")])
    assert ws.ingest().count("completed") == 1
    assert change_log.last_seq(ws.duck) == seq + 1
    assert change_log.changed_since(ws.duck, seq, seq + 1) == [C3]

    ws.drop(file_name(C1, 9), [vote("V8", at(9, 3), "K8"), rollback_of(V2)])
    ws.drop(file_name(C1, 10), [vote("V9", at(10, 3), "K9")])
    assert ws.ingest().count("completed") == 2
    assert change_log.last_seq(ws.duck) == seq + 2  # one group, one entry
    assert change_log.changed_since(ws.duck, seq + 1, seq + 2) == [C1, C2]

    logged = {r[0] for r in ws.duck.execute("SELECT file_hash FROM change_log_files").fetchall()}
    assert logged == {r[0] for r in ws.duck.execute("SELECT file_hash FROM raw_files").fetchall()}
    assert change_log.catch_up(ws.duck) == seq + 2  # nothing unlogged, nothing unaccounted for


def test_a_rollback_of_another_constituencys_transaction_is_counted(ws):
    """A file of C1 carries the rollback of a C2 transaction: C2 is recomputed too."""
    first_election(ws)
    ws.drop(file_name(C1, 9), [vote("V8", at(9, 3), "K8"), rollback_of(V2)])
    ws.ingest()

    assert figure_cache.refresh(ws.duck).changed == [C1, C2]
    ws.publish()
    assert ws.hourly_figures(C2, "votes_cast", "transaction_count") == {hour(8): (1, 2)}
    assert ws.constituency(C2)["votes_cast"] == 1
    assert_equal_to_full_recompute(ws)
    assert quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY).passed


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the crash is a SQLite trigger
def test_a_crash_after_the_stored_figures_moved_on_is_repaired_by_the_next_run(ws):
    """Crash point: the stored figures of the raw store were brought up to date (their mark
    moved on), then publishing the hourly table failed. The next run publishes the changed
    constituency anyway: the stages compare every stored figure with what is published."""
    first_election(ws)
    ws.drop(file_name(C3, 10), [vote("V9", at(10, 30), "K9")])
    ws.ingest()
    with ws.engine.begin() as conn:
        conn.execute(
            text(
                "CREATE TRIGGER simulated_crash BEFORE INSERT ON hourly_stats "
                "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
            )
        )
    with pytest.raises(Exception, match="simulated crash"):
        publish_hourly_stats(ws.duck, ws.engine)
    assert change_log.mark_of(ws.duck, figure_cache.MARK) == change_log.last_seq(ws.duck)
    ws.reopen_duck()
    with ws.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER simulated_crash"))

    ws.publish()
    assert ws.hourly_figures(C3, "votes_cast") == {hour(8): (1,), hour(10): (1,)}
    assert_equal_to_full_recompute(ws)
    assert quality.every_transaction_in_a_known_hour(ws.duck, ws.engine, full_every_minutes=EVERY).passed


def test_a_failed_check_keeps_looking_at_the_same_constituencies(ws):
    first_election(ws)
    assert quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY).passed  # first run: everything
    ws.drop(file_name(C1, 11), [vote("V10", at(11, 30), "K10")])
    ws.ingest()  # ingested, but the hourly table is not published: the check must fail
    assert not quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY).passed
    assert not quality.hourly_totals_reconcile(
        ws.duck, ws.engine, full_every_minutes=EVERY
    ).passed  # still C1, not "nothing new"
    ws.publish()
    assert quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY).passed


def test_a_change_made_by_hand_to_an_unchanged_constituency_is_found_by_the_next_full_pass(ws):
    """Between full passes the checks look at the changed constituencies only; once the last
    full pass is older than ELECTION_FULL_CHECK_EVERY_MINUTES they look at every one again."""
    first_election(ws)
    assert (
        quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY).figures["scope"]
        == "all constituencies"
    )
    with ws.engine.begin() as conn:  # C3 edited by hand, no new data for it
        conn.execute(text("UPDATE hourly_stats SET votes_cast = votes_cast + 5 WHERE constituency_id = :c"), {"c": C3})
    between = quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY)
    assert between.passed and between.figures["scope"] == "constituencies changed since the last pass: 0"

    ws.duck.execute(
        "UPDATE change_marks SET updated_at = updated_at - INTERVAL 61 MINUTE "
        "WHERE name = 'check:hourly_totals_reconcile:full'"
    )
    due = quality.hourly_totals_reconcile(ws.duck, ws.engine, full_every_minutes=EVERY)
    assert not due.passed and due.figures["scope"] == "all constituencies"


def test_rows_written_without_the_log_make_everything_change(ws):
    """A row the change log cannot account for (written by hand) is not missed."""
    first_election(ws)
    figure_cache.refresh(ws.duck)
    ws.duck.execute("DELETE FROM raw_transactions WHERE tx_id = 'V4'")
    assert figure_cache.refresh(ws.duck).changed == sorted([C1, C2, C3])
    assert ws.duck.execute("SELECT votes_cast FROM cached_totals WHERE constituency_id = ?", [C3]).fetchall() == [(0,)]
