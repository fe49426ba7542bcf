"""Large files written in parts (docs/architecture.md#large-files-in-parts).

A file read by the Python reader (a block dump, an archive) is committed every
``PART_MAX_LINES`` lines, so that the ingest's memory follows the part and not the file. Here
the limit is lowered so that small real files take that road, and the same files are run once
written whole and once in parts, in real workspaces: every figure, stored transaction,
rejected line and alert must be the same. A file refused after some of its parts were
committed, and an ingest killed between two parts (a real process, killed), must leave
nothing of the file counted, and the file read again must give the hand-computed figures.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path
from typing import Any

from election_pipeline.analytics import change_log
from election_pipeline.sample.block_dump import dump_from_sample_folder, write_block_dump
from election_pipeline.sample.generator import generate_sample
from election_pipeline.stages import ingest_files
from election_pipeline.stages.reference import load_reference

from .hand_election import EXPECTED, LINES, W1, W2


def _pairs() -> list[tuple[str, str]]:
    pairs = [(contract, line) for (contract, _), lines in LINES.items() for line in lines]
    return sorted(pairs, key=lambda pair: int(pair[1].split(";")[4]))


def _stored(ws: Any) -> dict[str, dict[str, Any]]:
    return {
        t: {k: v for k, v in r.items() if k not in ("id", "created_at", "updated_at")}
        for t, r in ws.transactions().items()
    }


def _everything(ws: Any, metrics: Any, contracts: list[str]) -> dict[str, Any]:
    return {
        "hourly": {c: ws.hourly_figures(c) for c in contracts},
        "totals": {c: (ws.constituency(c)["bulletins_issued"], ws.constituency(c)["votes_cast"]) for c in contracts},
        "transactions": _stored(ws),
        "rejected": sorted((r["source"], r["line_number"], r["reason"]) for r in ws.rejected_rows()),
        "conflicts": ws.duck_count("raw_conflicts"),
        "rollbacks": ws.duck_count("raw_rollbacks"),
        "blocks": ws.duck_count("raw_blocks"),
        "alerts": sorted((f.rule, f.constituency_id, f.window_key) for f in metrics.findings),
    }


def _seqs(ws: Any) -> int:
    return int(ws.duck.execute("SELECT count(DISTINCT seq) FROM raw_transactions").fetchall()[0][0])


def test_files_written_in_parts_give_what_they_give_written_whole(workspace_factory, monkeypatch, tmp_path: Path):
    """The sample election (rollbacks, repeated and conflicting copies, malformed lines) as one
    zip of its hourly files and as a block dump, each read whole and in parts of 250 lines."""
    source = tmp_path / "sample"
    truth = generate_sample(source / "input", source / "reference", seed=11, constituencies=5)
    archive = tmp_path / "election.zip"
    with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as zf:
        for path in sorted((source / "input").glob("*.csv")):
            zf.write(path, path.name)
    dump = tmp_path / "chain.jsonl.gz"
    dump_from_sample_folder(source / "input", dump, transactions_per_block=10)
    seen: dict[str, dict[str, Any]] = {}
    for name, path in (("archive", archive), ("dump", dump)):
        for parts in (False, True):
            ws = workspace_factory(f"{name}-{'parts' if parts else 'whole'}")
            for ref in ("elections.csv", "constituencies.csv"):
                (ws.reference_dir / ref).write_bytes((source / "reference" / ref).read_bytes())
            load_reference(ws.reference_dir, ws.engine)
            (ws.input_dir / path.name).write_bytes(path.read_bytes())
            with monkeypatch.context() as m:
                if parts:
                    m.setattr(ingest_files, "PART_MAX_LINES", 250)
                ws.ingest()
            _, metrics = ws.publish()
            [job] = ws.jobs()
            assert job["status"] == "completed", job["details"]
            if parts:
                assert "parts of at most 250 lines" in job["details"]
                assert _seqs(ws) > 3  # several parts, each under a seq of its own
            else:
                assert "parts" not in job["details"] and _seqs(ws) == 1
            assert ws.duck_count("ingest_parts") == 0
            seen[f"{name}-{parts}"] = _everything(ws, metrics, truth.contract_ids)
        assert seen[f"{name}-True"] == seen[f"{name}-False"], name
    assert seen["archive-True"]["rollbacks"] > 0 and seen["archive-True"]["rejected"]
    assert seen["dump-True"]["blocks"] > 25


def test_a_file_refused_after_some_parts_were_written_leaves_nothing_of_it(ws, monkeypatch, tmp_path: Path):
    """A gzipped dump cut short: its first blocks are read and committed in parts of two
    transactions before the damage is found. The file is refused whole, and none of its
    transactions, blocks or parts stays; the intact file dropped next gives the hand figures."""
    monkeypatch.setattr(ingest_files, "PART_MAX_LINES", 2)
    whole = tmp_path / "chain.jsonl.gz"
    write_block_dump(_pairs(), whole, transactions_per_block=1)
    data = whole.read_bytes()
    ws.drop("chain-cut.jsonl.gz", data[: len(data) - 12])  # the gzip trailer and the end are gone
    ws.run()
    [job] = ws.jobs()
    assert job["status"] == "failed"
    assert "chain-cut.jsonl.gz is damaged and cannot be read" in job["details"]
    for table in ("raw_transactions", "raw_blocks", "ingest_parts"):
        assert ws.duck_count(table) == 0, table
    assert ws.transactions() == {}
    assert ws.hourly_figures(W1) == {}
    ws.drop("chain.jsonl.gz", data)
    ws.run()
    assert {c: ws.hourly_figures(c) for c in (W1, W2)} == EXPECTED
    assert ws.duck_count("raw_transactions") == 8


KILLED_AFTER_FIRST_PART = textwrap.dedent(
    """
    import logging, os, signal, sys, time
    from pathlib import Path

    from election_pipeline.analytics.raw_store import open_warehouse
    from election_pipeline.stages import ingest_files
    from election_pipeline.stages.ingest_files import DropFolders, ingest_folder, ready_files

    class KillAfterFirstPart(logging.Handler):
        def emit(self, record):
            if "part 1 committed" in record.getMessage():
                os.kill(os.getpid(), signal.SIGKILL)  # the run dies between two parts

    logging.getLogger("election_pipeline").addHandler(KillAfterFirstPart())
    logging.getLogger("election_pipeline").setLevel(logging.INFO)
    ingest_files.PART_MAX_LINES = 2
    root = Path(sys.argv[1])
    with open_warehouse(root / "warehouse.duckdb") as duck:
        files = ready_files(root / "input", settle_seconds=1, now=time.time() + 60)
        folders = DropFolders(root / "input", root / "processed", root / "quarantine")
        ingest_folder(files, duck=duck, folders=folders, batch_size=1000,
                      zip_max_total_bytes=2**32, zip_max_ratio=1000)
    """
)


def test_an_ingest_killed_between_parts_counts_nothing_and_the_file_is_read_again_whole(ws, tmp_path: Path):
    """A real process ingests a dump in parts of two transactions and is killed (SIGKILL) right
    after its first part is committed. The part's rows are in the store, listed as unfinished;
    the next reader of the change log removes them (the publish step would publish nothing of
    the file), and the next run reads the file, still in the drop folder, whole: the
    hand-computed figures, each transaction once."""
    whole = tmp_path / "chain.jsonl"
    write_block_dump(_pairs(), whole, transactions_per_block=1)
    ws.drop("chain.jsonl", whole.read_bytes())
    ws.duck.close()
    script = tmp_path / "killed.py"
    script.write_text(KILLED_AFTER_FIRST_PART, encoding="utf-8")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    done = subprocess.run([sys.executable, str(script), str(ws.root)], env=env, capture_output=True, timeout=300)
    assert done.returncode == -9, done.stderr.decode()[-2000:]
    ws.open_duck()
    assert ws.duck_count("ingest_parts") == 1
    assert ws.duck_count("raw_transactions") == 2  # the first part: two transactions
    assert ws.duck_count("file_jobs") == 0 and (ws.input_dir / "chain.jsonl").exists()

    change_log.catch_up(ws.duck)  # what every reader (publish, checks, figures) does first
    assert ws.duck_count("raw_transactions") == 0 and ws.duck_count("ingest_parts") == 0

    ws.run()
    assert {c: ws.hourly_figures(c) for c in (W1, W2)} == EXPECTED
    assert ws.duck_count("raw_transactions") == 8 and ws.duck_count("raw_blocks") == 8
    [job] = ws.jobs()
    assert job["status"] == "completed" and job["details"].startswith("8 transaction lines read; 8 new;")


def test_a_group_of_files_that_reaches_the_part_limit_is_written_a_file_at_a_time(workspace_factory, monkeypatch):
    """Only a file alone is written in parts: a group of several files (two dumps of the hand
    election's contracts) that reaches the limit is written one file at a time; the figures are
    the hand-computed ones."""
    monkeypatch.setattr(ingest_files, "PART_MAX_LINES", 3)
    ws = workspace_factory("group")
    for contract in (W1, W2):
        lines = [(c, x) for c, x in _pairs() if c == contract]
        write_block_dump(lines, ws.input_dir / f"chain-{contract[:2]}.jsonl", transactions_per_block=1)
    ws.run()
    assert {c: ws.hourly_figures(c) for c in (W1, W2)} == EXPECTED
    jobs = sorted(ws.jobs(), key=lambda j: j["filename"])
    assert [j["status"] for j in jobs] == ["completed", "completed"]
    assert "written in 2 parts" in jobs[0]["details"]  # W1: 6 transactions, parts of 3
    assert ws.duck_count("ingest_parts") == 0
