"""The retention job and its schedule: the data retention policy (docs/data-model.md#retention; see
``stages/retention.py``), applied every night (``ELECTION_RETENTION_CRON``) with the periods
of the ``ELECTION_RETAIN_*`` settings. Each run reports what it removed."""

import dagster as dg

from election_pipeline.settings import Settings
from election_pipeline.stages.retention import RetentionPolicy, apply_retention
from election_pipeline.workspaces import SHARED, WORKSPACE_TAG, all_workspaces, shared_workspace

from .metadata import preview
from .resources import OperationalDatabaseResource, WarehouseResource
from .retries import DB_RETRY_POLICY, permanent_db_errors_fail

DUCKDB_POOL = "duckdb"
RETENTION_JOB = "retention_job"


class RetentionConfig(dg.Config):
    """Periods in days; empty: the ``ELECTION_RETAIN_*`` settings."""

    transactions_days: int | None = None
    hourly_days: int | None = None
    file_jobs_days: int | None = None


def build_retention(s: Settings) -> tuple[dg.JobDefinition, dg.ScheduleDefinition]:
    default = RetentionPolicy(s.retain_transactions_days, s.retain_hourly_days, s.retain_file_jobs_days)

    @dg.op(
        name="apply_retention_policy",
        pool=DUCKDB_POOL,
        retry_policy=DB_RETRY_POLICY,
        out=dg.Out(int, description="rows removed"),
    )
    @permanent_db_errors_fail
    def apply_retention_policy(
        context: dg.OpExecutionContext,
        config: RetentionConfig,
        warehouse: WarehouseResource,
        ops_db: OperationalDatabaseResource,
    ) -> dg.Output[int]:
        """Removes transactions of elections that ended more than the transaction period ago
        (from the operational database and the DuckDB store; their figures stay), hourly
        statistics older than the hourly period (of those constituencies), and finished file
        processing jobs older than the job period with the rejected lines they recorded.
        Alerts, elections, constituencies and the file ledger are kept forever."""
        policy = RetentionPolicy(
            config.transactions_days if config.transactions_days is not None else default.transactions_days,
            config.hourly_days if config.hourly_days is not None else default.hourly_days,
            config.file_jobs_days if config.file_jobs_days is not None else default.file_jobs_days,
        )
        engine = ops_db.engine()
        with warehouse.connect() as duck:
            report = apply_retention(duck, engine, policy)
        for line in report.lines():
            context.log.info(line)
        return dg.Output(
            report.total_removed,
            metadata={
                "removed_total": report.total_removed,
                **{f"removed {name}": n for name, n in report.removed.items()},
                "retired_constituencies": len(report.retired_constituencies),
                "removed": preview(["data", "rows removed"], sorted(report.removed.items())),
                "cutoffs": preview(["rule", "cut-off (UTC)"], [(k, v) for k, v in report.cutoffs.items()]),
                "kept_on_purpose": preview(["data", "rows"], [(k, v) for k, v in report.kept.items()]),
                "policy_days": f"transactions {policy.transactions_days} after the election, hourly "
                f"{policy.hourly_days}, file jobs {policy.file_jobs_days}",
            },
        )

    @dg.job(
        name=RETENTION_JOB,
        description=(
            "Applies the data retention policy to one workspace's store (the shared one, or the election its run "
            "tag election/workspace names): transactions kept for the election plus "
            f"{default.transactions_days} days, hourly statistics {default.hourly_days} days, file jobs "
            f"{default.file_jobs_days} days, alerts forever."
        ),
        tags={WORKSPACE_TAG: SHARED},
    )
    def retention_job() -> None:
        apply_retention_policy()

    @dg.schedule(
        name="retention_schedule",
        job=retention_job,
        cron_schedule=s.retention_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Runs {RETENTION_JOB} on ELECTION_RETENTION_CRON ({s.retention_cron}, UTC), once per workspace.",
    )
    def retention_schedule(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        stamp = context.scheduled_execution_time.isoformat()
        workspaces = all_workspaces(shared_workspace(s), s.elections_dir)
        return [dg.RunRequest(run_key=f"{ws.tag}:{stamp}", tags={WORKSPACE_TAG: ws.tag}) for ws in workspaces]

    return retention_job, retention_schedule
