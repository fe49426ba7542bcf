"""Re-runs and crashes (docs/input-format.md#bad-input: a run killed anywhere and run again ends with exactly
the database of one clean run).

One small dataset (two contracts, a rollback, an overlapping export, a bad line, a binary
file) is run in a clean workspace and compared with workspaces where a run was interrupted.
A run is: the ingest (each group of files written to the DuckDB raw store in one DuckDB
transaction, then the files moved), ``publish_file_records``, the figures (hourly stats,
metrics) and ``publish_transactions`` (which commits every ``TRANSACTIONS_CHUNK`` rows).

Crashes are produced without touching the pipeline's code:

* inside the group's DuckDB transaction: another DuckDB transaction holds an uncommitted
  ``ALTER TABLE`` of one raw-store table, so the ingest's first INSERT of a row into that table
  fails (a DuckDB ``TransactionException``, a store error: the run stops there);
* in the operational database: a trigger makes one chosen INSERT or UPDATE fail (SQLite
  ``RAISE(ABORT)``, a PL/pgSQL ``RAISE EXCEPTION`` on PostgreSQL);
* or the stage pieces are called in the order a run calls them, stopping after a step (for the
  crash between the DuckDB commit and the file moves, the moved files are put back: the move is
  the only step after the commit).

After each crash the DuckDB connection is closed and opened again, which is what a dead process
leaves behind (uncommitted DuckDB work discarded, committed work kept). The module constants
``GROUP_MAX_FILES`` (files per DuckDB transaction) and ``TRANSACTIONS_CHUNK`` are set by some
tests (configuration: the clean run then uses the same groups). Each test's docstring says
which crash point it reproduces.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import duckdb
import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from election_pipeline.analytics import change_log
from election_pipeline.db.models import Transaction
from election_pipeline.stages import ingest_files, publish
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.ingest_files import IngestSummary, ingest_folder, ready_files
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline.stages.publish import publish_all, publish_file_records, publish_transactions
from election_pipeline_tests.builders import INGEST_LIMITS, THRESHOLDS

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


_WHEN = re.compile(r" on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def jobs_summary(ws) -> list[tuple]:
    # (a duplicate's job names the minute its first copy was recorded: workspaces run one after
    # the other may be on both sides of a minute)
    return sorted(
        (
            j["filename"],
            j["status"],
            j["transactions_processed"],
            j["rejected_lines"],
            _WHEN.sub(" on <minute> UTC", j["details"] or ""),
            str(Path(j["stored_path"]).relative_to(ws.root)),
        )
        for j in ws.jobs()
    )


def ledger_summary(ws) -> list[tuple]:
    return sorted(
        (e["filename"], e["status"], e["size_bytes"], str(Path(e["stored_path"]).relative_to(ws.root)))
        for e in ws.ledger()
    )


def duck_rows(ws, *, with_seq: bool = True) -> tuple[list, list]:
    """The raw store's rows (``seq``: the change-log number of the group that wrote each)."""
    skip = "file_hash" if with_seq else "file_hash, seq"
    tx = ws.duck.execute(f"SELECT * EXCLUDE ({skip}) FROM raw_transactions ORDER BY tx_id").fetchall()
    rb = ws.duck.execute(f"SELECT * EXCLUDE ({skip}) FROM raw_rollbacks ORDER BY tx_id").fetchall()
    return tx, rb


def folder_contents(ws) -> dict[str, list[str]]:
    return {d.name: sorted(p.name for p in d.iterdir()) for d in (ws.input_dir, ws.processed_dir, ws.quarantine_dir)}


def assert_same_as(ws, clean, *, same_groups: bool = True) -> None:
    assert ws.snapshot() == clean.snapshot()
    assert duck_rows(ws, with_seq=same_groups) == duck_rows(clean, with_seq=same_groups)
    assert jobs_summary(ws) == jobs_summary(clean)
    assert ledger_summary(ws) == ledger_summary(clean)
    assert folder_contents(ws) == folder_contents(clean)
    # every mark caught up: nothing left to publish
    for mark in (publish.FILES_MARK, publish.TRANSACTIONS_MARK):
        assert change_log.mark_of(ws.duck, mark) == change_log.last_seq(ws.duck)


