"""Poison files: a problem in one file affects that file alone.

Every test drops real files into the real input folder of a workspace (operational database
on SQLite, then on PostgreSQL) and runs the real stages. The rule checked each time: the bad
file's FileProcessingJob ends ``failed`` with a reason a person can act on, the file is moved
to the quarantine folder (never deleted; for a symbolic link the link itself is moved and its
target is left untouched), every other file of the same run is counted (a good file dropped
alongside has exactly its hand-computed figures) and the run itself succeeds.

Tuples from ``ws.hourly_figures`` are
(transaction_count, bulletins_issued, votes_cast, revote_count, rejected_count).
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import resource
import shutil
import stat
import subprocess
import sys
import tempfile
import threading
import time
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy.exc
from sqlalchemy import select

from election_pipeline.db.models import Alert, Constituency
from election_pipeline.stages import ingest_files
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.ingest_files import IngestSummary, ingest_folder, ready_files
from election_pipeline.stages.publish import publish_all
from election_pipeline.stages.quality import (
    every_transaction_in_a_known_hour,
    hourly_totals_reconcile,
    no_transaction_counted_twice,
)
from election_pipeline_tests.builders import FULL_CHECK_EVERY_MINUTES, INGEST_LIMITS

from .conftest import (
    C1,
    C2,
    C3,
    C4,
    SERVICE_KEY,
    Workspace,
    at,
    bsi,
    export_line,
    file_name,
    hour,
    make_workspace,
    vote,
)

REPO_ROOT = Path(__file__).resolve().parents[2]

# --------------------------------------------------------------------------------------
# Helpers
# --------------------------------------------------------------------------------------

#: The good file dropped next to every poison file: one vote and one blindSigIssue of 3
#: bulletins in hour 09 of C2.
GOOD_NAME = file_name(C2, 9)
GOOD_LINES = [vote("G1", at(9, 1), "GoodKey1"), bsi("G2", at(9, 2), 3)]
#: G1 + G2 = 2 transactions, 3 bulletins, 1 voter (GoodKey1).
GOOD_FIGURES = {hour(9): (2, 3, 1, 0, 0)}


def drop_good(ws: Workspace) -> bytes:
    return ws.drop(GOOD_NAME, GOOD_LINES).read_bytes()


def assert_good_counted(ws: Workspace) -> None:
    assert ws.hourly_figures(C2) == GOOD_FIGURES
    job = jobs_by_name(ws)[GOOD_NAME]
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 2, 0)
    assert (ws.processed_dir / GOOD_NAME).exists()


def csv_bytes(lines: list[str]) -> bytes:
    return "".join(line + "\n" for line in lines).encode("utf-8")


def jobs_by_name(ws: Workspace) -> dict[str, dict[str, Any]]:
    jobs = ws.jobs()
    by_name = {j["filename"]: j for j in jobs}
    assert len(by_name) == len(jobs), f"more than one job for a file: {[j['filename'] for j in jobs]}"
    return by_name


def assert_failed(ws: Workspace, name: str, *words: str) -> dict[str, Any]:
    """The job of ``name`` failed, its reason holds each of ``words``, the entry was moved to
    the quarantine folder (not left in the input folder)."""
    job = jobs_by_name(ws)[name]
    assert job["status"] == "failed", job
    for word in words:
        assert word in job["details"], (word, job["details"])
    assert job["transactions_processed"] == 0
    stored = Path(job["stored_path"])
    assert stored.parent == ws.quarantine_dir
    assert stored.is_symlink() or stored.exists()
    assert not (ws.input_dir / name).is_symlink() and not (ws.input_dir / name).exists()
    return job


def assert_quarantined_bytes(ws: Workspace, name: str, data: bytes, *words: str) -> dict[str, Any]:
    job = assert_failed(ws, name, *words)
    assert Path(job["stored_path"]).read_bytes() == data  # moved byte for byte, never deleted
    return job


def constituency_ids(ws: Workspace) -> set[str]:
    with ws.engine.connect() as conn:
        return set(conn.execute(select(Constituency.id)).scalars())


def alerts(ws: Workspace) -> list[dict[str, Any]]:
    with ws.engine.connect() as conn:
        return [dict(r) for r in conn.execute(select(Alert.__table__).order_by(Alert.fingerprint)).mappings().all()]


def run_with_alerts(ws: Workspace) -> IngestSummary:
    """A whole run and then the alerts stage on the metrics' findings."""
    summary = ws.ingest()
    _, metrics = ws.publish()
    publish_alerts(ws.engine, metrics.findings)
    return summary


def quality_checks_pass(ws: Workspace) -> None:
    for check in (no_transaction_counted_twice, hourly_totals_reconcile, every_transaction_in_a_known_hour):
        result = check(ws.duck, ws.engine, full_every_minutes=FULL_CHECK_EVERY_MINUTES)
        assert result.passed, (check.__name__, result.summary, result.figures)


