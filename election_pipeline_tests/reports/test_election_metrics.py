"""Election-level metrics and the dashboard summary, against figures computed by hand from
conftest.py, persisted into ``election_metrics`` without rewriting unchanged rows, on SQLite
and on PostgreSQL."""

from datetime import datetime

import pytest
from sqlalchemy import select, update

from election_pipeline.db.models import Alert, Election, ElectionMetrics
from election_pipeline.stages.election_metrics import (
    dashboard_summary,
    publish_election_metrics,
    stored_election_metrics,
)
from election_pipeline_tests.builders import THRESHOLDS

from .conftest import C1, C2, E1, H


def test_election_figures_are_persisted_with_constituency_states_and_alerts(metrics_db_any):
    engine = metrics_db_any.engine
    with pytest.raises(LookupError, match="no metrics yet"):
        stored_election_metrics(engine, E1)
    result = publish_election_metrics(engine, offline_after_hours=2)
    assert (result.inserted, result.updated, result.total_constituencies_fixed) == (1, 0, 1)

    row = stored_election_metrics(engine, E1)
    assert {
        k: row[k]
        for k in (
            "total_constituencies",
            "constituencies_reporting",
            "constituencies_offline",
            "constituencies_with_critical_alerts",
            "registered_voters",
            "bulletins_issued",
            "votes_cast",
            "revote_count",
            "rejected_count",
            "transaction_count",
            "participation_rate",
            "issued_not_voted",
            "first_activity",
            "last_activity",
            "open_alerts_critical",
            "open_alerts_warning",
            "open_alerts_info",
        )
    } == {
        # C1 reported at 21:30, the election's latest transaction: reporting. C2 fell silent at 07:40,
        # more than 2 h before: offline. C4 is marked offline; C3 never reported.
        "total_constituencies": 4,
        "constituencies_reporting": 1,
        "constituencies_offline": 2,
        # C2's critical alert is resolved: only C1 counts.
        "constituencies_with_critical_alerts": 1,
        "registered_voters": 200,
        "bulletins_issued": 23,
        "votes_cast": 25,
        "revote_count": 1,
        "rejected_count": 1,
        "transaction_count": 51,
        "participation_rate": 12.5,
        "issued_not_voted": -2,
        "first_activity": H(6, 5),
        "last_activity": H(6, 21, 30),
        "open_alerts_critical": 1,
        "open_alerts_warning": 1,
        "open_alerts_info": 1,
    }
    summary = row["summary"]
    assert summary["constituencies"] == {
        "total": 4,
        "reporting": 1,
        "offline": 2,
        "never_reported": 1,
        "with_critical_alerts": 1,
    }
    assert summary["as_of"] == "2024-09-06T21:30:00"
    assert summary["offline_constituencies"] == ["CtrSouthTwo", "CtrWestFour"]
    assert summary["constituencies_with_critical_alerts"] == [C1]
    assert summary["open_alerts_by_rule"] == {"late_file": 1, "unusual_spike": 1, "votes_exceed_bulletins": 1}
    assert [c["id"] for c in summary["most_anomalous"]] == [C1, C2]
    assert summary["participation"]["median_constituency"] == 5.0  # median of 0, 0, 10, 20
    assert [c["id"] for c in summary["participation"]["lowest"][:2]] == ["CtrEastThree", "CtrWestFour"]
    assert summary["peak_hour"] == {"hour": "2024-09-06T05:00:00", "votes_cast": 12, "vote_velocity": 0.2}
    assert summary["latest_hour"]["hour"] == "2024-09-06T21:00:00" and summary["latest_hour"]["votes_cast"] == 4
    shares = summary["vote_share_by_local_hour"]
    assert len(shares) == 24 and shares[8] == 48.0 and sum(shares) == pytest.approx(100.0)  # 12 of 25 at 08 local
    with engine.connect() as conn:
        assert conn.execute(select(Election.total_constituencies).where(Election.id == E1)).scalar_one() == 4


def test_a_longer_offline_threshold_keeps_a_quiet_constituency_reporting(metrics_db_any):
    rows = publish_election_metrics(metrics_db_any.engine, offline_after_hours=15).rows
    assert (rows[0]["constituencies_reporting"], rows[0]["constituencies_offline"]) == (2, 1)
    with pytest.raises(ValueError):
        publish_election_metrics(metrics_db_any.engine, offline_after_hours=0)


def test_rerun_writes_nothing_and_a_change_updates_the_row(metrics_db_any):
    engine = metrics_db_any.engine
    publish_election_metrics(engine, THRESHOLDS.offline_after_hours)
    with engine.connect() as conn:
        stamp = conn.execute(select(ElectionMetrics.updated_at)).scalar_one()
    again = publish_election_metrics(engine, THRESHOLDS.offline_after_hours)
    assert (again.inserted, again.updated, again.unchanged, again.total_constituencies_fixed) == (0, 0, 1, 0)
    with engine.connect() as conn:
        assert conn.execute(select(ElectionMetrics.updated_at)).scalar_one() == stamp

    with engine.begin() as conn:  # the analyst resolves C1's critical alert
        conn.execute(
            update(Alert)
            .where(Alert.constituency_id == C1, Alert.severity == "critical")
            .values(status="resolved", resolved_at=datetime(2024, 9, 7))
        )
    changed = publish_election_metrics(engine, THRESHOLDS.offline_after_hours)
    assert (changed.updated, changed.unchanged) == (1, 0)
    row = stored_election_metrics(engine, E1)
    assert (row["open_alerts_critical"], row["constituencies_with_critical_alerts"]) == (0, 0)


def test_dashboard_summary_covers_every_election_and_unknown_contracts(metrics_db_any):
    engine = metrics_db_any.engine
    publish_election_metrics(engine, THRESHOLDS.offline_after_hours)
    dash = dashboard_summary(engine)
    assert (dash["elections"], dash["constituencies"], dash["unknown_constituencies"]) == (1, 5, 1)
    assert (dash["registered_voters"], dash["bulletins_issued"], dash["votes_cast"]) == (200, 26, 28)
    assert dash["participation_rate"] == 12.5  # CX has no registered voters: its 3 voters do not count
    assert dash["open_alerts"] == {"critical": 1, "warning": 2, "info": 1}
    assert dash["alerts_by_status"] == {"active": 3, "investigating": 1, "resolved": 1}
    assert dash["per_election"] == [
        {
            "id": E1,
            "name": "Test election",
            "status": "active",
            "participation_rate": 12.5,
            "constituencies": 4,
            "reporting": 1,
            "offline": 2,
            "open_critical_alerts": 1,
        }
    ]
    with pytest.raises(LookupError, match="no election"):
        stored_election_metrics(engine, "nope")
