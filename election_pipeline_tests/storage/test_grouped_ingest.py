"""Small files written in groups (one commit per group, what the pipeline does) give exactly
the database of files written one by one: figures, transactions, rejected lines, jobs with
their details, ledger, DuckDB rows and moved files. And a crash in the middle of a group,
re-run, gives the same again. On SQLite and PostgreSQL."""

from __future__ import annotations

import io
import re
import time
import zipfile
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from election_pipeline.sample import generate_sample
from election_pipeline.stages.ingest_files import PARALLEL_MIN_FILES, ingest_folder, ready_files
from election_pipeline.stages.reference import load_reference
from election_pipeline_tests.builders import INGEST_LIMITS, IngestLimits
from election_pipeline_tests.stages.conftest import (
    C1,
    C2,
    CX,
    add_voters,
    at,
    bsi,
    file_name,
    make_workspace,
    rollback_of,
    simple,
    vote,
)


def drop_election(ws) -> None:
    ws.write_reference(
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,10,active", f"{C2},E1,South,R1,rural,,active"],
    )
    v1, v2 = vote("V1", at(8, 10), "K1"), vote("V2", at(8, 20), "K2")
    first = [
        simple("S1", at(8, 0), "startVoting"),
        bsi("B1", at(8, 5), 3),
        v1,
        v2,
        vote("V3", at(8, 30), "K3", rejected=True),
        "Tx9;104;SIG;4;1725609600000;K9",
    ]
    ws.drop(file_name(C1, 8), first)
    ws.drop(file_name(C1, 8, tag="-copy"), first)  # the same content again
    ws.drop(
        file_name(C1, 9),
        [
            v2,
            vote("V4", at(9, 10), "K3"),
            vote("V5", at(9, 20), "K1"),
            rollback_of(v1),
            bsi("B2", at(9, 30), 2),
            vote("V8", at(9, 40), "K2"),
            v2,
        ],
    )  # overlap, repeat
    ws.drop(
        file_name(C2, 8),
        [
            add_voters("A1", at(8, 0), count=4),
            bsi("B3", at(8, 1), 2),
            vote("V6", at(8, 2), "K6"),
            vote("V7", at(8, 3), "K7"),
        ],
    )
    ws.drop(file_name(C2, 9), ["only;bad;lines", "still;bad"])  # every line bad: refused
    ws.drop(file_name(C2, 10), b"")  # empty: refused
    ws.drop(file_name(C2, 11), b"\x00\x01binary\x00")  # binary: refused
    ws.drop(file_name(CX, 8), [bsi("X1", at(8, 7), 1), vote("X2", at(8, 9), "KX")])  # unknown contract
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(file_name(C2, 12), "\n".join([vote("V9", at(12, 5), "K9"), vote("V6", at(8, 2), "K6")]) + "\n")
    (ws.input_dir / f"{C2}_2024-09-06_1200-1300.zip").write_bytes(buf.getvalue())


def run(ws, *, grouped: bool, batch_size: int = 4) -> None:
    files = ready_files(ws.input_dir, settle_seconds=1, now=time.time() + 60)
    limits: IngestLimits = {**INGEST_LIMITS, "batch_size": batch_size}
    ingest_folder(
        files,
        duck=ws.duck,
        engine=ws.engine,
        folders=ws.folders,
        **limits,
        group_small_files=grouped,
    )
    ws.publish()


_WHEN = re.compile(r" on \d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC")


def everything(ws) -> dict:
    root = ws.root
    # A duplicate's job names the minute its first copy was recorded: the two workspaces of a
    # test are run one after the other, possibly on both sides of a minute.
    jobs = sorted(
        (
            j["filename"],
            j["status"],
            _WHEN.sub(" on <minute> UTC", j["details"]),
            j["transactions_processed"],
            j["rejected_lines"],
            j["file_hash"],
            str(Path(j["stored_path"]).relative_to(root)),
        )
        for j in ws.jobs()
    )
    ledger = sorted(
        (e["content_hash"], e["filename"], e["status"], e["size_bytes"], str(Path(e["stored_path"]).relative_to(root)))
        for e in ws.ledger()
    )
    duck = ws.duck.execute("SELECT * FROM raw_transactions ORDER BY tx_id").fetchall()
    rollbacks = ws.duck.execute("SELECT * FROM raw_rollbacks ORDER BY tx_id").fetchall()
    files = {d.name: sorted(p.name for p in d.iterdir()) for d in (ws.input_dir, ws.processed_dir, ws.quarantine_dir)}
    return {
        "snapshot": ws.snapshot(),
        "jobs": jobs,
        "ledger": ledger,
        "duck": duck,
        "rollbacks": rollbacks,
        "files": files,
    }


