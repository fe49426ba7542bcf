"""End to end, as a user drives it: files dropped into a folder, the sensor fires, its run
request executes on a real instance, and the database holds the exact figures."""

import dagster as dg
from sqlalchemy import func, select

from election_pipeline.db.models import FileProcessingJob, RejectedRow, Transaction
from election_pipeline.db.session import get_engine
from election_pipeline.definitions import defs
from election_pipeline.defs.automation import build_sensor, election_pipeline_job
from election_pipeline.defs.resources import build_resources
from election_pipeline_tests.builders import CONTRACT_A, CONTRACT_B
from election_pipeline_tests.scenario import (
    A07,
    A08,
    B07,
    EXPECTED_HOURLY,
    HOUR7,
    a07_lines,
    a08_lines,
    b07_lines,
    hourly_figures,
)


def _evaluate(sensor: dg.SensorDefinition, context: dg.SensorEvaluationContext) -> dg.SensorResult:
    """One evaluation of the folder sensor, which always answers with a SensorResult."""
    result = sensor(context)
    assert isinstance(result, dg.SensorResult)
    return result


def test_dropped_files_are_sensed_run_and_counted_exactly(workspace, instance):
    settings = workspace.settings()
    sensor = build_sensor(settings.input_dir, settle_seconds=0, interval_seconds=1)
    job = dg.Definitions(
        assets=defs.assets,
        asset_checks=defs.asset_checks,
        jobs=[election_pipeline_job],
        resources=build_resources(settings),
    ).resolve_job_def("election_pipeline_job")

    workspace.write_reference({CONTRACT_A: 10, CONTRACT_B: 4})
    # First wave: hour 07 of both constituencies, plus a line that cannot be read.
    workspace.drop(A07, a07_lines() + ["this;is;not;an;export;line"])
    workspace.drop(B07, b07_lines())
    cursor = _evaluate(sensor, dg.build_sensor_context(instance=instance)).cursor
    tick = _evaluate(sensor, dg.build_sensor_context(instance=instance, cursor=cursor))
    assert tick.run_requests is not None
    assert len(tick.run_requests) == 1
    request = tick.run_requests[0]
    assert sorted(request.run_config["ops"]["raw_transactions"]["config"]["files"]) == sorted([A07, B07])
    result = job.execute_in_process(run_config=request.run_config, instance=instance, tags=request.tags)
    assert result.success

    engine = get_engine(settings.database_url)
    figures = hourly_figures(engine)
    assert figures == {
        (CONTRACT_A, HOUR7): EXPECTED_HOURLY[(CONTRACT_A, HOUR7)],
        (CONTRACT_B, HOUR7): EXPECTED_HOURLY[(CONTRACT_B, HOUR7)],
    }

    # Second wave: hour 08 lands later; the sensor picks up only the new file.
    workspace.drop(A08, a08_lines())
    cursor = _evaluate(sensor, dg.build_sensor_context(instance=instance, cursor=tick.cursor)).cursor
    tick2 = _evaluate(sensor, dg.build_sensor_context(instance=instance, cursor=cursor))
    assert tick2.run_requests is not None
    assert [r.run_config["ops"]["raw_transactions"]["config"]["files"] for r in tick2.run_requests] == [[A08]]
    assert job.execute_in_process(run_config=tick2.run_requests[0].run_config, instance=instance).success

    assert hourly_figures(engine) == EXPECTED_HOURLY
    with engine.connect() as conn:
        rejected = conn.execute(select(RejectedRow.source, RejectedRow.line_number, RejectedRow.reason)).all()
        jobs = conn.execute(
            select(FileProcessingJob.filename, FileProcessingJob.status, FileProcessingJob.transactions_processed)
        ).all()
        rolled_back = (
            conn.execute(select(Transaction.tx_id).where(Transaction.is_rolled_back.is_(True))).scalars().all()
        )
        stored = conn.execute(select(func.count()).select_from(Transaction)).scalar_one()
    assert rejected == [
        (A07, 6, "expected 12 fields separated by ';', found 6 (the line ends before the params field)")
    ]
    assert sorted(jobs) == sorted([(A07, "completed", 5), (B07, "completed", 4), (A08, "completed", 5)])
    assert rolled_back == ["a9"]
    assert stored == 13  # a1-a9 and b1-b4, each once (a3 arrived twice)
    runs = instance.get_runs()
    assert len(runs) == 2 and all(r.is_success for r in runs)
