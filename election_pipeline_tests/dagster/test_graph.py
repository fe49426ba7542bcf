"""The whole asset graph, materialised with real DuckDB, a real Dagster instance and the
operational database on SQLite and on PostgreSQL (``db_url``)."""

import dagster as dg
import duckdb
from sqlalchemy import select

from election_pipeline.db.models import Alert, Constituency, FileProcessingJob
from election_pipeline.db.session import get_engine
from election_pipeline.defs.assets import (
    alerts,
    constituency_metrics,
    hourly_stats,
    operational_transactions,
    raw_transactions,
    reference_data,
)
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.resources import build_resources
from election_pipeline_tests.builders import CONTRACT_A, CONTRACT_B
from election_pipeline_tests.scenario import EXPECTED_HOURLY, drop_all, hourly_figures

ASSETS = [
    reference_data,
    raw_transactions,
    hourly_stats,
    constituency_metrics,
    alerts,
    operational_transactions,
    *ALL_CHECKS,
]


def _materialize(ws, instance, db_url):
    return dg.materialize(
        ASSETS, resources=build_resources(ws.settings(database_url=db_url)), instance=instance, raise_on_error=False
    )


def test_whole_graph_gives_exact_figures_and_is_idempotent(workspace, instance, db_url):
    drop_all(workspace)
    result = _materialize(workspace, instance, db_url)
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["no_transaction_counted_twice"] and checks["hourly_totals_reconcile"]
    assert checks["every_transaction_in_a_known_hour"]

    engine = get_engine(db_url)
    assert hourly_figures(engine) == EXPECTED_HOURLY
    with engine.connect() as conn:
        a = conn.execute(select(Constituency).where(Constituency.id == CONTRACT_A)).mappings().one()
        b = conn.execute(select(Constituency).where(Constituency.id == CONTRACT_B)).mappings().one()
        critical = conn.execute(select(Alert.type, Alert.constituency_id).where(Alert.severity == "critical")).all()
        jobs = conn.execute(select(FileProcessingJob.status)).scalars().all()
    # A: bulletins 3 + 2 = 5, voters v1 v2 v3 = 3, 3/10 -> 30 %
    assert (a["bulletins_issued"], a["votes_cast"], a["revote_count"], a["participation_rate"]) == (5, 3, 1, 30.0)
    # B: 3 voters for 1 bulletin -> critical, score 1; 3/4 -> 75 %
    assert (b["votes_cast"], b["participation_rate"], b["anomaly_score"]) == (3, 75.0, 1.0)
    assert ("votes_exceed_bulletins", CONTRACT_B) in critical
    assert ("votes_exceed_bulletins", CONTRACT_A) not in critical
    assert sorted(jobs) == ["completed"] * 3
    assert list(workspace.input.iterdir()) == []
    assert len(list((workspace.root / "processed").iterdir())) == 3

    with engine.connect() as conn:
        before_alerts = conn.execute(select(Alert.id, Alert.status, Alert.details)).all()
    again = _materialize(workspace, instance, db_url)
    assert again.success
    assert hourly_figures(engine) == EXPECTED_HOURLY
    with engine.connect() as conn:
        assert conn.execute(select(Alert.id, Alert.status, Alert.details)).all() == before_alerts
    hourly_meta = again.asset_materializations_for_node("hourly_stats")[0].metadata
    assert hourly_meta["inserted"].value == 0 and hourly_meta["updated"].value == 0


def test_failing_blocking_check_stops_downstream_assets(workspace, instance, db_url, monkeypatch):
    # The tampered constituency has no new data: only a full pass (not the check of the
    # constituencies changed since the last pass) compares it again.
    monkeypatch.setenv("ELECTION_FULL_CHECK_EVERY_MINUTES", "0")
    drop_all(workspace)
    assert _materialize(workspace, instance, db_url).success
    engine = get_engine(db_url)
    with engine.connect() as conn:
        alerts_before = conn.execute(select(Alert.id, Alert.status, Alert.details)).all()
    # The stored figures of the raw store are corrupted (two votes more in A's hours): the
    # hourly table published from them no longer adds up to the raw transactions.
    duck = duckdb.connect(workspace.settings().duckdb_path)
    try:
        duck.execute("UPDATE cached_hourly SET votes_cast = votes_cast + 2 WHERE constituency_id = ?", [CONTRACT_A])
    finally:
        duck.close()
    result = _materialize(workspace, instance, db_url)
    assert not result.success
    evaluations = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert evaluations["hourly_totals_reconcile"] is False
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "hourly_stats" in materialized
    assert not materialized & {"constituency_metrics", "alerts", "operational_transactions"}
    with engine.connect() as conn:  # nothing built on the inconsistent figures reached the alerts
        assert conn.execute(select(Alert.id, Alert.status, Alert.details)).all() == alerts_before