@pytest.fixture()
def group_max_files(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    """Files written per DuckDB transaction (``ingest_files.GROUP_MAX_FILES``; by default the
    module's 1,000: the whole dataset is one group). Set before the clean run, so that both
    workspaces write the same groups (and the same ``seq`` numbers)."""
    value = int(getattr(request, "param", ingest_files.GROUP_MAX_FILES))
    monkeypatch.setattr(ingest_files, "GROUP_MAX_FILES", value)
    return value


def groups_of(files: list[str], size: int) -> list[list[str]]:
    """The groups the ingest writes (in name order, ``size`` files each: no content twice here)."""
    return [files[i : i + size] for i in range(0, len(files), size)]


@pytest.fixture()
def clean(workspace_factory, group_max_files):
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


def ingest_only(ws, names: list[str] | None = None) -> IngestSummary:
    """The ingest alone (DuckDB), over the ready files (or those of ``names``)."""
    files = ready_files(ws.input_dir, settle_seconds=0, now=10**10)
    if names is not None:
        files = [f for f in files if f.name in names]
    return ingest_folder(files, duck=ws.duck, folders=ws.folders, **INGEST_LIMITS)


def duck_filenames(ws, table: str) -> list[str]:
    return sorted(r[0] for r in ws.duck.execute(f"SELECT filename FROM {table}").fetchall())


@contextlib.contextmanager
def schema_change_in_progress(ws, table: str) -> Iterator[None]:
    """Another DuckDB transaction alters ``table`` and does not commit: while it is open, the
    first INSERT of a row into ``table`` by any other transaction fails with a DuckDB
    ``TransactionException`` (zero-row inserts pass). Rolled back on leaving."""
    other = ws.duck.cursor()
    other.begin()
    other.execute(f"ALTER TABLE {table} ADD COLUMN simulated_crash INTEGER")
    try:
        yield
    finally:
        other.rollback()
        other.close()


def causes(error: BaseException | None) -> str:
    """The messages of ``error`` and of the errors it was raised during."""
    found = []
    while error is not None:
        found.append(str(error))
        error = error.__cause__ or error.__context__
    return " <- ".join(found)


def add_crash_trigger(ws, table: str, *, event: str = "INSERT", when: str = "", body_when: str = "") -> None:
    """Make ``event`` on ``table`` fail with 'simulated crash' when the row condition ``when``
    holds (``NEW.<column>`` ...) or, for a condition that reads tables, when the query
    ``body_when`` holds (evaluated before each row)."""
    with ws.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            condition = " AND ".join(c for c in (when, f"({body_when})" if body_when else "") if c) or "1"
            conn.execute(
                text(
                    f"CREATE TRIGGER simulated_crash BEFORE {event} ON {table} WHEN {condition} "
                    "BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
                )
            )
            return
        check = body_when or "true"
        conn.execute(
            text(
                "CREATE FUNCTION simulated_crash() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                f"IF {check} THEN RAISE EXCEPTION 'simulated crash'; END IF; RETURN NEW; END $$"
            )
        )
        conn.execute(
            text(
                f"CREATE TRIGGER simulated_crash BEFORE {event} ON {table} FOR EACH ROW "
                + (f"WHEN ({when}) " if when else "")
                + "EXECUTE FUNCTION simulated_crash()"
            )
        )


def drop_crash_trigger(ws, table: str) -> None:
    with ws.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER simulated_crash"))
        else:
            conn.execute(text(f"DROP TRIGGER simulated_crash ON {table}"))
            conn.execute(text("DROP FUNCTION simulated_crash()"))


def nothing_published(ws) -> bool:
    return ws.jobs() == [] and ws.transactions() == {} and ws.rejected_rows() == [] and ws.ledger() == []


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
    assert duck_rows(ws, with_seq=False) == duck_rows(clean, with_seq=False)


def test_publishing_again_changes_nothing(ws):
    """``publish_transactions`` (and ``publish_file_records``) run twice: the second call finds
    nothing after its mark; and with the marks set back to 0 (everything published again) every
    write is keyed, so no row, flag or id changes."""
    drop_dataset(ws)
    ws.run()
    before = ws.snapshot()
    ids = {t: r["id"] for t, r in ws.transactions().items()}
    jobs, ledger = ws.jobs(), ws.ledger()

    again = publish_transactions(ws.duck, ws.engine)
    assert (again.transactions, again.rolled_back, again.in_conflict) == (0, 0, 0)
    assert publish_file_records(ws.duck, ws.engine).jobs == 0

    for mark in (publish.FILES_MARK, publish.TRANSACTIONS_MARK):
        change_log.set_mark(ws.duck, mark, 0)
    files, transactions = publish_all(ws.duck, ws.engine)
    assert (files.jobs, files.rejected_rows) == (4, 1)  # read again, written once
    assert transactions.transactions == 13
    assert (transactions.rolled_back, transactions.in_conflict) == (0, 0)  # V1 already flagged
    assert ws.snapshot() == before
    assert {t: r["id"] for t, r in ws.transactions().items()} == ids
    assert ws.jobs() == jobs and ws.ledger() == ledger
    assert [t for t, r in ws.transactions().items() if r["is_rolled_back"]] == ["V1"]


# --------------------------------------------------------------------------------------
# Crashes in the ingest
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("table", "group_max_files", "committed"),
    [
        # the whole dataset is one group: its first INSERT fails; nothing is committed
        ("raw_transactions", 1000, []),
        # its last INSERT fails (rows, conflicts, rollbacks, raw_files, change log, jobs and
        # ledger already written in the transaction): nothing is committed
        ("raw_rejected", 1000, []),
        # one file per group: F1's group committed and moved; F2's group fails at its rollback
        # line, after its transactions were written in the transaction
        ("raw_rollbacks", 1, [F1]),
        # F1's group fails at its ledger entry, after everything else of it
        ("file_ledger", 1, []),
    ],
    indirect=["group_max_files"],
)
def test_crash_inside_the_group_transaction(ws, clean, table, group_max_files, committed):
    """Crash point: inside a group's DuckDB transaction, before its commit: the first INSERT of
    a row into ``table`` fails. The groups before it are committed and their files moved; the
    failing group's work is rolled back (its change-log number handed back too); nothing was
    published and the later groups never ran."""
    drop_dataset(ws)
    with schema_change_in_progress(ws, table), pytest.raises(duckdb.TransactionException) as raised:
        ws.run()
    assert "altered by a different transaction" in causes(raised.value)
    ws.reopen_duck()

    assert duck_filenames(ws, "file_ledger") == committed
    assert duck_filenames(ws, "file_jobs") == committed
    assert ws.duck_count("raw_transactions") == (5 if committed else 0)  # F1's 5
    assert ws.duck_count("raw_rollbacks") == 0
    assert change_log.last_seq(ws.duck) == len(committed)
    assert folder_contents(ws)["input"] == [f for f in ALL_FILES if f not in committed]
    assert nothing_published(ws)

    summary = ws.run()
    assert [o.filename for o in summary.outcomes if o.status != "recovered"] == [
        f for f in ALL_FILES if f not in committed
    ]
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def not_marked_moved(ws, names: list[str]) -> None:
    """The other half of putting files back where a crash before the moves left them: their
    jobs do not say they were moved either (that mark is written after the moves)."""
    marks = ", ".join("?" for _ in names)
    ws.duck.execute(f"UPDATE file_jobs SET moved = FALSE WHERE filename IN ({marks})", list(names))