@pytest.fixture
def pair(tmp_path, db_url_factory):
    made = [make_workspace(tmp_path / name, db_url_factory(name)) for name in ("one_by_one", "grouped")]
    try:
        yield made
    finally:
        for ws in made:
            ws.close()


def test_grouped_ingest_equals_file_by_file(pair):
    one, grouped = pair
    for ws in pair:
        drop_election(ws)
    run(one, grouped=False)
    run(grouped, grouped=True)
    expected = everything(one)
    assert everything(grouped) == expected
    statuses = sorted(j[1] for j in expected["jobs"])
    assert statuses.count("failed") == 3 and statuses.count("completed") == 6  # 5 files + the copy (duplicate)
    assert expected["files"]["input"] == []
    # Running again changes nothing in either.
    run(grouped, grouped=True)
    assert everything(grouped)["snapshot"] == expected["snapshot"]


def _crash_on_ledger_insert(ws, filename: str) -> None:
    """A trigger makes the ledger INSERT of ``filename`` fail, as if the process died there."""
    with ws.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(
                text(
                    f"CREATE TRIGGER simulated_crash BEFORE INSERT ON file_ledger WHEN NEW.filename = "
                    f"'{filename}' BEGIN SELECT RAISE(ABORT, 'simulated crash'); END"
                )
            )
        else:
            conn.execute(
                text(
                    "CREATE FUNCTION simulated_crash() RETURNS trigger LANGUAGE plpgsql AS "
                    "$$ BEGIN RAISE EXCEPTION 'simulated crash'; END $$"
                )
            )
            conn.execute(
                text(
                    f"CREATE TRIGGER simulated_crash BEFORE INSERT ON file_ledger FOR EACH ROW "
                    f"WHEN (NEW.filename = '{filename}') EXECUTE FUNCTION simulated_crash()"
                )
            )


def _remove_crash(ws) -> None:
    with ws.engine.begin() as conn:
        if conn.dialect.name == "sqlite":
            conn.execute(text("DROP TRIGGER simulated_crash"))
        else:
            conn.execute(text("DROP TRIGGER simulated_crash ON file_ledger"))
            conn.execute(text("DROP FUNCTION simulated_crash()"))


def test_crash_in_the_middle_of_a_group_then_rerun_equals_clean(pair):
    """The operational transaction of the group holding the South 08:00 file fails after
    DuckDB committed it: the groups before it are complete, this one is in DuckDB only and
    its files are still in the input folder. The next run finishes the work."""
    clean, crashed = pair
    for ws in pair:
        drop_election(ws)
    run(clean, grouped=True)

    victim = file_name(C2, 8)
    _crash_on_ledger_insert(crashed, victim)
    with pytest.raises(DBAPIError, match="simulated crash"):
        run(crashed, grouped=True)
    _remove_crash(crashed)
    crashed.reopen_duck()  # the process is gone: a new one opens the files again
    assert [j["status"] for j in crashed.jobs() if j["filename"] == victim] == ["processing"]
    assert (crashed.input_dir / victim).exists()
    # ("...0800-0900-copy.csv" sorts before "...0800-0900.csv": the copy is the one counted)
    assert {e["filename"] for e in crashed.ledger()} == {file_name(C1, 8, tag="-copy"), file_name(C1, 9)}
    in_duck = crashed.duck.execute("SELECT count(*) FROM raw_transactions WHERE source = ?", [victim]).fetchall()[0][0]
    assert in_duck == 4 and not any(t["source_file"] == victim for t in crashed.transactions().values())

    run(crashed, grouped=True)
    assert everything(crashed) == everything(clean)


def test_many_files_parsed_ahead_in_worker_processes_give_the_same_database(tmp_path, db_url_factory):
    """With PARALLEL_MIN_FILES files or more, workers parse ahead; nothing changes."""
    made = []
    try:
        for name in ("one_by_one", "parallel"):
            ws = make_workspace(tmp_path / name, db_url_factory(name))
            made.append(ws)
            summary = generate_sample(ws.input_dir, ws.reference_dir, seed=3, constituencies=1)
            load_reference(ws.reference_dir, ws.engine)
        assert len(summary.files) >= PARALLEL_MIN_FILES
        run(made[0], grouped=False, batch_size=500)
        run(made[1], grouped=True, batch_size=500)
        assert everything(made[1]) == everything(made[0])
    finally:
        for ws in made:
            ws.close()
