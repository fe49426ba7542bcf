"""Re-runs and crashes (docs/input-format.md#bad-input: a run killed anywhere and run again ends with exactly
the database of one clean run).

One small dataset (two contracts, a rollback, an overlapping export, a bad line, a binary
file) is run in a clean workspace and compared with workspaces where a run was interrupted.
Crashes are produced without touching the pipeline's code:

* a SQLite trigger makes one chosen INSERT fail, so the real ``ingest_file`` stops exactly
  there with an exception (as if the process died at that statement); the DuckDB connection
  is then closed and reopened, which is what a dead process leaves behind (uncommitted DuckDB
  work discarded, committed work kept);
* or the stage pieces are called in the order ``ingest_folder`` would, stopping before a step.

Each test's docstring says which crash point it reproduces.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from election_pipeline.stages.ingest_files import ingest_file, ready_files, sync_rollbacks
from election_pipeline_tests.builders import INGEST_LIMITS

from .conftest import C1, C2, add_voters, at, bsi, file_name, hour, rollback_of, simple, vote

F1, F2, F3, F4 = file_name(C1, 8), file_name(C1, 9), file_name(C2, 8), file_name(C2, 10)
ALL_FILES = [F1, F2, F3, F4]  # also the name order in which they are read


def drop_dataset(ws) -> None:
    ws.write_reference(
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,10,active", f"{C2},E1,South,R1,rural,,active"],
    )
    v1, v2 = vote("V1", at(8, 10), "K1"), vote("V2", at(8, 20), "K2")
    ws.drop(
        F1,
        [
            simple("S1", at(8, 0), "startVoting"),
            bsi("B1", at(8, 5), 3),
            v1,
            v2,
            vote("V3", at(8, 30), "K3", rejected=True),
            "Tx9;104;SIG;4;1725609600000;K9",  # line 6: wrong field count -> rejected row
        ],
    )
    ws.drop(
        F2,
        [
            v2,  # overlapping export: V2 again
            vote("V4", at(9, 10), "K3"),  # K3's first accepted vote
            vote("V5", at(9, 20), "K1"),  # K1 again, but V1 is rolled back below
            rollback_of(v1),
            bsi("B2", at(9, 30), 2),
            vote("V8", at(9, 40), "K2"),  # K2's second accepted vote: a revote
        ],
    )
    ws.drop(
        F3,
        [
            add_voters("A1", at(8, 0), count=4),
            bsi("B3", at(8, 1), 2),
            vote("V6", at(8, 2), "K6"),
            vote("V7", at(8, 3), "K7"),
        ],
    )
    ws.drop(F4, b"\x00\x01binary\x00")  # refused, quarantined


def assert_dataset_figures(ws) -> None:
    cols = (
        "transaction_count",
        "bulletins_issued",
        "votes_cast",
        "revote_count",
        "rejected_count",
        "cumulative_bulletins",
        "cumulative_votes",
        "participation_rate",
    )
    assert ws.hourly_figures(C1, *cols) == {
        # S1, B1, V2, V3 = 4 tx (V1 rolled back); 3 bulletins; K2 = 1 vote; V3 rejected;
        # cumulative 3 bulletins, 1 vote; 1 / 10 registered = 10 %
        hour(8): (4, 3, 1, 0, 1, 3, 1, 10.0),
        # V4, V5, B2, V8 = 4 tx; 2 bulletins; K3 (V4) and K1 (V5: V1 no longer stands) = 2 votes;
        # V8 = K2's revote; cumulative 3 + 2 = 5 bulletins, 1 + 2 = 3 votes; 3 / 10 = 30 %
        hour(9): (4, 2, 2, 1, 0, 5, 3, 30.0),
    }
    assert ws.hourly_figures(C2, *cols) == {
        # A1, B3, V6, V7 = 4 tx; 2 bulletins; K6, K7 = 2 votes; 2 / 4 (votersCount) = 50 %
        hour(8): (4, 2, 2, 0, 0, 2, 2, 50.0),
    }
    figures = (
        "transaction_count",
        "bulletins_issued",
        "votes_cast",
        "revote_count",
        "rejected_count",
        "registered_voters",
        "registered_voters_source",
        "participation_rate",
    )
    c1, c2 = ws.constituency(C1), ws.constituency(C2)
    # C1: 4 + 4 = 8 tx; 5 bulletins; K1, K2, K3 = 3 voters; accepted V2, V4, V5, V8 = 4 -> 1 revote;
    # 1 rejected (V3); 3 / 10 = 30 %
    assert tuple(c1[f] for f in figures) == (8, 5, 3, 1, 1, 10, "reference", 30.0)
    # C2: 4 tx, 2 bulletins, 2 voters, 0 revotes, 0 rejected, 4 registered on chain, 50 %
    assert tuple(c2[f] for f in figures) == (4, 2, 2, 0, 0, 4, "addVotersList", 50.0)
    txs = ws.transactions()
    # 6 + 5 (V2 repeated) + 4 = 13 distinct transactions kept; only V1 is flagged rolled back
    assert len(txs) == 13
    assert [t for t, r in txs.items() if r["is_rolled_back"]] == ["V1"]
    assert [(r["filename"], r["line_number"]) for r in ws.rejected_rows()] == [(F1, 6)]
    assert ws.duck_count("raw_transactions") == 13 and ws.duck_count("raw_rollbacks") == 1


def jobs_summary(ws) -> list[tuple]:
    return sorted(
        (
            j["filename"],
            j["status"],
            j["transactions_processed"],
            j["rejected_lines"],
            j["details"],
            str(Path(j["stored_path"]).relative_to(ws.root)),
        )
        for j in ws.jobs()
    )


def ledger_summary(ws) -> list[tuple]:
    return sorted(
        (e["filename"], e["status"], e["size_bytes"], str(Path(e["stored_path"]).relative_to(ws.root)))
        for e in ws.ledger()
    )


def duck_rows(ws) -> tuple[list, list]:
    tx = ws.duck.execute("SELECT * EXCLUDE (file_hash) FROM raw_transactions ORDER BY tx_id").fetchall()
    rb = ws.duck.execute("SELECT * EXCLUDE (file_hash) FROM raw_rollbacks ORDER BY tx_id").fetchall()
    return tx, rb


def folder_contents(ws) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir()) for d in (ws.input_dir, ws.processed_dir, ws.quarantine_dir)}


def assert_same_as(ws, clean) -> None:
    assert ws.snapshot() == clean.snapshot()
    assert duck_rows(ws) == duck_rows(clean)
    assert jobs_summary(ws) == jobs_summary(clean)
    assert ledger_summary(ws) == ledger_summary(clean)
    assert folder_contents(ws) == folder_contents(clean)


@pytest.fixture()
def clean(workspace_factory):
    """The reference: one clean run over the dataset."""
    workspace = workspace_factory("clean")
    drop_dataset(workspace)
    workspace.run()
    assert_dataset_figures(workspace)
    assert folder_contents(workspace) == {
        "input": [],
        "processed": [F1, F2, F3],
        "quarantine": [F4],
    }
    assert [j[:4] for j in jobs_summary(workspace)] == [
        (F1, "completed", 5, 1),  # S1, B1, V1, V2, V3 + 1 bad line
        (F2, "completed", 5, 0),  # V2, V4, V5, B2, V8 (+ 1 rollback line)
        (F3, "completed", 4, 0),
        (F4, "failed", 0, 0),
    ]
    return workspace


def add_crash_trigger(ws, table: str, condition: str) -> None:
    with ws.engine.begin() as conn:
        conn.execute(
            text(
                f"CREATE TRIGGER simulated_crash BEFORE INSERT ON {table} WHEN {condition} "
                "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
            )
        )


def drop_crash_trigger(ws) -> None:
    with ws.engine.begin() as conn:
        conn.execute(text("DROP TRIGGER simulated_crash"))


# --------------------------------------------------------------------------------------
# Running again
# --------------------------------------------------------------------------------------


def test_running_everything_twice_changes_no_figure(ws, clean):
    drop_dataset(ws)
    ws.run()
    assert_dataset_figures(ws)
    first = ws.snapshot()

    # 1. the stages again with nothing new: nothing is written
    summary = ws.ingest()
    hourly, metrics = ws.publish()
    assert summary.outcomes == []
    assert (hourly.rows, hourly.inserted, hourly.updated, hourly.deleted) == (3, 0, 0, 0)  # C1 8h, 9h; C2 8h
    assert metrics.updated == 0
    assert ws.snapshot() == first

    # 2. the same files dropped again: every one is a duplicate, no figure moves
    for name in ALL_FILES:
        src = ws.quarantine_dir / name if name == F4 else ws.processed_dir / name
        shutil.copy(src, ws.input_dir / name)
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["duplicate"] * 4
    assert ws.snapshot() == first
    assert_dataset_figures(ws)
    assert len(ws.jobs()) == 8  # 4 real jobs + 4 duplicate notes
    assert len(ws.ledger()) == 4

    # and the whole thing equals one clean run (apart from the duplicate bookkeeping)
    assert ws.snapshot() == clean.snapshot()
    assert duck_rows(ws) == duck_rows(clean)


# --------------------------------------------------------------------------------------
# Crashes
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the crash is a SQLite trigger
@pytest.mark.parametrize("crash_file", ALL_FILES)
def test_crash_after_duckdb_commit_before_operational_commit(ws, clean, crash_file):
    """Crash point: inside ``ingest_file`` for ``crash_file``, after ``duck.commit()`` (or, for the
    refused binary file, after the DuckDB rollback) and before the operational transaction
    commits: the file-ledger INSERT in ``_finish`` fails. Files before it are finished and
    moved; this file's job is left ``processing``, the file stays in ``input/``, its rows are
    in DuckDB but not in the operational database; later files and ``sync_rollbacks`` never ran."""
    drop_dataset(ws)
    add_crash_trigger(ws, "file_ledger", f"NEW.filename = '{crash_file}'")
    with pytest.raises(DBAPIError, match="simulated crash"):
        ws.ingest()
    ws.reopen_duck()  # the process is gone: a new one opens the files again

    # the state the crash left
    done_before = ALL_FILES[: ALL_FILES.index(crash_file)]
    assert [(j["filename"], j["status"]) for j in ws.jobs()][-1] == (crash_file, "processing")
    assert sorted(e["filename"] for e in ws.ledger()) == done_before
    assert (ws.input_dir / crash_file).exists()
    if crash_file in (F1, F2):
        # e.g. F1: 5 transaction lines committed to DuckDB; none of F1's rows in the operational DB
        committed = ws.duck.execute("SELECT count(*) FROM raw_transactions WHERE source = ?", [crash_file]).fetchall()[
            0
        ][0]
        assert committed == {F1: 5, F2: 4}[crash_file]  # F2: V2 was already stored from F1
        assert not any(r["source_file"] == crash_file for r in ws.transactions().values())

    drop_crash_trigger(ws)
    ws.run()
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)
    assert all(j["status"] != "processing" for j in ws.jobs())


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # the crash is a SQLite trigger
@pytest.mark.parametrize("crash_tx", ["V3", "B2", "V7"])
def test_crash_while_writing_rows_before_duckdb_commit(ws, clean, crash_tx):
    """Crash point: in the middle of a file, while its rows are being flushed in batches of 2:
    the operational INSERT of transaction ``crash_tx`` fails. Earlier batches of that file are
    in DuckDB but uncommitted; closing the connection (the process dying) discards them."""
    drop_dataset(ws)
    add_crash_trigger(ws, "transactions", f"NEW.tx_id = '{crash_tx}'")
    with pytest.raises(DBAPIError, match="simulated crash"):
        ws.ingest(batch_size=2)
    ws.reopen_duck()
    assert [j["status"] for j in ws.jobs()][-1] == "processing"
    # batches of 2 pending lines: before the failing flush, earlier batches of the same file had
    # reached DuckDB uncommitted and are gone now. What survives is the committed files:
    # V3 (F1): nothing; B2 (F2): F1's 5; V7 (F3): F1's 5 + F2's 4 new (V2 already known) = 9
    assert ws.duck_count("raw_transactions") == {"V3": 0, "B2": 5, "V7": 9}[crash_tx]

    drop_crash_trigger(ws)
    ws.run(batch_size=2)
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_crash_after_operational_commit_before_the_move(ws, clean):
    """Crash point: ``ingest_file`` for F1 has committed DuckDB and the operational database
    (job completed, ledger written) but the process died before moving F1 out of ``input/``.
    Reproduced by running ``ingest_file`` for F1 alone and putting the file back where it was
    (the move is the only step after the commit); ``sync_rollbacks`` and the other files never ran."""
    drop_dataset(ws)
    outcome = ingest_file(ws.input_dir / F1, duck=ws.duck, engine=ws.engine, folders=ws.folders, **INGEST_LIMITS)
    assert (outcome.status, outcome.transactions, outcome.rejected_lines) == ("completed", 5, 1)
    shutil.move(str(ws.processed_dir / F1), str(ws.input_dir / F1))
    ws.reopen_duck()

    summary = ws.run()
    # F1 is recognised by its content hash and only moved; nothing of it is counted twice
    assert [(o.filename, o.status) for o in summary.outcomes] == [
        (F1, "recovered"),
        (F2, "completed"),
        (F3, "completed"),
        (F4, "failed"),
    ]
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_crash_before_rollbacks_are_flagged_and_before_publishing(ws, clean):
    """Crash point: every file ingested (``ingest_file`` called for each ready file, as
    ``ingest_folder`` does) but the run died before ``sync_rollbacks`` and before the hourly
    and metrics stages."""
    drop_dataset(ws)
    for path in ready_files(ws.input_dir, settle_seconds=0, now=10**10):
        ingest_file(path, duck=ws.duck, engine=ws.engine, folders=ws.folders, **INGEST_LIMITS)
    ws.reopen_duck()
    # V1 stored, its rollback stored, but the operational flag not yet set
    assert ws.transactions()["V1"]["is_rolled_back"] is False
    assert ws.hourly(C1) == {}

    summary = ws.run()  # no file left: ingest_folder only flags the rollbacks
    assert summary.outcomes == []
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_crash_between_hourly_and_metrics(ws, clean):
    """Crash point: hourly_stats published, the metrics stage never ran (constituency figures
    still the zeros the reference load wrote). The next run completes them."""
    drop_dataset(ws)
    ws.ingest()
    from election_pipeline.stages.hourly import publish_hourly_stats

    publish_hourly_stats(ws.duck, ws.engine)
    assert ws.constituency(C1)["votes_cast"] == 0  # not yet computed
    ws.reopen_duck()
    ws.run()
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_sync_rollbacks_is_idempotent(ws):
    drop_dataset(ws)
    ws.run()
    # V1 was flagged by the run; flagging again changes no row
    assert sync_rollbacks(ws.duck, ws.engine) == 0
    assert [t for t, r in ws.transactions().items() if r["is_rolled_back"]] == ["V1"]