def test_a_quarantined_file_taken_back_into_the_drop_folder_is_read_again(ws):
    """Not a crash: once a file reached the quarantine, the same file put back in the drop
    folder is a new arrival, not a move to finish. Content refused for what it holds is a
    duplicate of the refusal (a job of its own says so); nothing is silently moved back."""
    drop_dataset(ws)
    ws.run()
    os.rename(ws.quarantine_dir / F4, ws.input_dir / F4)
    summary = ws.run()
    assert [(o.filename, o.status) for o in summary.outcomes] == [(F4, "duplicate")]
    assert "already refused" in summary.outcomes[0].reason


@pytest.mark.parametrize(
    ("group_max_files", "crash_group"),
    [(1000, 0), (2, 0), (2, 1)],
    indirect=["group_max_files"],
)
def test_crash_after_the_duckdb_commit_before_the_moves(ws, clean, group_max_files, crash_group):
    """Crash point: a group's DuckDB transaction committed (rows, jobs, ledger), the process
    died before moving its files out of ``input/``. Reproduced by running the ingest over the
    groups up to that one and putting that group's files back where they were. The next run
    finds them in the ledger and only moves them (status ``recovered``): nothing counted twice."""
    groups = groups_of(ALL_FILES, group_max_files)
    done = [f for g in groups[: crash_group + 1] for f in g]
    drop_dataset(ws)
    ingest_only(ws, done)
    for name in groups[crash_group]:
        moved = ws.quarantine_dir / name if name == F4 else ws.processed_dir / name
        os.rename(moved, ws.input_dir / name)
    not_marked_moved(ws, groups[crash_group])
    ws.reopen_duck()
    assert duck_filenames(ws, "file_ledger") == done
    assert folder_contents(ws)["input"] == [f for f in ALL_FILES if f not in done or f in groups[crash_group]]

    summary = ws.run()
    later = [f for g in groups[crash_group + 1 :] for f in g]
    expected = [(f, "recovered") for f in groups[crash_group]] + [
        (f, "failed" if f == F4 else "completed") for f in later
    ]
    assert [(o.filename, o.status) for o in summary.outcomes] == expected
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_crash_after_the_ingest_before_publish_file_records(ws, clean):
    """Crash point: every group committed and moved, the run died before
    ``publish_file_records``: the operational database knows nothing of the files yet. The
    next run has no file to read; its publish steps publish everything from the marks."""
    drop_dataset(ws)
    summary = ingest_only(ws)
    assert [o.status for o in summary.outcomes] == ["completed", "completed", "completed", "failed"]
    ws.reopen_duck()
    assert nothing_published(ws)
    assert change_log.mark_of(ws.duck, publish.FILES_MARK) is None

    summary = ws.run()
    assert summary.outcomes == []
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


