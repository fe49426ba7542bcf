"""The Dagster code location: assets, checks, job, sensor, schedule and resources.

Everything is built elsewhere; this module only assembles it (``dagster dev`` and
``election-pipeline run`` load it).
"""


import dagster as dg

from election_pipeline.defs.assets import alerts, constituency_metrics, hourly_stats, raw_transactions, reference_data
from election_pipeline.defs.automation import build_automation, election_pipeline_job
from election_pipeline.defs.checks import ALL_CHECKS
from election_pipeline.defs.resources import build_resources


def build_definitions() -> dg.Definitions:
    sensor, schedule = build_automation()
    return dg.Definitions(
        assets=[reference_data, raw_transactions, hourly_stats, constituency_metrics, alerts],
        asset_checks=ALL_CHECKS,
        jobs=[election_pipeline_job],
        sensors=[sensor],
        schedules=[schedule],
        resources=build_resources(),
    )


defs = build_definitions()