# --------------------------------------------------------------------------------------
# 1. JSON nested thousands of levels deep
# --------------------------------------------------------------------------------------

DEEP = "[" * 5000 + "]" * 5000


def deep_params_line(tx_id: str, ts: int) -> str:
    """A line whose params field is a JSON array nested 5,000 levels deep."""
    return ";".join([tx_id, "104", "Sig", "4", str(ts), SERVICE_KEY, "0", "", DEEP, "[]", '{"contractVersion":1}', ""])


def deep_data_line(tx_id: str, ts: int) -> str:
    """A blindSigIssue whose ``data`` JSON string holds an array nested 5,000 levels deep."""
    return export_line(
        tx_id,
        "blindSigIssue",
        ts,
        params=[{"key": "data", "stringValue": DEEP}],
        diff=[{"key": "BLINDSIG_x", "boolValue": True}],
    )


def assert_a_second_run_changes_nothing(ws: Workspace) -> None:
    before, jobs_before = ws.snapshot(), ws.jobs()
    summary = ws.run()
    assert summary.outcomes == []
    assert ws.snapshot() == before
    assert ws.jobs() == jobs_before


NESTED = "field 8 (params) is nested too deeply to read (JSON more than about 900 levels deep)"


def test_json_nested_thousands_of_levels_deep_rejects_the_line_alone(ws):
    mixed = file_name(C1, 8)
    deep_params, deep_data = deep_params_line("D1", at(8, 2)), deep_data_line("D2", at(8, 3))
    ws.drop(mixed, [vote("V1", at(8, 1), "K1"), deep_params, deep_data, bsi("B1", at(8, 4), 2)])
    drop_good(ws)

    ws.run()

    assert list(ws.input_dir.iterdir()) == []  # nothing half-processed is left behind
    assert [(r["filename"], r["line_number"], r["reason"], r["raw_line"]) for r in ws.rejected_rows()] == [
        (mixed, 2, NESTED, deep_params),
        (mixed, 3, "blindSigIssue parameter 'data' is nested too deeply to read", deep_data),
    ]
    job = jobs_by_name(ws)[mixed]
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 2, 2)
    # V1 (1 vote) + B1 (2 bulletins) = 2 transactions; D1 and D2 counted nowhere
    assert ws.hourly_figures(C1) == {hour(8): (2, 2, 1, 0, 0)}
    assert set(ws.transactions()) == {"V1", "B1", "G1", "G2"}
    assert_good_counted(ws)
    assert_a_second_run_changes_nothing(ws)


def test_a_file_whose_only_line_is_nested_too_deeply_fails_alone(ws):
    only = file_name(C1, 10)
    deep = deep_params_line("D3", at(10, 1))
    only_data = ws.drop(only, [deep]).read_bytes()
    drop_good(ws)

    ws.run()

    assert list(ws.input_dir.iterdir()) == []
    assert_good_counted(ws)
    job = assert_quarantined_bytes(
        ws, only, only_data, f"none of the 1 lines of {only} could be read (first problem: {only} line 1: {NESTED}"
    )
    assert job["rejected_lines"] == 1
    assert [(r["filename"], r["line_number"], r["reason"], r["raw_line"]) for r in ws.rejected_rows()] == [
        (only, 1, NESTED, deep)
    ]
    assert ws.hourly(C1) == {}
    assert_a_second_run_changes_nothing(ws)


# --------------------------------------------------------------------------------------
# 2. A file the pipeline cannot read (permissions)
# --------------------------------------------------------------------------------------

_INGEST_AS_ANOTHER_USER = """
import json, sys, time
from pathlib import Path
from election_pipeline.analytics.raw_store import open_warehouse
from election_pipeline.db.session import get_engine
from election_pipeline.stages.ingest_files import DropFolders, ingest_folder, ready_files
from election_pipeline.stages.publish import publish_all
from election_pipeline_tests.builders import INGEST_LIMITS

root, url = Path(sys.argv[1]), sys.argv[2]
folders = DropFolders(root / "input", root / "processed", root / "quarantine")
files = ready_files(folders.input_dir, settle_seconds=1, now=time.time() + 60)
with open_warehouse(root / "warehouse.duckdb") as duck:
    summary = ingest_folder(files, duck=duck, folders=folders, **INGEST_LIMITS)
    publish_all(duck, get_engine(url))
print(json.dumps([[o.filename, o.status, o.reason] for o in summary.outcomes]))
"""

NOBODY = 65534


@pytest.fixture()
def shared_ws(db_url: str) -> Iterator[tuple[Workspace, str]]:
    """A workspace another user can reach: outside pytest's private temporary folder (which
    only root may enter), its folders and database files open to everyone. Yields the
    workspace and the URL of its operational database."""
    base = Path(tempfile.mkdtemp(prefix="poison-perm-"))
    os.chmod(base, 0o777)
    root = base / "ws"
    url = f"sqlite:///{root / 'ops.db'}" if db_url.startswith("sqlite") else db_url
    workspace = make_workspace(root, url)
    try:
        yield workspace, url
    finally:
        workspace.close()
        shutil.rmtree(base, ignore_errors=True)