@pytest.mark.parametrize("figures_before_the_crash", [False, True])
def test_crash_after_publish_file_records_before_publish_transactions(ws, clean, figures_before_the_crash):
    """Crash point: the ingest and ``publish_file_records`` done (jobs, ledger, rejected lines
    published), the run died before ``publish_transactions``; with ``figures_before_the_crash``
    also after the hourly and metrics stages (the order of the Dagster graph, where the
    transactions are published last)."""
    drop_dataset(ws)
    ingest_only(ws)
    publish_file_records(ws.duck, ws.engine)
    if figures_before_the_crash:
        publish_hourly_stats(ws.duck, ws.engine)
        publish_metrics(ws.duck, ws.engine, THRESHOLDS)
    ws.reopen_duck()
    assert [(j["filename"], j["status"]) for j in ws.jobs()] == [
        (F1, "completed"),
        (F2, "completed"),
        (F3, "completed"),
        (F4, "failed"),
    ]
    assert len(ws.rejected_rows()) == 1 and ws.transactions() == {}
    assert change_log.mark_of(ws.duck, publish.TRANSACTIONS_MARK) is None

    ws.run()
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


# --------------------------------------------------------------------------------------
# Crashes inside publish_transactions
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("chunks_committed", [1, 3, 6])
def test_crash_inside_publish_transactions_after_some_chunks(ws, clean, monkeypatch, chunks_committed):
    """Crash point: inside ``publish_transactions``, chunks of 2 rows each committed in turn:
    the operational INSERT of the first row of chunk ``chunks_committed + 1`` fails (a trigger
    raising once 2 x ``chunks_committed`` rows stand). The committed chunks stay, the mark does
    not move; the next run publishes the whole window again, keyed on ``tx_id``."""
    monkeypatch.setattr(publish, "TRANSACTIONS_CHUNK", 2)
    standing = 2 * chunks_committed
    drop_dataset(ws)
    add_crash_trigger(ws, "transactions", body_when=f"(SELECT count(*) FROM transactions) >= {standing}")
    with pytest.raises(DBAPIError, match="simulated crash"):
        ws.ingest()  # the ingest, publish_file_records, then publish_transactions fails
    ws.reopen_duck()
    assert ws.count(Transaction) == standing  # 13 rows in 7 chunks: the 6 first committed at most
    assert len(ws.jobs()) == 4 and change_log.mark_of(ws.duck, publish.FILES_MARK) == 1
    assert change_log.mark_of(ws.duck, publish.TRANSACTIONS_MARK) is None

    drop_crash_trigger(ws, "transactions")
    ws.run()
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


