"""The Dagster code location: assets, checks, job, sensor, schedule and resources.

Everything is built elsewhere; this module only assembles it (``dagster dev`` and
``election-pipeline run`` load it).
"""

import dagster as dg

from election_pipeline.defs.assets import (
    alerts,
    constituency_metrics,
    hourly_stats,
    operational_transactions,
    raw_transactions,
    reference_data,
)
from election_pipeline.defs.automation import build_automation, election_pipeline_job
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.notify_assets import alert_notifications
from election_pipeline.defs.report_assets import election_metrics, election_report
from election_pipeline.defs.resources import build_resources
from election_pipeline.defs.retention import build_retention
from election_pipeline.settings import Settings, load_settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    """Every definition, configured from ``settings`` (by default, the environment)."""
    s = settings or load_settings()
    sensor, schedule = build_automation(s)
    retention_job, retention_schedule = build_retention(s)
    return dg.Definitions(
        assets=[
            reference_data,
            raw_transactions,
            hourly_stats,
            constituency_metrics,
            alerts,
            alert_notifications,
            operational_transactions,
            election_metrics,
            election_report,
        ],
        asset_checks=ALL_CHECKS,
        jobs=[election_pipeline_job, retention_job],
        sensors=[sensor],
        schedules=[schedule, retention_schedule],
        resources=build_resources(s),
        # One process per run: the steps run one after the other anyway (a chain), and a
        # process per step costs seconds of start-up each.
        executor=dg.in_process_executor,
    )


defs = build_definitions()
