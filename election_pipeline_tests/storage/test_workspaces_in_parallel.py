"""Two elections' hourly bursts land together in their own workspaces
(docs/architecture.md#several-elections-at-once), served by the Dagster daemon on the
PostgreSQL instance of ``deploy/dagster.yaml``: the sensor asks one run per workspace, the
run queue starts both at once (one run per workspace at a time), they run in parallel in
processes of their own, and every file is processed exactly once with both elections'
figures exact. One election's run is killed with SIGKILL half-way: the other's runs are
untouched, and an operator's ``election-pipeline run`` completes the killed election."""

from __future__ import annotations

import os
import shutil
import signal

import dagster as dg
import pytest
from sqlalchemy import func, select

from election_pipeline.db.models import FileProcessingJob
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.defs.run_recovery import TAG_PID
from election_pipeline.sample import generate_sample
from election_pipeline.stages.reference import load_reference
from election_pipeline.workspaces import WORKSPACE_TAG, create_workspace, planned_workspace
from election_pipeline_tests.sample_truth import expected_hourly, published_hourly

from .process_helpers import cli, kill_group, start
from .test_dagster_on_postgres import _span, _wait, daemon_env, describe_runs, start_daemon, wait_for_daemon

ACTIVE = [
    dg.DagsterRunStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
]


@pytest.mark.slow
def test_two_elections_bursts_run_in_parallel_and_a_killed_run_leaves_the_other_untouched(
    tmp_path, postgres_database, postgres_schema_url, monkeypatch
):
    root = tmp_path / "ws"
    home = tmp_path / "dagster_home"
    env = daemon_env(
        tmp_path,
        root,
        postgres_schema_url,
        postgres_database["name"],
        monkeypatch,
        ELECTION_ELECTIONS_DIR=str(root / "elections"),
    )
    # Two elections (about 290 hourly files each), their reference data loaded, a workspace each.
    truths = [generate_sample(tmp_path / f"burst{s}", tmp_path / f"ref{s}", seed=s) for s in (21, 22)]
    for name in ("elections.csv", "constituencies.csv"):
        a, b = ((tmp_path / f"ref{s}" / name).read_text().splitlines() for s in (21, 22))
        (root / "reference" / name).write_text("\n".join(a + b[1:]) + "\n")
    engine = get_engine(postgres_schema_url)
    upgrade_database(engine)
    load_reference(str(root / "reference"), engine)
    spaces = [create_workspace(planned_workspace(root / "elections", t.election_id, engine)) for t in truths]
    bursts = [sorted((tmp_path / f"burst{s}").iterdir()) for s in (21, 22)]
    assert all(len(b) >= 250 for b in bursts)
    victim, other = truths[0].election_id, truths[1].election_id

    daemon = start_daemon(tmp_path, env)
    operator = None
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            wait_for_daemon(instance)
            for burst, ws in zip(bursts, spaces, strict=True):  # both bursts land together
                for path in burst:
                    shutil.move(str(path), ws.input_dir / path.name)

            def runs_of(election: str) -> list[dg.DagsterRun]:
                return list(instance.get_runs(filters=dg.RunsFilter(tags={WORKSPACE_TAG: election})))

            # Kill the victim's run with SIGKILL once it has started moving its files.
            def victim_started() -> bool:
                started = [r for r in runs_of(victim) if r.status == dg.DagsterRunStatus.STARTED]
                return bool(started and started[0].tags.get(TAG_PID) and any(spaces[0].processed_dir.iterdir()))

            _wait(victim_started, 300, "the victim's run to ingest", interval=0.2)
            killed = next(r for r in runs_of(victim) if r.status == dg.DagsterRunStatus.STARTED)
            os.kill(int(killed.tags[TAG_PID]), signal.SIGKILL)

            def other_done() -> bool:
                mine = runs_of(other)
                return (
                    bool(mine) and all(r.status not in ACTIVE for r in mine) and not any(spaces[1].input_dir.iterdir())
                )

            _wait(other_done, 480, "the other election's runs", interval=1.0)
            other_hourly = published_hourly(engine)
            # The operator runs the pipeline by hand: it finds the killed run dead and completes it.
            operator = start(cli("run", "--log-level", "WARNING"), env, tmp_path / "operator.log")
            assert operator.wait(timeout=480) == 0, (tmp_path / "operator.log").read_text()[-3000:]
            _wait(lambda: not instance.get_runs(filters=dg.RunsFilter(statuses=ACTIVE)), 300, "every run to end", 1.0)
            runs = instance.get_runs()
            records = {r.dagster_run.run_id: r for r in instance.get_run_records()}
            failures = {
                r.run_id: [
                    e.dagster_event.event_type_value
                    for e in instance.all_logs(r.run_id)
                    if e.dagster_event is not None
                    and e.dagster_event.event_type_value in ("STEP_FAILURE", "STEP_UP_FOR_RETRY")
                ]
                for r in runs
            }
            described = describe_runs(instance)
    finally:
        if daemon.poll() is None:
            kill_group(daemon, signal.SIGTERM)
        if operator is not None and operator.poll() is None:
            kill_group(operator)

    by_election = {e: [r for r in runs if r.tags.get(WORKSPACE_TAG) == e] for e in (victim, other)}
    # The two elections' runs overlapped in time: they did not wait for each other.
    spans = {e: [_span(records[r.run_id], described) for r in rs] for e, rs in by_election.items()}
    assert any(a0 < b1 and b0 < a1 for a0, a1 in spans[victim] for b0, b1 in spans[other]), spans
    # The other election never noticed: its runs succeeded without a failed or retried step.
    assert {r.status for r in by_election[other]} == {dg.DagsterRunStatus.SUCCESS}, described
    assert all(not failures[r.run_id] for r in by_election[other]), described
    victim_statuses = sorted(r.status.value for r in by_election[victim])
    assert victim_statuses.count("FAILURE") == 1, described  # the killed run, found dead by the operator's run
    # Every file of both bursts processed exactly once; both elections' figures exact.
    with engine.connect() as conn:
        per_file = dict(
            conn.execute(select(FileProcessingJob.filename, func.count()).group_by(FileProcessingJob.filename))
            .tuples()
            .all()
        )
    assert per_file == {p.name: 1 for burst in bursts for p in burst}
    hourly = published_hourly(engine)
    assert hourly == expected_hourly(*truths)
    mine = {c.id for c in truths[1].constituencies} | {truths[1].unknown_contract_id}
    # The other election's figures did not change when the killed election was completed.
    assert [h for h in hourly if h[0] in mine] == [h for h in other_hourly if h[0] in mine]