def test_crash_inside_publish_transactions_while_flagging_rollbacks(ws, clean):
    """Crash point: inside ``publish_transactions``, after every chunk committed, while the
    ``is_rolled_back`` flags are set (the UPDATE of V1 fails): V1 was published by an earlier
    run, its rollback line arrives with F2. The mark stays before F2's group; the next run
    publishes the window again and sets the flag."""
    drop_dataset(ws)
    for name in (F2, F3, F4):  # F1 alone first
        os.rename(ws.input_dir / name, ws.root / name)
    ws.run()
    for name in (F2, F3, F4):
        os.rename(ws.root / name, ws.input_dir / name)
    add_crash_trigger(ws, "transactions", event="UPDATE", when="NEW.is_rolled_back AND NEW.tx_id = 'V1'")
    with pytest.raises(DBAPIError, match="simulated crash"):
        ws.ingest()
    ws.reopen_duck()
    assert ws.count(Transaction) == 13  # every row of the window committed
    assert ws.transactions()["V1"]["is_rolled_back"] is False
    assert change_log.mark_of(ws.duck, publish.TRANSACTIONS_MARK) == 1  # F1's group only

    drop_crash_trigger(ws, "transactions")
    ws.run()
    assert_dataset_figures(ws)
    # two runs write two groups (other seq numbers than the clean run's one); all else is equal
    assert_same_as(ws, clean, same_groups=False)


# --------------------------------------------------------------------------------------
# Crashes in the figures
# --------------------------------------------------------------------------------------


def test_crash_between_hourly_and_metrics(ws, clean):
    """Crash point: hourly_stats published, the metrics stage never ran (constituency figures
    still the zeros the reference load wrote). The next run completes them."""
    drop_dataset(ws)
    ws.ingest()
    publish_hourly_stats(ws.duck, ws.engine)
    assert ws.constituency(C1)["votes_cast"] == 0  # not yet computed
    ws.reopen_duck()
    ws.run()
    assert_dataset_figures(ws)
    assert_same_as(ws, clean)


# --------------------------------------------------------------------------------------
# Known problems
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("extra", ["duplicate", "symlink"])
def test_crash_before_the_moves_with_a_file_the_ledger_does_not_hold(ws, workspace_factory, tmp_path, extra):
    """Crash point: the last group's DuckDB transaction committed, the files not moved; that
    group holds a file the ledger has no entry for. One clean run writes one job for it."""
    copy = file_name(C2, 8, tag="-copy")  # sorts before F3: the copy is counted, F3 is the duplicate
    link = file_name("CtrWest4", 8)
    (tmp_path / "target.csv").write_text("x\n", encoding="utf-8")

    def dataset(workspace) -> None:
        drop_dataset(workspace)
        if extra == "duplicate":
            shutil.copy(workspace.input_dir / F3, workspace.input_dir / copy)
        else:
            (workspace.input_dir / link).symlink_to(tmp_path / "target.csv")

    clean = workspace_factory("clean")
    dataset(clean)
    clean.run()

    dataset(ws)
    ingest_only(ws)
    last = ws.duck.execute("SELECT filename FROM file_jobs WHERE seq = (SELECT max(seq) FROM file_jobs)").fetchall()
    assert (F3 if extra == "duplicate" else link) in {r[0] for r in last}
    for (name,) in last:  # the process died before moving the last group's files
        for folder in (ws.processed_dir, ws.quarantine_dir):
            if (folder / name).is_symlink() or (folder / name).exists():
                os.rename(folder / name, ws.input_dir / name)
    not_marked_moved(ws, [name for (name,) in last])
    ws.reopen_duck()
    ws.run()
    assert ws.snapshot() == clean.snapshot()
    assert folder_contents(ws) == folder_contents(clean)
    assert ledger_summary(ws) == ledger_summary(clean)
    assert jobs_summary(ws) == jobs_summary(clean)  # fails: the file's job is written twice


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_an_unexpected_error_in_one_files_rows_fails_that_file_alone(ws):
    """Not a crash: the raw store refuses F1's rejected line (``raw_rejected`` recreated with a
    CHECK on the file name: a ConstraintException, not a store error). As the module says, the
    group is written again file by file and F1 alone is refused with the error as its reason."""
    drop_dataset(ws)
    ddl = ws.duck.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'raw_rejected'").fetchall()[0][0]
    ws.duck.execute("DROP TABLE raw_rejected")
    ws.duck.execute(ddl.rstrip().rstrip(";").rstrip()[:-1] + f", CHECK (filename <> '{F1}'))")
    summary = ingest_only(ws)  # raises TransactionException 'Current transaction is aborted'
    assert [(o.filename, o.status) for o in summary.outcomes] == [
        (F1, "failed"),
        (F2, "completed"),
        (F3, "completed"),
        (F4, "failed"),
    ]
    assert "ConstraintException" in summary.outcomes[0].reason
