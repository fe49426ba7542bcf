"""The job, the file sensor and the schedule. Both target the whole asset chain (and its
checks), so the blocking checks gate every run they start.

The job runs its steps in the run's own process (``in_process_executor``): they run one
after the other anyway (a chain, and the ``duckdb`` pool of limit 1, which this executor
enforces too), and a process per step would cost seconds of imports each.

The sensor's second look. Dagster's sensor daemon evaluates sensors at most every 5 s
(``MIN_INTERVAL_LOOP_TIME`` in ``dagster/_daemon/sensor.py``), whatever
``minimum_interval_seconds`` says. A file first seen in one evaluation would therefore wait
for a later evaluation before its second look. So when a look finds no file ready but some
that become due within ``SECOND_LOOK_MAX_SECONDS`` (their settle time, counted from the look
that first saw them), the same evaluation waits until then and looks once more, with the
same rule (``ingest/stability.py``: size and modification time unchanged across two looks and
for the settle time). With a settle time of 0 there is no second look in the same evaluation.
"""

import hashlib
import time
from pathlib import Path

import dagster as dg

from election_pipeline.ingest.stability import FolderState, observe
from election_pipeline.settings import Settings

JOB_NAME = "election_pipeline_job"
#: The longest a sensor evaluation waits for its second look (Dagster stops an evaluation after 60 s).
SECOND_LOOK_MAX_SECONDS = 10.0

election_pipeline_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Reference data, new export files, hourly stats, constituency metrics, alerts and their "
        "notifications, with every data-quality check, in one run."
    ),
    executor_def=dg.in_process_executor,
)


def files_run_config(names: list[str]) -> dict:
    """Run config that limits ``raw_transactions`` to the given input-folder file names."""
    return {"ops": {"raw_transactions": {"config": {"files": list(names)}}}}


def second_look_delay(state: FolderState, now: float, settle_seconds: float) -> float | None:
    """Seconds until every pending file that becomes due within ``SECOND_LOOK_MAX_SECONDS``
    is due; None when there is no such file (or the settle time is 0)."""
    if settle_seconds <= 0:
        return None
    due = [seen[2] + settle_seconds - now for seen in state.pending.values()]
    soon = [d for d in due if d <= SECOND_LOOK_MAX_SECONDS]
    return max(0.0, *soon) if soon else None


def build_sensor(input_dir: str, settle_seconds: float, interval_seconds: int) -> dg.SensorDefinition:
    second_look = (
        f" (a file first seen in a look is looked at again {settle_seconds:g} s later, in the same evaluation)"
        if 0 < settle_seconds <= SECOND_LOOK_MAX_SECONDS
        else ""
    )

    @dg.sensor(
        name="input_folder_sensor",
        job=election_pipeline_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=(
            f"Watches {input_dir} for new .csv/.zip exports. A file is handed to a run once its "
            f"size and modification time have not changed for {settle_seconds:g} s across two looks"
            f"{second_look}; *.tmp and *.part files are ignored until renamed."
        ),
    )
    def input_folder_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        state = FolderState.from_json(context.cursor)
        now = time.time()
        ready, new_state = observe(Path(input_dir), state, now, settle_seconds)
        delay = None if ready else second_look_delay(new_state, now, settle_seconds)
        if delay is not None:
            time.sleep(delay + 0.05)  # the margin: the second look must come after the settle time
            ready, new_state = observe(Path(input_dir), new_state, time.time(), settle_seconds)
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
