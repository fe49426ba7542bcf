"""The retention policy (docs/data-model.md#retention): transactions kept for the election plus 30 days, hourly
statistics a year, file jobs 90 days, alerts forever. A test that nothing younger than a
cut-off is touched, that it reports what it removed, that the published figures of the
constituencies whose transactions went stay the same and the checks stay green, and that
the retention job runs in Dagster."""

from __future__ import annotations

from datetime import datetime, timedelta

import dagster as dg
import pytest
from sqlalchemy import select, update

from election_pipeline.db.models import (
    Alert,
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    HourlyStats,
    RejectedRow,
    Transaction,
)
from election_pipeline.defs.resources import build_resources
from election_pipeline.defs.retention import build_retention
from election_pipeline.stages import quality
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.retention import RetentionPolicy, apply_retention
from election_pipeline_tests.builders import FULL_CHECK_EVERY_MINUTES
from election_pipeline_tests.builders import Workspace as SettingsWorkspace
from election_pipeline_tests.stages.conftest import bsi, export_line, make_workspace, ms, vote

NOW = datetime(2024, 10, 21, 12, 0)
# Contract -> (election, first transaction instant)
CO, CM, CB, CN = "CtrOld", "CtrMid", "CtrBoundary", "CtrNew"
CU_OLD, CU_NEW = "CtrUnknownOld", "CtrUnknownNew"
ELECTIONS = [
    # ended 2023-09-03: its transactions (30 d) and its hours (365 d) are due
    "EOLD,Old election,RU,local,2023-09-01T08:00:00,2023-09-03T20:00:00,UTC,completed,",
    # ended 2024-09-08: transactions due, hours kept
    "EMID,Mid election,RU,local,2024-09-06T08:00:00,2024-09-08T20:00:00,UTC,completed,",
    # ended exactly 30 days before NOW: on the cut-off, kept
    "EBND,Boundary election,RU,local,2024-09-19T08:00:00,2024-09-21T12:00:00,UTC,completed,",
    # still running
    "ENEW,New election,RU,local,2024-10-20T08:00:00,2024-10-22T20:00:00,UTC,active,",
]
CONSTITUENCIES = [
    f"{CO},EOLD,Old,R,urban,10,active",
    f"{CM},EMID,Mid,R,urban,10,active",
    f"{CB},EBND,Boundary,R,urban,10,active",
    f"{CN},ENEW,New,R,urban,10,active",
]
STARTS = {
    CO: datetime(2023, 9, 2, 9),
    CM: datetime(2024, 9, 6, 9),
    CB: datetime(2024, 9, 20, 9),
    CN: datetime(2024, 10, 20, 9),
    CU_OLD: datetime(2024, 9, 1, 9),
    CU_NEW: datetime(2024, 10, 20, 10),
}


def _lines(contract: str, start: datetime) -> list[str]:
    t = lambda minutes: ms(start + timedelta(minutes=minutes))  # noqa: E731
    return [
        bsi(f"{contract}-B1", t(1), 3),
        vote(f"{contract}-V1", t(5), f"{contract}-K1"),
        vote(f"{contract}-V2", t(70), f"{contract}-K2"),  # the next hour
        vote(f"{contract}-V3", t(75), f"{contract}-K3", rejected=True),
        export_line(f"{contract}-X", "vote", "not-a-number"),  # a rejected line
    ]


def _run_pipeline(ws) -> None:
    ws.ingest()
    _, metrics = ws.publish()
    publish_alerts(ws.engine, metrics.findings, now=NOW)


def _rows(ws, table, *where) -> list[dict]:
    with ws.engine.connect() as conn:
        return sorted((dict(r) for r in conn.execute(select(table.__table__).where(*where)).mappings()), key=repr)


def _checks_pass(ws) -> None:
    for check in (
        quality.no_transaction_counted_twice,
        quality.hourly_totals_reconcile,
        quality.every_transaction_in_a_known_hour,
    ):
        result = check(ws.duck, ws.engine, full_every_minutes=FULL_CHECK_EVERY_MINUTES)
        assert result.passed, (check.__name__, result.summary, result.figures)


@pytest.fixture
def election_ws(tmp_path, db_url):
    ws = make_workspace(tmp_path / "ws", db_url)
    ws.write_reference(ELECTIONS, CONSTITUENCIES)
    for contract, start in STARTS.items():
        ws.drop(f"{contract}_{start:%Y-%m-%d}_{start:%H}00.csv", _lines(contract, start))
    _run_pipeline(ws)
    # File jobs: CtrOld's ended 100 days before NOW (due), CtrMid's 89 days before (kept),
    # the others are dated today (after NOW: kept).
    with ws.engine.begin() as conn:
        for contract, days in ((CO, 100), (CM, 89)):
            when = NOW - timedelta(days=days)
            conn.execute(
                update(FileProcessingJob.__table__)
                .where(FileProcessingJob.filename.like(f"{contract}_%"))
                .values(started_at=when, completed_at=when)
            )
    try:
        yield ws
    finally:
        ws.close()


