"""The job, the file sensor and the schedule. Both target the whole asset chain (and its
checks), so the blocking checks gate every run they start."""

import hashlib
import time
from pathlib import Path

import dagster as dg

from election_pipeline.ingest.stability import FolderState, observe
from election_pipeline.settings import Settings

JOB_NAME = "election_pipeline_job"

election_pipeline_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Reference data, new export files, hourly stats, constituency metrics and alerts, "
        "with every data-quality check, in one run."
    ),
)


def files_run_config(names: list[str]) -> dict:
    """Run config that limits ``raw_transactions`` to the given input-folder file names."""
    return {"ops": {"raw_transactions": {"config": {"files": list(names)}}}}


def build_sensor(input_dir: str, settle_seconds: float, interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="input_folder_sensor",
        job=election_pipeline_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {input_dir} for new .csv/.zip exports. A file is handed to a run once its "
            f"size and modification time have not changed for {settle_seconds:g} s across two looks; "
            "*.tmp and *.part files are ignored until renamed."
        ),
    )
    def input_folder_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = FolderState.from_json(context.cursor)
        ready, new_state = observe(Path(input_dir), state, time.time(), settle_seconds)
        if not ready:
            return dg.SensorResult(
                run_requests=[],
                cursor=new_state.to_json(),
                skip_reason=f"{len(new_state.pending)} file(s) settling, none ready",
            )
        signature = ";".join(f"{n}:{new_state.requested[n][0]}:{new_state.requested[n][1]}" for n in ready)
        run_key = "files-" + hashlib.sha256(signature.encode()).hexdigest()[:24]
        context.log.info(f"{len(ready)} file(s) ready: {', '.join(ready[:10])}{' ...' if len(ready) > 10 else ''}")
        return dg.SensorResult(
            run_requests=[
                dg.RunRequest(
                    run_key=run_key, run_config=files_run_config(ready), tags={"election/files": str(len(ready))}
                )
            ],
            cursor=new_state.to_json(),
        )

    return input_folder_sensor


def build_schedule(cron: str) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name="periodic_refresh",
        job=election_pipeline_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Re-runs the whole chain on a timer (ELECTION_SCHEDULE_CRON): picks up any settled "
            "file the sensor has not handed over and refreshes metrics and alerts even when no new file arrives."
        ),
    )


def build_automation(s: Settings) -> tuple[dg.SensorDefinition, dg.ScheduleDefinition]:
    """The file sensor and the schedule, configured from the settings."""
    return build_sensor(s.input_dir, s.file_settle_seconds, s.sensor_interval_seconds), build_schedule(s.schedule_cron)