def test_a_file_that_cannot_be_read_is_refused_alone(shared_ws):
    setpriv = shutil.which("setpriv")
    if setpriv is None:
        reason = "setpriv is missing: the ingest cannot be run as another user (as root every file is readable)"
        print(f"\nSKIPPING: {reason}", file=sys.stderr)
        pytest.skip(reason)
    ws, url = shared_ws
    locked_name = file_name(C1, 8)
    locked_data = csv_bytes([vote("V1", at(8, 1), "K1")])
    locked = ws.drop(locked_name, locked_data)
    os.chmod(locked, 0)
    drop_good(ws)
    home = ws.root / "home"
    home.mkdir()
    for folder in (ws.root, ws.input_dir, ws.processed_dir, ws.quarantine_dir, ws.reference_dir, home):
        os.chmod(folder, 0o777)
    ws.duck.close()  # DuckDB allows one writing process: the other user's process opens the file
    ws.engine.dispose()
    for db_file in [*ws.root.glob("ops.db*"), *ws.root.glob("warehouse.duckdb*")]:  # with -wal, -shm
        os.chmod(db_file, 0o666)
    proc = subprocess.run(
        [setpriv, f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups", sys.executable, "-c"]
        + [_INGEST_AS_ANOTHER_USER, str(ws.root), url],
        cwd=REPO_ROOT,
        env={**os.environ, "HOME": str(home), "PYTHONDONTWRITEBYTECODE": "1"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr  # the run succeeds
    outcomes = json.loads(proc.stdout.strip().splitlines()[-1])
    assert [o[:2] for o in outcomes] == [[locked_name, "failed"], [GOOD_NAME, "completed"]]
    ws.open_duck()
    ws.publish()

    job = assert_failed(ws, locked_name, f"{locked_name} cannot be read: permission denied")
    kept = Path(job["stored_path"])
    assert kept == ws.quarantine_dir / locked_name
    assert stat.S_IMODE(kept.lstat().st_mode) == 0  # the file itself, moved as it was
    assert kept.read_bytes() == locked_data  # (root may read it)
    assert ws.rejected_rows() == []
    assert ws.hourly(C1) == {}
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 3. NUL characters
# --------------------------------------------------------------------------------------


def with_nul_sender(line: str, sender: str) -> str:
    fields = line.split(";")
    fields[5] = sender
    return ";".join(fields)


def test_nul_inside_a_line_rejects_the_line_and_nul_in_the_head_refuses_the_file(ws):
    late = file_name(C1, 8)
    head = [vote(f"V{i:02d}", at(8, i), f"K{i:02d}") for i in range(1, 11)]
    assert len(csv_bytes(head)) > 8192  # the NUL lines come after the first 8 KiB
    nul_sender = with_nul_sender(vote("N1", at(8, 30), "KN1"), "KN\x001")
    nul_in_json = vote("N2", at(8, 31), "KN2").replace("QkFMTE9U", "QkFM\x00TE9U", 1)  # in the ballot string
    assert nul_sender.count("\x00") == 1 and nul_in_json.count("\x00") == 1
    ws.drop(late, [*head, nul_sender, nul_in_json, vote("V11", at(8, 40), "K11")])
    early = file_name(C1, 11)
    early_data = csv_bytes([with_nul_sender(vote("E1", at(11, 1), "KE1"), "KE\x001")])
    ws.drop(early, early_data)
    drop_good(ws)

    ws.run()

    nul = "the line contains a NUL character (\\x00); an export line is text"
    rows = ws.rejected_rows()
    assert [(r["filename"], r["line_number"], r["reason"]) for r in rows] == [(late, 11, nul), (late, 12, nul)]
    assert [r["raw_line"] for r in rows] == [nul_sender.replace("\x00", "\\x00"), nul_in_json.replace("\x00", "\\x00")]
    assert all("\x00" not in r["raw_line"] and "\\x00" in r["raw_line"] for r in rows)
    job = jobs_by_name(ws)[late]
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 11, 2)
    # V01..V11: 11 votes of 11 keys in hour 08; N1 and N2 are not counted
    assert ws.hourly_figures(C1) == {hour(8): (11, 0, 11, 0, 0)}
    assert not {"N1", "N2", "E1"} & set(ws.transactions())
    assert_quarantined_bytes(ws, early, early_data, f"{early} is a binary file (it contains NUL bytes)")
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 4. Anything else unexpected while reading one file
# --------------------------------------------------------------------------------------


def damaged_zip(member: str, lines: list[str]) -> bytes:
    """A zip whose deflated member is damaged in the middle of its compressed data."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, csv_bytes(lines))
    packed = bytearray(buf.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(packed))).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    middle = start + info.compress_size // 2
    assert info.compress_size > 4096
    for i in range(middle, middle + 64):
        packed[i] ^= 0xFF
    return bytes(packed)


def test_a_zip_damaged_inside_a_member_fails_alone(ws):
    # many lines: the first ones are read before the damage is found; none of them may count
    member_lines = [vote(f"Z{i:04d}", at(8, i % 60, i // 60), f"ZK{i:04d}") for i in range(3000)]
    zip_data = damaged_zip(file_name(C3, 8), member_lines)
    ws.drop("CtrEast3_batch.zip", zip_data)
    drop_good(ws)

    ws.run()

    assert_good_counted(ws)
    assert ws.hourly(C3) == {}
    assert set(ws.transactions()) == {"G1", "G2"}
    assert ws.rejected_rows() == []
    assert_quarantined_bytes(
        ws, "CtrEast3_batch.zip", zip_data, f"CtrEast3_batch.zip::{file_name(C3, 8)} is damaged and cannot be read"
    )


def test_a_broken_symbolic_link_fails_alone(ws, tmp_path):
    gone = tmp_path / "gone" / file_name(C4, 8)
    gone.parent.mkdir()
    gone.write_bytes(csv_bytes([vote("L1", at(8, 1), "LK1")]))
    link = ws.input_dir / file_name(C4, 8)
    link.symlink_to(gone)
    gone.unlink()  # the link is broken: it still counts as a link
    drop_good(ws)

    ws.run()

    job = assert_failed(ws, link.name, f"{link.name} is a symbolic link (to {gone})", "links are not followed")
    kept = Path(job["stored_path"])
    assert kept.is_symlink() and os.readlink(kept) == str(gone)
    assert ws.hourly(C4) == {}
    assert set(ws.transactions()) == {"G1", "G2"}
    assert ws.rejected_rows() == []
    assert_good_counted(ws)


def test_a_file_removed_between_listing_and_reading_fails_alone(ws):
    before = file_name(C3, 8)
    during = file_name(C4, 8)
    during_zip = "CtrWest4_batch.zip"
    first = file_name(C1, 8)  # this content twice: the second copy starts a second group of files
    same = csv_bytes([vote("V1", at(8, 1), "K1")])
    ws.drop("A_broken.csv", b"\x00binary")  # fails in the first group: the progress report comes after it
    ws.drop(first, same)
    ws.drop(file_name(C1, 9), same)
    drop_good(ws)
    ws.drop(before, [vote("R1", at(8, 1), "RK1")])
    ws.drop(during, [vote("R2", at(8, 2), "RK2")])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(file_name(C4, 9), csv_bytes([vote("R3", at(9, 3), "RK3")]))
    ws.drop(during_zip, buf.getvalue())

    files = ready_files(ws.input_dir, settle_seconds=1, now=time.time() + 60)
    assert before in [p.name for p in files]
    (ws.input_dir / before).unlink()  # gone after the listing, before the ingest

    def progress(message: str) -> None:
        if "A_broken.csv: failed" in message:  # the first group is written; the second not yet read
            (ws.input_dir / during).unlink(missing_ok=True)
            (ws.input_dir / during_zip).unlink(missing_ok=True)

    summary = ingest_folder(files, duck=ws.duck, folders=ws.folders, progress=progress, **INGEST_LIMITS)
    publish_all(ws.duck, ws.engine)
    ws.publish()

    statuses = {o.filename: o.status for o in summary.outcomes}
    assert statuses["A_broken.csv"] == "failed"
    assert (statuses[first], statuses[file_name(C1, 9)], statuses[GOOD_NAME]) == ("completed", "duplicate", "completed")
    jobs = jobs_by_name(ws)
    assert before not in jobs  # gone before the ingest looked at it: nothing to report or move
    assert jobs[during_zip]["status"] == "failed"
    assert f"{during_zip} cannot be read: No such file or directory" in jobs[during_zip]["details"]
    assert ws.hourly(C3) == {} and ws.hourly(C4) == {}
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}  # V1 once
    assert_good_counted(ws)
    # the .csv that vanished is reported as what happened to it, not as an empty file
    assert jobs[during]["status"] == "failed"
    assert "is empty" not in jobs[during]["details"]
    assert f"{during} cannot be read" in jobs[during]["details"], jobs[during]["details"]


def zipped(member: str, lines: list[str]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(member, csv_bytes(lines))
    return buf.getvalue()


@pytest.mark.parametrize("kind", ["csv", "zip"])
def test_a_file_changed_between_hashing_and_reading_is_read_again_next_run(ws, kind, monkeypatch):
    """A .csv still being written when its group is read (its size or time differs from when
    it was hashed) is not counted under the hash of another content: its job says so, it has
    no ledger entry and stays in the drop folder, and the next run counts its final content."""
    # One file a group: the file after a group is hashed (it is found not to fit) before that
    # group is written, and read after it.
    monkeypatch.setattr(ingest_files, "GROUP_MAX_FILES", 1)
    growing = file_name(C4, 8) if kind == "csv" else "CtrWest4_batch.zip"  # sorts last
    ws.drop("CtrWest4_0_broken.csv", b"\x00binary")  # sorts just before it: the progress report comes after it
    first = file_name(C1, 8)
    same = csv_bytes([vote("V1", at(8, 1), "K1")])
    ws.drop(first, same)
    ws.drop(file_name(C1, 9), same)  # same content twice: the second copy starts a second group
    drop_good(ws)
    first_lines = [vote("R1", at(8, 1), "RK1")]
    final_lines = [*first_lines, vote("R2", at(8, 2), "RK2")]
    if kind == "csv":
        ws.drop(growing, first_lines)
    else:
        ws.drop(growing, zipped(file_name(C4, 8), first_lines))
    files = ready_files(ws.input_dir, settle_seconds=1, now=time.time() + 60)

    def progress(message: str) -> None:
        if "CtrWest4_0_broken.csv: failed" in message:  # hashed already; read with the next group
            data = csv_bytes(final_lines) if kind == "csv" else zipped(file_name(C4, 8), final_lines)
            (ws.input_dir / growing).write_bytes(data)

    summary = ingest_folder(files, duck=ws.duck, folders=ws.folders, progress=progress, **INGEST_LIMITS)
    publish_all(ws.duck, ws.engine)
    ws.publish()
    outcome = next(o for o in summary.outcomes if o.filename == growing)
    assert (outcome.status, outcome.stored_path) == ("failed", "")
    assert "changed while it was being read" in outcome.reason
    assert (ws.input_dir / growing).exists()  # left where it is
    assert ws.duck.execute("SELECT count(*) FROM file_ledger WHERE filename = ?", [growing]).fetchall() == [(0,)]
    assert ws.hourly(C4) == {}
    assert_good_counted(ws)

    ws.run()  # the file, complete now, is counted once with both lines
    assert ws.hourly_figures(C4) == {hour(8): (2, 0, 2, 0, 0)}
    # two jobs: the read that saw it change, then the one that counted it
    assert [j["status"] for j in ws.jobs() if j["filename"] == growing] == ["failed", "completed"]
    assert not (ws.input_dir / growing).exists()


def test_a_group_too_big_for_duckdbs_memory_is_halved_and_a_file_too_big_fails_alone(ws):
    """Under a small DuckDB memory limit, a group of files that does not fit is written in
    halves (every file counted); a single file that does not fit fails alone, with no ledger
    entry, and is counted once the limit is raised and the file dropped again."""
    hours = [8, 9, 10, 11]
    for h in hours:  # ~1,000 votes each, far apart enough in memory that one at a time fits
        ws.drop(file_name(C1, h), [vote(f"V{h}-{i}", at(h, i % 60), f"K{h}-{i}") for i in range(1_000)])
    big = file_name(C4, 8)
    ws.drop(big, [vote(f"B{i}", at(8, i % 60), f"BK{i}") for i in range(60_000)])  # ~70 MB
    drop_good(ws)
    ws.duck.execute("SET memory_limit = '64MB'")
    summary = ws.run()
    statuses = {o.filename: o.status for o in summary.outcomes}
    assert [statuses[file_name(C1, h)] for h in hours] == ["completed"] * 4
    assert ws.hourly_figures(C1) == {hour(h): (1_000, 0, 1_000, 0, 0) for h in hours}
    assert_good_counted(ws)
    job = assert_failed(ws, big, "needs more memory than DuckDB may use", "ELECTION_DUCKDB_MEMORY_LIMIT")
    assert job["status"] == "failed"
    assert ws.duck.execute("SELECT count(*) FROM file_ledger WHERE filename = ?", [big]).fetchall() == [(0,)]
    assert ws.hourly(C4) == {}

    ws.duck.execute("SET memory_limit = '2GB'")
    shutil.move(ws.quarantine_dir / big, ws.input_dir / big)
    ws.run()
    assert ws.hourly_figures(C4) == {hour(8): (60_000, 0, 60_000, 0, 0)}


# --------------------------------------------------------------------------------------
# 5. A first run with nothing (or nothing good) to read
# --------------------------------------------------------------------------------------


def test_a_first_run_with_an_empty_input_folder_succeeds(ws):
    quality_checks_pass(ws)  # on the brand-new store, before any stage
    summary = ws.run()
    assert (summary.outcomes, summary.noticed) == ([], [])
    _, metrics = ws.publish()
    assert metrics.findings == []
    quality_checks_pass(ws)
    assert ws.jobs() == [] and ws.transactions() == {} and ws.rejected_rows() == []


def test_a_first_run_with_only_bad_files_succeeds(ws):
    bad_files = {  # name: (content, words of the reason)
        file_name(C1, 8): (b"", "is empty: it holds no transaction line"),
        file_name(C1, 9): (b"\x00binary", "is a binary file (it contains NUL bytes)"),
        "notes.txt": (b"hello\n", "notes.txt is not a .csv, .zip, .jsonl, .jsonl.gz or .json.gz file"),
    }
    for name, (data, _) in bad_files.items():
        ws.drop(name, data)
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["failed"] * 3
    for name, (data, words) in bad_files.items():
        assert_quarantined_bytes(ws, name, data, words)
    assert ws.transactions() == {} and ws.hourly(C1) == {}
    quality_checks_pass(ws)


def test_a_first_run_with_only_a_file_of_bad_lines_succeeds(ws):
    name = file_name(C1, 10)
    ws.drop(name, b"not;an;export;line\n")
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["failed"]
    quality_checks_pass(ws)
    assert ws.transactions() == {} and ws.hourly(C1) == {}
    assert_quarantined_bytes(ws, name, b"not;an;export;line\n", f"none of the 1 lines of {name} could be read")
    assert [(r["line_number"], r["raw_line"]) for r in ws.rejected_rows()] == [(1, "not;an;export;line")]


# --------------------------------------------------------------------------------------
# 6. Symbolic links pointing outside the input folder
# --------------------------------------------------------------------------------------


def test_symbolic_links_are_refused_and_never_followed(ws, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    target_csv = outside / file_name(C3, 8)
    target_csv.write_bytes(csv_bytes([vote("S1", at(8, 1), "SK1"), bsi("S2", at(8, 2), 4)]))
    target_zip = outside / "batch.zip"
    with zipfile.ZipFile(target_zip, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(file_name(C3, 9), csv_bytes([vote("S3", at(9, 1), "SK3")]))
    passwd = Path("/etc/passwd")
    links = {
        file_name(C3, 8): target_csv,
        file_name(C4, 8): passwd,
        "CtrEast3_batch.zip": target_zip,
    }
    before = {t: (t.read_bytes(), t.stat().st_mtime_ns) for t in links.values()}
    for name, target in links.items():
        (ws.input_dir / name).symlink_to(target)
    drop_good(ws)

    ws.run()

    for name, target in links.items():
        job = assert_failed(
            ws,
            name,
            f"{name} is a symbolic link (to {target}); links are not followed",
            "copy the file itself into the drop folder",
        )
        kept = Path(job["stored_path"])
        assert kept.is_symlink() and os.readlink(kept) == str(target)  # the LINK was moved
        assert (target.read_bytes(), target.stat().st_mtime_ns) == before[target]  # its target untouched
    assert ws.rejected_rows() == []  # nothing read through a link
    assert set(ws.transactions()) == {"G1", "G2"}
    assert ws.hourly(C3) == {} and ws.hourly(C4) == {}
    assert not {C3, C4} & constituency_ids(ws)
    assert ws.ledger() == [e for e in ws.ledger() if e["filename"] == GOOD_NAME]
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 7. A folder and a FIFO in the input folder
# --------------------------------------------------------------------------------------


def run_within(ws: Workspace, seconds: float, unblock: Callable[[], None]) -> IngestSummary:
    """``ws.run()`` in a thread; fails (after calling ``unblock``) when it takes longer."""
    result: dict[str, Any] = {}

    def target() -> None:
        try:
            result["summary"] = ws.run()
        except BaseException as err:
            result["error"] = err

    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        unblock()
        thread.join(30)
        pytest.fail(f"the run hung for more than {seconds} s")
    if "error" in result:
        raise result["error"]
    return result["summary"]


def test_a_folder_and_a_fifo_are_reported_once_and_left_in_place(ws):
    sub = ws.input_dir / "subfolder"
    sub.mkdir()
    (sub / file_name(C3, 8)).write_bytes(csv_bytes([vote("S1", at(8, 1), "SK1")]))
    fifo = ws.input_dir / file_name(C4, 8)
    os.mkfifo(fifo)
    drop_good(ws)

    def unblock() -> None:  # a reader blocked opening the FIFO is released by a writer
        fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)

    first = run_within(ws, 120, unblock)
    assert first.noticed == [
        (fifo.name, f"{fifo.name} is not a regular file (a FIFO, socket or device); it is left where it is"),
        ("subfolder", "subfolder is a folder: sub-folders are not read; it is left where it is"),
    ]
    assert [(o.filename, o.status) for o in first.outcomes] == [(GOOD_NAME, "completed")]
    second = run_within(ws, 120, unblock)
    assert (second.noticed, second.outcomes) == ([], [])

    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)
    assert sub.is_dir() and (sub / file_name(C3, 8)).is_file()
    assert sorted(p.name for p in ws.input_dir.iterdir()) == [fifo.name, "subfolder"]
    assert set(jobs_by_name(ws)) == {GOOD_NAME}
    assert list(ws.quarantine_dir.iterdir()) == []
    assert ws.hourly(C3) == {} and ws.hourly(C4) == {}
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 8. A type-103 line naming another operation
# --------------------------------------------------------------------------------------


def test_a_type_103_vote_is_rejected_and_not_counted(ws):
    name = file_name(C1, 8)
    params = [{"key": "vote", "binaryValue": "QkFMTE9U"}, {"key": "blindSig", "binaryValue": "U0lH"}]
    as_create = export_line(
        "T1", "vote", at(8, 2), "KT1", tx_type=103, params=params, diff=[{"key": "VOTE_addrKT1", "stringValue": "T1"}]
    )
    ws.drop(name, [vote("V1", at(8, 1), "K1"), as_create])
    drop_good(ws)

    ws.run()

    [row] = ws.rejected_rows()
    assert (row["filename"], row["line_number"], row["raw_line"]) == (name, 2, as_create)
    assert row["reason"] == (
        "a type-103 line creates the contract and can only be createContract; this one names 'vote'"
    )
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}  # V1 alone: KT1 did not vote
    assert "T1" not in ws.transactions()
    job = jobs_by_name(ws)[name]
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 1, 1)
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 9. One transaction id, two different contents
# --------------------------------------------------------------------------------------

FILE_A = file_name(C1, 8)
FILE_B = file_name(C1, 9)
SAME_Y1 = bsi("Y1", at(8, 20), 2)  # in both files, byte for byte
LINES_A = [vote("X1", at(8, 10), "K1"), SAME_Y1, vote("V1", at(8, 30), "K2")]
LINES_B = [vote("X1", at(9, 10), "K9"), SAME_Y1, vote("V2", at(9, 30), "K3")]
#: X1 stands in neither version. Hour 08: Y1 + V1 = 2 tx, 2 bulletins, K2; hour 09: V2 (K3).
CONFLICT_HOURLY = {hour(8): (2, 2, 1, 0, 0), hour(9): (1, 0, 1, 0, 0)}
TOTALS = ("transaction_count", "bulletins_issued", "votes_cast", "revote_count", "rejected_count")


def conflict_run(ws: Workspace, batches: list[list[tuple[str, list[str]]]]) -> None:
    for batch in batches:
        for name, lines in batch:
            ws.drop(name, lines)
        run_with_alerts(ws)


def test_the_same_id_with_different_content_stands_nowhere_whatever_the_order(ws, workspace_factory):
    a_then_b = ws
    b_then_a = workspace_factory("b_then_a")
    together = workspace_factory("together")
    conflict_run(a_then_b, [[(FILE_A, LINES_A), (GOOD_NAME, GOOD_LINES)], [(FILE_B, LINES_B)]])
    conflict_run(b_then_a, [[(FILE_B, LINES_B), (GOOD_NAME, GOOD_LINES)], [(FILE_A, LINES_A)]])
    conflict_run(together, [[(FILE_A, LINES_A), (FILE_B, LINES_B), (GOOD_NAME, GOOD_LINES)]])

    for w in (a_then_b, b_then_a, together):
        assert w.hourly_figures(C1) == CONFLICT_HOURLY
        c = w.constituency(C1)
        assert tuple(c[k] for k in TOTALS) == (3, 2, 2, 0, 0)  # Y1 once, V1, V2; X1 nowhere
        assert w.hourly_figures(C2) == GOOD_FIGURES
        assert w.transactions()["X1"]["in_conflict"] is True
        assert {j["status"] for j in w.jobs()} == {"completed"}

        conflict_alerts = [a for a in alerts(w) if a["type"] == "conflicting_transaction"]
        assert len(conflict_alerts) == 1, conflict_alerts
        [alert] = conflict_alerts
        assert (alert["severity"], alert["constituency_id"], alert["status"]) == ("critical", C1, "active")
        details = alert["details"]
        assert details["evidence_tx_ids"] == ["X1"]  # Y1, the same content twice, is no conflict
        figures = details["figures"]
        assert (figures["tx_id"], figures["copies_seen"], figures["counted"]) == ("X1", 2, False)
        assert {(c["source"], c["line_number"], c["sender"], c["ts"]) for c in figures["copies"]} == {
            (FILE_A, 1, "K1", "2024-09-06T08:10:00.000"),
            (FILE_B, 1, "K9", "2024-09-06T09:10:00.000"),
        }
        assert sorted(figures["differing_fields"]) == ["sender", "timestamp"]
    assert a_then_b.snapshot()["hourly"] == b_then_a.snapshot()["hourly"] == together.snapshot()["hourly"]
    for k in (*TOTALS, "participation_rate", "anomaly_score"):
        assert a_then_b.constituency(C1)[k] == b_then_a.constituency(C1)[k] == together.constituency(C1)[k], k


# --------------------------------------------------------------------------------------
# 10. A 50 MB rejected line
# --------------------------------------------------------------------------------------


def test_a_50_mb_rejected_line_is_kept_shortened_with_its_length_and_hash(ws):
    name = file_name(C1, 8)
    # A multi-byte character in the first 65,536 characters: the cut is made in characters,
    # the length is counted in bytes. Type 999 is rejected.
    signature = "é" * 1000 + "S" * 50_000_000
    big = ";".join(["Big1", "999", signature, "4", str(at(8, 5)), SERVICE_KEY, "0", "", "[]", "[]", "{}", ""])
    ws.drop(name, [vote("V1", at(8, 1), "K1"), big, vote("V2", at(8, 2), "K2")])
    drop_good(ws)
    data = big.encode("utf-8")
    expected = (big[:65_536], len(data), hashlib.sha256(data).hexdigest())
    del data

    ws.run()

    [row] = ws.rejected_rows()
    assert (row["line_number"], row["reason"]) == (
        2,
        "field 1 (type) is 999; only 103 (create) and 104 (call) are known",
    )
    assert (row["raw_line"], row["line_length"], row["line_sha256"]) == expected
    assert len(row["raw_line"]) == 65_536 and row["line_length"] == 50_000_000 + 2 * 1000 + len(big) - len(signature)
    assert ws.hourly_figures(C1) == {hour(8): (2, 0, 2, 0, 0)}  # V1, V2
    job = jobs_by_name(ws)[name]
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 2, 1)
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 11. A 1 MB zip holding a 1 GiB inner zip
# --------------------------------------------------------------------------------------


def write_nested_bomb(path: Path, inner_bytes: int) -> None:
    """``path``: a deflated zip holding ``inner.zip``, itself a zip whose stored member is one
    export line followed by blank lines, ``inner_bytes`` in all. Written streaming, a megabyte
    at a time; blank lines compress about a thousand times."""
    line = (vote("BOMB", at(8, 1), "BK") + "\n").encode()
    chunk = b"\n" * 1024**2
    with (
        zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as outer,
        outer.open("inner.zip", "w", force_zip64=True) as inner_stream,
        zipfile.ZipFile(inner_stream, "w", zipfile.ZIP_STORED) as inner,
        inner.open(file_name(C1, 8), "w", force_zip64=True) as member,
    ):
        member.write(line)
        for _ in range(inner_bytes // len(chunk)):
            member.write(chunk)


def test_a_small_zip_holding_a_huge_inner_zip_is_refused_before_reading_it(ws):
    started = time.monotonic()
    bomb = ws.input_dir / "CtrNorth1_bomb.zip"
    write_nested_bomb(bomb, 1024**3)
    size = bomb.stat().st_size
    assert size < 2 * 1024**2, size  # about 1 MB
    [info] = zipfile.ZipFile(bomb).infolist()
    assert info.file_size > 1024**3  # the inner zip is over 1 GiB
    drop_good(ws)
    data = bomb.read_bytes()

    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB
    ws.run()
    peak_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss

    assert_quarantined_bytes(ws, bomb.name, data, f"{bomb.name} is refused", "possible zip bomb")
    assert peak_after - peak_before < 300 * 1024, (peak_before, peak_after)
    assert time.monotonic() - started < 30
    assert ws.hourly(C1) == {} and "BOMB" not in ws.transactions()
    assert_good_counted(ws)


# --------------------------------------------------------------------------------------
# 12. A file name without '_' holding only known lines
# --------------------------------------------------------------------------------------


def test_a_file_of_known_lines_creates_no_unknown_constituency(ws):
    lines = [vote("V1", at(8, 1), "K1"), bsi("B1", at(8, 2), 2), vote("V2", at(8, 3), "K2")]
    ws.drop(file_name(C1, 8), lines)
    drop_good(ws)
    run_with_alerts(ws)
    known = constituency_ids(ws)
    alerts_before = alerts(ws)

    dupe = "CtrDupe9.csv"  # no '_': the contract id is CtrDupe9
    ws.drop(dupe, [lines[2], lines[0]])  # other bytes than the first file, only known lines
    summary = run_with_alerts(ws)

    assert [(o.filename, o.status, o.transactions, o.new_transactions) for o in summary.outcomes] == [
        (dupe, "completed", 2, 0)
    ]
    assert constituency_ids(ws) == known
    with pytest.raises(sqlalchemy.exc.NoResultFound):
        ws.constituency("CtrDupe9")
    assert alerts(ws) == alerts_before
    assert not [a for a in alerts(ws) if "CtrDupe9" in (a["constituency_id"], a["title"], a["description"])]
    assert {t["constituency_id"] for t in ws.transactions().values()} == {C1, C2}
    assert ws.hourly_figures(C1) == {hour(8): (3, 2, 2, 0, 0)}  # V1, B1, V2 once
    assert ws.hourly("CtrDupe9") == {}
    assert_good_counted(ws)
