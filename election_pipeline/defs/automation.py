"""The job, the file sensor and the schedule. Both target the whole asset chain (and its
checks), so the blocking checks gate every run they start. Both ask one run per workspace
(the shared one and every election's own: ``election_pipeline/workspaces.py``), tagged
``election/workspace``; the instance runs one run per value of that tag at a time.

The job runs its steps in the run's own process (``in_process_executor``): they run one
after the other anyway (a chain), and a process per step would cost seconds of imports each.

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
import json
import time
from pathlib import Path

import dagster as dg

from election_pipeline.ingest.stability import FolderState, observe
from election_pipeline.settings import Settings
from election_pipeline.workspaces import SHARED, WORKSPACE_TAG, Workspace, all_workspaces, shared_workspace

JOB_NAME = "election_pipeline_job"
#: The longest a sensor evaluation waits for its second look (Dagster stops an evaluation after 60 s).
SECOND_LOOK_MAX_SECONDS = 10.0

election_pipeline_job = dg.define_asset_job(
    JOB_NAME,
    selection=dg.AssetSelection.all(),
    description=(
        "Reference data, new export files, hourly stats, constituency metrics, alerts and their "
        "notifications, with every data-quality check, in one run, for one workspace: the shared one, or the "
        "election its run tag election/workspace names (docs/architecture.md#several-elections-at-once)."
    ),
    executor_def=dg.in_process_executor,
    tags={WORKSPACE_TAG: SHARED},
)


def workspaces_of(s: Settings) -> list[Workspace]:
    """The shared workspace, then every election's own (``ELECTION_ELECTIONS_DIR``), as the
    sensor and the schedule see them when they are evaluated."""
    return all_workspaces(shared_workspace(s), s.elections_dir)


def _drop_folders(input_dir: str, elections_dir: str) -> list[Workspace]:
    """What the sensor watches: the shared drop folder and every election workspace's."""
    return all_workspaces(Workspace(None, Path(input_dir), Path(), Path(), Path()), elections_dir)


class SensorCursor:
    """The sensor's memory: one :class:`FolderState` per workspace (by its tag). A cursor
    written before workspaces existed (one folder's state) is the shared workspace's."""

    def __init__(self, states: dict[str, FolderState]) -> None:
        self.states = states

    @classmethod
    def from_json(cls, text: str | None) -> "SensorCursor":
        try:
            data = json.loads(text) if text else {}
        except ValueError:
            data = {}
        if not isinstance(data, dict):
            return cls({})
        if "workspaces" not in data:  # the cursor of a single drop folder
            return cls({SHARED: FolderState.from_json(text)} if text else {})
        folders = data["workspaces"] if isinstance(data["workspaces"], dict) else {}
        return cls({tag: FolderState.from_json(json.dumps(state)) for tag, state in folders.items()})

    def to_json(self) -> str:
        return json.dumps(
            {"workspaces": {tag: json.loads(st.to_json()) for tag, st in sorted(self.states.items())}},
            sort_keys=True,
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


def build_sensor(
    input_dir: str, settle_seconds: float, interval_seconds: int, elections_dir: str = ""
) -> dg.SensorDefinition:
    """The file sensor: one run per workspace whose drop folder holds files that became ready
    (tagged with the workspace, so the run queue runs one run per workspace at a time)."""
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
            f"Watches {input_dir}, and the input/ folder of every election workspace in {elections_dir or '-'}, "
            f"for new exports, archives and block dumps. A file is handed to a run of its workspace once its "
            f"size and modification time have not changed for {settle_seconds:g} s across two looks"
            f"{second_look}; *.tmp and *.part files are ignored until renamed."
        ),
    )
    def input_folder_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        cursor = SensorCursor.from_json(context.cursor)
        workspaces = _drop_folders(input_dir, elections_dir)
        states = {ws.tag: cursor.states.get(ws.tag, FolderState()) for ws in workspaces}
        now = time.time()
        ready: dict[str, list[str]] = {}
        for ws in workspaces:
            ready[ws.tag], states[ws.tag] = observe(ws.input_dir, states[ws.tag], now, settle_seconds)
        if not any(ready.values()):
            delays = [d for st in states.values() if (d := second_look_delay(st, now, settle_seconds)) is not None]
            if delays:
                time.sleep(max(delays) + 0.05)  # the margin: the second look must come after the settle time
                for ws in workspaces:
                    ready[ws.tag], states[ws.tag] = observe(ws.input_dir, states[ws.tag], time.time(), settle_seconds)
        new_cursor = SensorCursor(states).to_json()
        requests = []
        for ws in workspaces:
            names = ready[ws.tag]
            if not names:
                continue
            state = states[ws.tag]
            signature = ws.tag + "|" + ";".join(f"{n}:{state.requested[n][0]}:{state.requested[n][1]}" for n in names)
            run_key = "files-" + hashlib.sha256(signature.encode()).hexdigest()[:24]
            context.log.info(
                f"{ws.label}: {len(names)} file(s) ready: {', '.join(names[:10])}{' ...' if len(names) > 10 else ''}"
            )
            requests.append(
                dg.RunRequest(
                    run_key=run_key,
                    run_config=files_run_config(names),
                    tags={WORKSPACE_TAG: ws.tag, "election/files": str(len(names))},
                )
            )
        if not requests:
            pending = sum(len(st.pending) for st in states.values())
            return dg.SensorResult(
                run_requests=[], cursor=new_cursor, skip_reason=f"{pending} file(s) settling, none ready"
            )
        return dg.SensorResult(run_requests=requests, cursor=new_cursor)

    return input_folder_sensor


def build_schedule(settings: Settings) -> dg.ScheduleDefinition:
    """The periodic refresh: one run per workspace (the shared one and every election's)."""

    @dg.schedule(
        name="periodic_refresh",
        job=election_pipeline_job,
        cron_schedule=settings.schedule_cron,
        execution_timezone="UTC",
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=(
            "Re-runs the whole chain on a timer (ELECTION_SCHEDULE_CRON), one run per workspace (the shared one "
            "and every election's): picks up any settled file the sensor has not handed over and refreshes metrics "
            "and alerts even when no new file arrives."
        ),
    )
    def periodic_refresh(context: dg.ScheduleEvaluationContext) -> list[dg.RunRequest]:
        stamp = context.scheduled_execution_time.isoformat()
        return [
            dg.RunRequest(run_key=f"{ws.tag}:{stamp}", tags={WORKSPACE_TAG: ws.tag}) for ws in workspaces_of(settings)
        ]

    return periodic_refresh


def build_automation(s: Settings) -> tuple[dg.SensorDefinition, dg.ScheduleDefinition]:
    """The file sensor and the schedule, configured from the settings."""
    return (
        build_sensor(s.input_dir, s.file_settle_seconds, s.sensor_interval_seconds, s.elections_dir),
        build_schedule(s),
    )