def test_only_data_older_than_each_period_is_removed_and_reported(election_ws):
    ws = election_ws
    jobs_before = _rows(ws, FileProcessingJob)
    old_job = next(j for j in jobs_before if j["filename"].startswith(CO))
    kept_contracts = [CB, CN, CU_NEW]
    before = {
        "transactions_kept": _rows(ws, Transaction, Transaction.constituency_id.in_(kept_contracts)),
        "hourly_kept": _rows(ws, HourlyStats, HourlyStats.constituency_id != CO),
        "jobs_kept": [j for j in jobs_before if j["id"] != old_job["id"]],
        "rejected_kept": _rows(ws, RejectedRow, RejectedRow.job_id != old_job["id"]),
        "alerts": _rows(ws, Alert),
        "constituencies": _rows(ws, Constituency),
    }
    assert before["alerts"], "the dataset should raise alerts (unknown contracts)"
    duck_before = dict(ws.duck.execute("SELECT constituency_id, count(*) FROM raw_transactions GROUP BY 1").fetchall())

    report = apply_retention(ws.duck, ws.engine, RetentionPolicy(), now=NOW)

    # Due: CtrOld, CtrMid (elections over for more than 30 days) and the unknown contract whose
    # last transaction is older than 30 days. 4 standing transactions each.
    assert report.retired_constituencies == sorted([CO, CM, CU_OLD])
    assert report.removed == {
        "raw_transactions (DuckDB)": 12,
        "transactions": 12,
        "hourly_stats": 2,  # CtrOld's two hours (2023): older than a year
        "file_processing_jobs": 1,
        "rejected_rows": 1,  # CtrOld's job and its bad line
    }
    assert report.cutoffs["elections_ended_before"] == NOW - timedelta(days=30)
    assert any("transactions: 12 removed" in line for line in report.lines())

    # Nothing younger was touched, row for row.
    assert _rows(ws, Transaction, Transaction.constituency_id.in_(kept_contracts)) == before["transactions_kept"]
    assert _rows(ws, Transaction, Transaction.constituency_id.in_([CO, CM, CU_OLD])) == []
    assert _rows(ws, HourlyStats) == before["hourly_kept"]
    assert _rows(ws, FileProcessingJob) == before["jobs_kept"]
    assert _rows(ws, RejectedRow) == before["rejected_kept"]
    assert _rows(ws, Alert) == before["alerts"]  # alerts: forever
    assert _rows(ws, Constituency) == before["constituencies"]
    ledger = {e["filename"].split("_")[0]: e for e in _rows(ws, FileLedgerEntry)}
    assert len(ledger) == len(STARTS) and ledger[CO]["job_id"] is None  # the ledger stays
    duck_after = dict(ws.duck.execute("SELECT constituency_id, count(*) FROM raw_transactions GROUP BY 1").fetchall())
    assert duck_after == {c: n for c, n in duck_before.items() if c not in (CO, CM, CU_OLD)}

    # The pipeline runs on: same hourly rows, same constituency figures, checks green.
    hourly_after_retention = _rows(ws, HourlyStats)
    _run_pipeline(ws)
    _checks_pass(ws)
    strip = lambda rows: [{k: v for k, v in r.items() if k != "updated_at"} for r in rows]  # noqa: E731
    assert strip(_rows(ws, HourlyStats)) == strip(hourly_after_retention)
    assert strip(_rows(ws, Constituency)) == strip(before["constituencies"])

    # Applying the policy again removes nothing.
    assert apply_retention(ws.duck, ws.engine, RetentionPolicy(), now=NOW).total_removed == 0


def test_retention_job_runs_in_dagster_with_the_settings_periods(tmp_path, db_url):
    """The scheduled job, through a real Dagster instance, with periods from the settings."""
    settings = SettingsWorkspace(tmp_path / "job").settings(
        database_url=db_url, retain_transactions_days=30, retain_hourly_days=365, retain_file_jobs_days=90
    )
    ws = make_workspace(tmp_path / "job", db_url)
    try:
        # The job runs as of the real clock: CtrNew belongs here to an election that ends in 2099.
        ws.write_reference(
            ELECTIONS + ["EFUT,Future election,RU,local,2099-01-01T08:00:00,2099-01-03T20:00:00,UTC,active,"],
            [f"{CO},EOLD,Old,R,urban,10,active", f"{CN},EFUT,New,R,urban,10,active"],
        )
        ws.drop(f"{CO}_2023-09-02_0900.csv", _lines(CO, STARTS[CO]))
        ws.drop(f"{CN}_2099-01-01_0900.csv", _lines(CN, datetime(2099, 1, 1, 9)))
        _run_pipeline(ws)
    finally:
        ws.close()  # the job opens the DuckDB file itself
    job, schedule = build_retention(settings)
    assert schedule.cron_schedule == settings.retention_cron
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    defs = dg.Definitions(jobs=[job], schedules=[schedule], resources=build_resources(settings))
    with dg.instance_for_test() as instance:
        result = defs.resolve_job_def(job.name).execute_in_process(instance=instance)
    assert result.success
    # CtrOld's 4 standing transactions from both stores, and its 2 hours (older than a year).
    assert result.output_for_node("apply_retention_policy") == 10
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = output.step_output_data.metadata
    assert metadata["removed transactions"].value == 4 and metadata["removed hourly_stats"].value == 2
    assert metadata["retired_constituencies"].value == 1
    ws = make_workspace(tmp_path / "job", db_url)
    try:
        remaining = {r["constituency_id"] for r in _rows(ws, Transaction)}
        assert remaining == {CN}
        assert {r["constituency_id"] for r in _rows(ws, HourlyStats)} == {CN}
    finally:
        ws.close()
