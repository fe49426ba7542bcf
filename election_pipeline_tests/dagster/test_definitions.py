"""The code location loads, and its graph, checks and automation are what observers rely on."""

import dagster as dg

from election_pipeline.definitions import defs

PIPELINE_ASSETS = {
    "reference_data",
    "raw_transactions",
    "hourly_stats",
    "constituency_metrics",
    "alerts",
    "alert_notifications",
    "operational_transactions",
}
REPORT_ASSETS = {"election_metrics", "election_report"}


def test_definitions_load_with_the_four_layers_and_their_lineage():
    graph = defs.resolve_asset_graph()
    keys = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert keys == PIPELINE_ASSETS | REPORT_ASSETS
    parents = {
        k.to_user_string(): {p.to_user_string() for p in graph.get(k).parent_keys} for k in graph.get_all_asset_keys()
    }
    assert parents == {
        "reference_data": set(),
        "raw_transactions": {"reference_data"},
        "hourly_stats": {"raw_transactions"},
        "constituency_metrics": {"hourly_stats"},
        "alerts": {"constituency_metrics"},
        # People are told about new alerts in the same run.
        "alert_notifications": {"alerts"},
        # The per-transaction rows follow the alerts (observers read alerts first).
        "operational_transactions": {"raw_transactions", "alerts"},
        # What observers read: election-level figures, then the charts and the HTML report.
        "election_metrics": {"constituency_metrics", "alerts"},
        "election_report": {"election_metrics"},
    }


def test_checks_gate_where_bad_data_must_not_flow():
    checks = {}
    for cdef in [*(defs.asset_checks or []), *(defs.assets or [])]:  # some checks run inside their asset's step
        assert isinstance(cdef, dg.AssetChecksDefinition | dg.AssetsDefinition)
        for spec in cdef.check_specs:
            checks[(spec.asset_key.to_user_string(), spec.name)] = spec.blocking
    assert checks == {
        ("operational_transactions", "no_transaction_counted_twice"): True,
        ("operational_transactions", "timestamps_within_voting_window"): False,
        ("hourly_stats", "hourly_totals_reconcile"): True,
        ("hourly_stats", "every_transaction_in_a_known_hour"): True,
        ("constituency_metrics", "participation_at_most_100_percent"): False,
        ("raw_transactions", "block_heights_contiguous"): False,
    }


def test_duckdb_steps_share_one_pool():
    pools = {}
    for a in defs.assets or []:
        assert isinstance(a, dg.AssetsDefinition)
        pools[a.key.to_user_string()] = a.op.pool
    assert (
        pools["raw_transactions"]
        == pools["hourly_stats"]
        == pools["constituency_metrics"]
        == pools["operational_transactions"]
        == "duckdb"
    )


def test_sensor_and_schedule_run_by_default_and_target_the_whole_chain():
    sensor = defs.resolve_sensor_def("input_folder_sensor")
    schedule = defs.resolve_schedule_def("periodic_refresh")
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    job = defs.resolve_job_def("election_pipeline_job")
    assert sensor.job_name == schedule.job_name == job.name
    selected = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    assert selected == PIPELINE_ASSETS | REPORT_ASSETS
