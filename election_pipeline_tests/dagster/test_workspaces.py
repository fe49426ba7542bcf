"""Election workspaces (docs/architecture.md#several-elections-at-once): two sample elections,
each in its own drop folder and DuckDB store, published into one operational database, give
exactly the figures of the generators' ground truth and of one shared store holding both;
a run of one election never touches the other's rows; a file dropped into the wrong
election's folder is refused and kept; the sensor and the schedule ask one run per
workspace, tagged with it; ``workspace add`` moves an election out of an existing store."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest
from sqlalchemy import select

from election_pipeline.cli import main
from election_pipeline.db.models import Alert, Constituency, FileProcessingJob, HourlyStats, Transaction
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.defs.automation import SensorCursor, build_schedule, build_sensor
from election_pipeline.sample import generate_sample
from election_pipeline.stages.reference import load_reference
from election_pipeline.workspaces import (
    SHARED,
    WORKSPACE_TAG,
    Scope,
    create_workspace,
    election_workspaces,
    planned_workspace,
)
from election_pipeline_tests.builders import make_workspace
from election_pipeline_tests.sample_truth import expected_hourly, published_hourly

SEEDS = (11, 12)
WHEN = datetime(2024, 9, 6, 12, 15, tzinfo=UTC)


def _merge_reference(parts: list[Path], into: Path) -> None:
    """One elections.csv and one constituencies.csv holding the rows of every sample."""
    into.mkdir(parents=True, exist_ok=True)
    for name in ("elections.csv", "constituencies.csv"):
        lines: list[str] = []
        for part in parts:
            text = (part / name).read_text(encoding="utf-8").splitlines()
            lines += text if not lines else text[1:]
        (into / name).write_text("\n".join(lines) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    """Two sample elections generated once: their input files, merged reference, truths."""
    root = tmp_path_factory.mktemp("samples")
    truths = []
    for seed in SEEDS:
        truths.append(
            generate_sample(
                root / f"in{seed}", root / f"ref{seed}", seed=seed, constituencies=4, voters_per_constituency=(150, 300)
            )
        )
    _merge_reference([root / f"ref{seed}" for seed in SEEDS], root / "reference")
    return root, truths


def _env(monkeypatch, root: Path) -> Path:
    """Settings for ``election-pipeline`` in ``root`` (shared drop folder, workspaces, stores)."""
    for key, value in make_workspace(root).environment(root / "dagster_home").items():
        monkeypatch.setenv(key, value)
    return root


def _copy_inputs(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(source.iterdir()):
        shutil.copy(path, target / path.name)


def _figures(root: Path) -> dict[str, list[tuple]]:
    """What observers are shown, election by election, from the operational database."""
    engine = get_engine(f"sqlite:///{root / 'ops.db'}")
    with engine.connect() as conn:
        anomalies = sorted(
            tuple(r)
            for r in conn.execute(
                select(HourlyStats.constituency_id, HourlyStats.hour, HourlyStats.anomaly_count).where(
                    HourlyStats.anomaly_count != 0
                )
            )
        )
        totals = sorted(
            tuple(r)
            for r in conn.execute(
                select(
                    Constituency.id,
                    Constituency.bulletins_issued,
                    Constituency.votes_cast,
                    Constituency.revote_count,
                    Constituency.transaction_count,
                    Constituency.anomaly_score,
                )
            )
        )
        alerts = sorted(tuple(r) for r in conn.execute(select(Alert.fingerprint, Alert.severity, Alert.status)))
        transactions = sorted(
            tuple(r)
            for r in conn.execute(select(Transaction.tx_id, Transaction.constituency_id, Transaction.is_rolled_back))
        )
    hourly = published_hourly(engine)
    return {"hourly": hourly, "anomalies": anomalies, "totals": totals, "alerts": alerts, "transactions": transactions}


def _make_workspaces(root: Path, truths) -> list[Path]:
    """A workspace for each sample election; returns their input folders."""
    engine = get_engine(f"sqlite:///{root / 'ops.db'}")
    return [create_workspace(planned_workspace(root / "elections", t.election_id, engine)).input_dir for t in truths]


@pytest.fixture(scope="module")
def one_store(samples, tmp_path_factory):
    """Both elections in the shared workspace: one DuckDB store (what the pipeline did before)."""
    src, _ = samples
    root = tmp_path_factory.mktemp("one_store")
    with pytest.MonkeyPatch.context() as mp:
        _env(mp, root)
        shutil.copytree(src / "reference", root / "reference", dirs_exist_ok=True)
        for seed in SEEDS:
            _copy_inputs(src / f"in{seed}", root / "input")
        assert main(["run", "--log-level", "WARNING"]) == 0
    return _figures(root)


def test_two_election_workspaces_give_the_figures_of_one_store_and_of_the_ground_truth(
    samples, one_store, tmp_path, monkeypatch, capsys
):
    src, truths = samples
    root = _env(monkeypatch, tmp_path / "two")
    shutil.copytree(src / "reference", root / "reference", dirs_exist_ok=True)
    engine = get_engine(f"sqlite:///{root / 'ops.db'}")
    upgrade_database(engine)
    load_reference(str(root / "reference"), engine)  # the elections exist: their workspaces can be made
    inputs = _make_workspaces(root, truths)
    for seed, folder in zip(SEEDS, inputs, strict=True):
        _copy_inputs(src / f"in{seed}", folder)
    capsys.readouterr()
    assert main(["run", "--log-level", "WARNING"]) == 0
    out = capsys.readouterr().out
    for t in truths:
        assert f"Running election_pipeline_job (election {t.election_id})" in out
    assert out.count("hourly_stats.hourly_totals_reconcile: passed") == 3  # shared + two elections

    figures = _figures(root)
    assert figures["hourly"] == expected_hourly(*truths)
    # The same figures, alerts and transactions as one store holding both elections.
    assert figures == one_store
    # Each store holds its election's transactions only; the shared one holds none.
    for t, folder in zip(truths, inputs, strict=True):
        with duckdb.connect(str(folder.parent / "warehouse.duckdb"), read_only=True) as duck:
            held = {r[0] for r in duck.execute("SELECT DISTINCT constituency_id FROM raw_transactions").fetchall()}
        assert held == {c.id for c in t.constituencies} | {t.unknown_contract_id}
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as duck:
        assert duck.execute("SELECT count(*) FROM raw_transactions").fetchall()[0][0] == 0

    # A contract the reference data does not know, dropped into an election's folder, stays of no
    # known election (its votes are not the election's), counted by that election's workspace.
    with engine.connect() as conn:
        unknown = {
            cid: (election, workspace)
            for cid, election, workspace in conn.execute(
                select(Constituency.id, Constituency.election_id, Constituency.workspace).where(
                    Constituency.in_reference.is_(False)
                )
            ).tuples()
        }
    assert unknown == {t.unknown_contract_id: (None, t.election_id) for t in truths}

    # Observers see both elections through the API, each with its ground truth's voters.
    from fastapi.testclient import TestClient

    from election_pipeline.api.app import create_app

    client = TestClient(create_app(f"sqlite:///{root / 'ops.db'}", public_read=True))
    for t in truths:
        metrics = client.get(f"/api/metrics/election/{t.election_id}").json()
        assert metrics["votes_cast"] == sum(c.votes_cast for cid, c in t.totals.items() if cid != t.unknown_contract_id)

    # Runs of one election leave the other's figures alone (nothing deleted, nothing cleared).
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert _figures(root) == figures


def test_a_file_of_another_election_is_refused_in_a_workspace_and_handed_over_by_the_shared_folder(
    samples, tmp_path, monkeypatch
):
    src, truths = samples
    root = _env(monkeypatch, tmp_path / "wrong")
    shutil.copytree(src / "reference", root / "reference", dirs_exist_ok=True)
    assert main(["run", "--log-level", "WARNING"]) == 0
    first, second = _make_workspaces(root, truths)
    contract = truths[1].constituencies[0].id
    wrong = sorted(p for p in (src / f"in{SEEDS[1]}").iterdir() if p.name.startswith(contract))[0]
    shutil.copy(wrong, first / wrong.name)  # the second election's file, in the first's folder
    shutil.copy(wrong, root / "input" / wrong.name)  # and in the shared folder
    assert main(["run", "--log-level", "WARNING"]) == 0

    engine = get_engine(f"sqlite:///{root / 'ops.db'}")

    def jobs() -> list[tuple[str, str, str]]:
        with engine.connect() as conn:
            return [
                (r[0], r[1] or "", r[2] or "")
                for r in conn.execute(
                    select(FileProcessingJob.status, FileProcessingJob.details, FileProcessingJob.stored_path)
                ).all()
            ]

    def counted() -> int:
        with engine.connect() as conn:
            return len(conn.execute(select(Transaction.tx_id).where(Transaction.constituency_id == contract)).all())

    # The copy in the first election's folder: refused, quarantined with the reason, kept.
    refused = [j for j in jobs() if j[0] == "failed"]
    assert len(refused) == 1
    assert f"is a constituency of election {truths[1].election_id}, not of {truths[0].election_id}" in refused[0][1]
    assert Path(refused[0][2]).exists() and Path(refused[0][2]).parent == first.parent / "quarantine"
    # The copy in the shared folder: handed to the second election's folder and counted there,
    # in the same `election-pipeline run` (the shared workspace runs first).
    done = [j for j in jobs() if j[0] == "completed"]
    assert len(done) == 1 and Path(done[0][2]).parent == second.parent / "processed"
    assert not (root / "input" / wrong.name).exists()
    lines = sum(1 for line in wrong.read_text(encoding="utf-8").splitlines() if line.strip())
    assert 0 < counted() <= lines

    # Taken from the quarantine into its own election's folder, it is known there: nothing twice.
    before = counted()
    shutil.move(refused[0][2], second / wrong.name)
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert counted() == before
    assert any("same content as" in j[1] for j in jobs())


def test_the_sensor_asks_one_run_per_workspace_tagged_with_it(samples, tmp_path, instance):
    src, truths = samples
    root = make_workspace(tmp_path / "sensor")
    s = root.settings()
    election_dir = Path(s.elections_dir)
    ws = create_workspace(planned_workspace(election_dir, truths[0].election_id))
    files = sorted((src / f"in{SEEDS[0]}").iterdir())[:3]
    for path in files:
        shutil.copy(path, ws.input_dir / path.name)
    shutil.copy(files[0], Path(s.input_dir) / files[0].name)
    sensor = build_sensor(s.input_dir, 0, 1, s.elections_dir)

    first = sensor.evaluate_tick(dg.build_sensor_context(instance=instance))
    assert not first.run_requests  # first look: the files are remembered
    tick = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=first.cursor))
    by_tag = {r.tags[WORKSPACE_TAG]: r for r in tick.run_requests or []}
    assert set(by_tag) == {SHARED, truths[0].election_id}
    assert by_tag[truths[0].election_id].run_config["ops"]["raw_transactions"]["config"]["files"] == [
        p.name for p in files
    ]
    assert by_tag[SHARED].run_config["ops"]["raw_transactions"]["config"]["files"] == [files[0].name]
    again = sensor.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=tick.cursor))
    assert not again.run_requests  # each file is handed over once

    # A cursor written before workspaces existed is the shared drop folder's state.
    old = json.dumps({"pending": {}, "requested": {files[0].name: [1, 2]}})
    assert SensorCursor.from_json(old).states[SHARED].requested == {files[0].name: [1, 2]}


def test_the_schedules_fan_out_one_run_per_workspace(samples, tmp_path):
    _, truths = samples
    root = make_workspace(tmp_path / "schedule")
    s = root.settings()
    for t in truths:
        create_workspace(planned_workspace(s.elections_dir, t.election_id))
    assert [w.election for w in election_workspaces(s.elections_dir)] == sorted(t.election_id for t in truths)
    schedule = build_schedule(s)
    with dg.build_schedule_context(scheduled_execution_time=WHEN) as context:
        requests = schedule.evaluate_tick(context).run_requests or []
    assert sorted(r.tags[WORKSPACE_TAG] for r in requests) == sorted([SHARED, *(t.election_id for t in truths)])

    from election_pipeline.defs.retention import build_retention

    _, retention = build_retention(s)
    with dg.build_schedule_context(scheduled_execution_time=WHEN) as context:
        requests = retention.evaluate_tick(context).run_requests or []
    assert len({r.tags[WORKSPACE_TAG] for r in requests}) == 3


def test_workspace_add_moves_an_election_out_of_the_shared_store(samples, one_store, tmp_path, monkeypatch, capsys):
    src, truths = samples
    root = _env(monkeypatch, tmp_path / "move")
    shutil.copytree(src / "reference", root / "reference", dirs_exist_ok=True)
    for seed in SEEDS:
        _copy_inputs(src / f"in{seed}", root / "input")
    assert main(["run", "--log-level", "WARNING"]) == 0  # both elections in the shared store
    before = _figures(root)
    assert before == one_store

    moved = truths[0]
    assert main(["workspace", "add", moved.election_id]) == 0
    out = capsys.readouterr().out
    assert "copied" in out and "removed" in out
    store = root / "elections" / moved.election_id / "warehouse.duckdb"
    mine = {c.id for c in moved.constituencies} | {moved.unknown_contract_id}
    with duckdb.connect(str(store), read_only=True) as duck:
        held = {r[0] for r in duck.execute("SELECT DISTINCT constituency_id FROM raw_transactions").fetchall()}
        ledger = duck.execute("SELECT count(*) FROM file_ledger").fetchall()[0][0]
        moved_transactions = duck.execute("SELECT count(*) FROM raw_transactions").fetchall()[0][0]
    with duckdb.connect(str(root / "warehouse.duckdb"), read_only=True) as duck:
        left = {r[0] for r in duck.execute("SELECT DISTINCT constituency_id FROM raw_transactions").fetchall()}
    # The unknown contract was of no election in the shared store: it stays there.
    assert held == mine - {moved.unknown_contract_id}
    assert not (left & held)
    assert ledger > 0  # its files are known to the new store: dropped again, they are duplicates
    # `workspace list` shows each workspace, what its store holds and where its folders are.
    assert main(["workspace", "list"]) == 0
    listed = capsys.readouterr().out.splitlines()
    at = listed.index(f"{moved.election_id:<24} {moved_transactions:,} transactions of {len(held)} constituencies")
    assert listed[at + 1 : at + 3] == [
        f"  input  {root / 'elections' / moved.election_id / 'input'}",
        f"  store  {store}",
    ]
    shared_line = next(line for line in listed if line.startswith("shared "))
    assert f"of {len(left)} constituencies" in shared_line

    # Both workspaces run; every figure stays what it was.
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert _figures(root) == before
    # The files of the moved election, dropped again into its folder, are not counted twice.
    _copy_inputs(src / f"in{SEEDS[0]}", root / "elections" / moved.election_id / "input")
    assert main(["run", "--log-level", "WARNING"]) == 0
    assert _figures(root) == before
    # Running the command again only finishes the move (there is nothing left to move).
    assert main(["workspace", "add", moved.election_id]) == 0
    assert "has a workspace already" in capsys.readouterr().out


def test_scope_of_a_workspace():
    shared = Scope(None, frozenset({"E1"}))
    e1 = Scope("E1")
    known = {"a": ("E1", None), "b": ("E2", None), "c": (None, None), "d": (None, "E1")}
    assert e1.refusal("a", known) is None and e1.refusal("d", known) is None
    assert e1.refusal("new", known) is None  # never seen: counted here
    assert "of election E2, not of E1" in (e1.refusal("b", known) or "")
    assert "counted by the shared workspace" in (e1.refusal("c", known) or "")
    assert "has a workspace of its own" in (shared.refusal("a", known) or "")
    assert "counted by the workspace of election E1" in (shared.refusal("d", known) or "")
    assert shared.refusal("b", known) is None and shared.refusal("c", known) is None
    assert [shared.holds(*known[c]) for c in "abcd"] == [False, True, True, False]
    assert [e1.holds(*known[c]) for c in "abcd"] == [True, False, False, True]
    assert Scope().is_everything and not shared.is_everything
