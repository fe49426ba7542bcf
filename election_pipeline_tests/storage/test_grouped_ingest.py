"""The ingest writes files in groups, one DuckDB transaction per group. Ingesting a folder in
one run gives exactly the database of one run per file: figures, transactions, rejected lines,
jobs with their details, ledger, DuckDB rows and moved files. Many small files are written in
few transactions, and the memory the ingest needs does not grow with their number. On SQLite
and PostgreSQL."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
import time
import tracemalloc
import zipfile
from pathlib import Path

import pytest

from election_pipeline.stages import ingest_files
from election_pipeline.stages.ingest_files import IngestSummary, ingest_folder, ready_files
from election_pipeline.stages.publish import publish_all
from election_pipeline_tests.builders import INGEST_LIMITS, IngestLimits
from election_pipeline_tests.stages.conftest import (
    BALLOT,
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

ALL_BAD = file_name(C2, 9)


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


def run(ws, *, batch_size: int = 4) -> IngestSummary:
    """A whole run over the ready files: ingest, both publish steps, the figures."""
    files = ready_files(ws.input_dir, settle_seconds=1, now=time.time() + 60)
    limits: IngestLimits = {**INGEST_LIMITS, "batch_size": batch_size}
    summary = ingest_folder(files, duck=ws.duck, folders=ws.folders, **limits)
    publish_all(ws.duck, ws.engine)
    ws.publish()
    return summary


def run_file_by_file(ws, *, batch_size: int = 4) -> None:
    """One run per file, in name order (the others wait outside the drop folder)."""
    waiting = ws.root / "waiting"
    waiting.mkdir()
    names = sorted(p.name for p in ws.input_dir.iterdir())
    for name in names:
        (ws.input_dir / name).rename(waiting / name)
    for name in names:
        (waiting / name).rename(ws.input_dir / name)
        run(ws, batch_size=batch_size)
    waiting.rmdir()


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
    # (seq, the change-log number of the group that wrote a row, differs: one group or one per file)
    duck = ws.duck.execute("SELECT * EXCLUDE (seq) FROM raw_transactions ORDER BY tx_id").fetchall()
    rollbacks = ws.duck.execute("SELECT * EXCLUDE (seq) FROM raw_rollbacks ORDER BY tx_id").fetchall()
    rejected = ws.duck.execute(
        "SELECT filename, source, line_number, reason, raw_line, line_length, line_sha256 FROM raw_rejected "
        "ORDER BY ALL"
    ).fetchall()
    files = {d.name: sorted(p.name for p in d.iterdir()) for d in (ws.input_dir, ws.processed_dir, ws.quarantine_dir)}
    return {
        "snapshot": ws.snapshot(),
        "jobs": jobs,
        "ledger": ledger,
        "duck": duck,
        "rollbacks": rollbacks,
        "rejected": rejected,
        "files": files,
    }


@pytest.fixture
def pair(tmp_path, db_url_factory):
    made = [make_workspace(tmp_path / name, db_url_factory(name)) for name in ("one_by_one", "together")]
    try:
        yield made
    finally:
        for ws in made:
            ws.close()


def test_one_run_over_the_folder_equals_one_run_per_file(pair):
    one, together = pair
    for ws in pair:
        drop_election(ws)
    run_file_by_file(one)
    run(together)
    expected = everything(one)
    assert everything(together) == expected
    statuses = sorted(j[1] for j in expected["jobs"])
    assert statuses.count("failed") == 3 and statuses.count("completed") == 6  # 5 files + the copy (duplicate)
    assert len(expected["ledger"]) == 8  # every content once (the copy is not a new content)
    assert expected["files"]["input"] == []
    # Running again changes nothing in either.
    run(together)
    assert everything(together) == expected


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_file_whose_every_line_is_bad_is_refused_with_its_lines(pair):
    ws = pair[1]
    drop_election(ws)
    run(ws)
    job = next(j for j in ws.jobs() if j["filename"] == ALL_BAD)
    assert job["status"] == "failed"
    assert job["details"].startswith(f"none of the 2 lines of {ALL_BAD} could be read")
    assert [(r["filename"], r["line_number"]) for r in ws.rejected_rows() if r["filename"] == ALL_BAD] == [
        (ALL_BAD, 1),
        (ALL_BAD, 2),
    ]


def _small_files(ws, count: int, lines: int = 40) -> None:
    """``count`` small hourly files of ``lines`` votes each (about 1 KB a line)."""
    for i in range(count):
        contract = f"Ctr{i:04d}"
        ws.drop(
            file_name(contract, 8),
            [vote(f"T{i}x{n}", at(8, n % 60, n // 60), f"K{i}x{n}") for n in range(lines)],
        )


def _ingest_peak(ws) -> tuple[IngestSummary, int]:
    """The ingest of the ready files, and the peak of the Python memory it allocated."""
    files = ready_files(ws.input_dir, settle_seconds=0, now=time.time() + 60)
    tracemalloc.start()
    try:
        summary = ingest_folder(files, duck=ws.duck, folders=ws.folders, **INGEST_LIMITS)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return summary, peak


def measure_ingest(root: str, db_url: str, files: str, group_max_files: str) -> None:
    """(Run as a process of its own by the test below.) Drop ``files`` small files into a
    workspace in ``root``, ingest them and print the outcome and the peak Python memory as
    JSON. In a fresh process no thread of another test allocates while tracemalloc looks."""
    ingest_files.GROUP_MAX_FILES = int(group_max_files)
    ws = make_workspace(Path(root), db_url)
    try:
        _small_files(ws, int(files))
        summary, peak = _ingest_peak(ws)
        print(
            json.dumps(
                {
                    "peak": peak,
                    "statuses": [o.status for o in summary.outcomes],
                    "new_transactions": summary.new_transactions,
                }
            )
        )
    finally:
        ws.close()


def _measured(root: Path, db_url: str, files: int) -> dict:
    code = "import sys; from election_pipeline_tests.storage.test_grouped_ingest import measure_ingest as m; m(*sys.argv[1:])"
    out = subprocess.run(
        [sys.executable, "-c", code, str(root), db_url, str(files), "100"],
        check=True,
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def test_many_small_files_are_written_in_few_transactions_with_flat_memory(tmp_path, db_url_factory):
    """300 small files (12,000 lines, about 12 MB) are written in 3 DuckDB transactions of 100
    files (``GROUP_MAX_FILES`` set to 100 for the test); the Python memory the ingest needs
    stays that of 30 files: DuckDB reads the lines, not Python. Each ingest is measured in a
    process of its own."""
    small_run = _measured(tmp_path / "small", db_url_factory("small"), 30)
    many_run = _measured(tmp_path / "many", db_url_factory("many"), 300)
    small = make_workspace(tmp_path / "small", db_url_factory("small"))
    many = make_workspace(tmp_path / "many", db_url_factory("many"))
    try:
        small_peak, peak = small_run["peak"], many_run["peak"]
        assert many_run["statuses"] == ["completed"] * 300
        assert many_run["new_transactions"] == 300 * 40
        groups = many.duck.execute("SELECT count(DISTINCT seq), count(*) FROM file_jobs").fetchall()[0]
        assert groups == (3, 300)
        assert small.duck.execute("SELECT count(DISTINCT seq) FROM file_jobs").fetchall()[0][0] == 1
        assert small_run["new_transactions"] == 30 * 40
        data = sum(p.stat().st_size for p in many.processed_dir.iterdir())
        assert data > 300 * 40 * len(BALLOT)
        # Ten times the files: the peak grows by the bookkeeping of each file (under 2 KB; about
        # 1.6 KB measured), far below the size of the lines, which Python never holds
        assert peak < small_peak + 270 * 2_000, (small_peak, peak)
        assert peak < data / 4, (peak, data)  # Python holding the lines would need more than data
        publish_all(many.duck, many.engine)
        assert len(many.transactions()) == 300 * 40
    finally:
        small.close()
        many.close()
