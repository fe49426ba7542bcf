"""Block dumps: the node's JSON Lines, one block a line, contract transactions wrapped in
type-105 transactions (docs/input-format.md#block-dump).

The hand-computed election of hand_election.py is dropped once as hourly 12-field files
and once as a block dump (gzipped, and as a zip of chunk files) into real workspaces, and
run through the real stages: the figures must be the same, equal to the hand-computed ones,
and every transaction of the dump must carry the height of its block.

The election and its hand-computed figures are in ``hand_election.py``.
"""

from __future__ import annotations

import gzip
import io
import json
import logging
import zipfile
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from election_pipeline.analytics import line_sql
from election_pipeline.db.crud import TransactionCRUD
from election_pipeline.sample.block_dump import dump_from_sample_folder, export_line_to_dump_tx, write_block_dump
from election_pipeline.sample.generator import generate_sample
from election_pipeline.stages import ingest_files, quality
from election_pipeline.stages.election_metrics import publish_election_metrics
from election_pipeline.stages.reference import load_reference
from election_pipeline.stages.report import write_reports
from election_pipeline_tests.builders import THRESHOLDS

from .conftest import at, file_name, simple, vote
from .hand_election import EXPECTED, LINES, W1, W2, stored_without_origin

TRANSFER = {"type": 4, "id": "Transfer1", "timestamp": at(8), "amount": 1}


def _pairs() -> list[tuple[str, str]]:
    """Every line with its contract, in time order (as a chain holds them)."""
    pairs = [(contract, line) for (contract, _), lines in LINES.items() for line in lines]
    return sorted(pairs, key=lambda pair: int(pair[1].split(";")[4]))


def _block(height: int, transactions: list[dict[str, Any]]) -> str:
    return json.dumps({"height": height, "timestamp": at(8) + height, "transactions": transactions})


def _wrapped(contract: str, line: str) -> dict[str, Any]:
    return export_line_to_dump_tx(contract, line)


def _figures(ws) -> dict:
    return {c: ws.hourly_figures(c) for c in (W1, W2)}


def _check(ws) -> quality.QualityResult:
    return quality.block_heights_contiguous(ws.duck)


def test_a_block_dump_gives_the_figures_of_hourly_files(workspace_factory, tmp_path: Path):
    hourly, dumped = workspace_factory("hourly"), workspace_factory("dump")
    for (contract, h), lines in LINES.items():
        hourly.drop(file_name(contract, h), lines)
    written = write_block_dump(_pairs(), tmp_path / "chain.jsonl.gz", transactions_per_block=3)
    (dumped.input_dir / "chain.jsonl.gz").write_bytes((tmp_path / "chain.jsonl.gz").read_bytes())
    for ws in (hourly, dumped):
        ws.run()
    assert _figures(hourly) == _figures(dumped) == EXPECTED
    for c, voters in ((W1, 3), (W2, 1)):
        assert hourly.constituency(c)["votes_cast"] == dumped.constituency(c)["votes_cast"] == voters
    assert stored_without_origin(hourly, also_drop=("block_height",)) == stored_without_origin(
        dumped, also_drop=("block_height",)
    )
    # 8 transactions, 3 a block in time order: heights 1, 1, 1, 2, 2, 2, 3, 3.
    heights = {t: r["block_height"] for t, r in dumped.transactions().items()}
    assert written.blocks == 3
    assert sorted(heights.values()) == [1, 1, 1, 2, 2, 2, 3, 3]
    assert all(h is None for h in (r["block_height"] for r in hourly.transactions().values()))
    with Session(dumped.engine) as session:
        in_block_1 = TransactionCRUD(session).get_by_block_height(block_height=1)
    assert sorted(t.tx_id for t in in_block_1) == sorted(t for t, h in heights.items() if h == 1)
    [job] = dumped.jobs()
    assert job["status"] == "completed"
    assert "block dump: 3 blocks (heights 1-3), 8 contract transactions" in job["details"]
    result = _check(dumped)
    assert result.passed, result.summary
    assert result.figures["blocks"] == 3 and result.figures["missing_heights"] == 0
    assert _check(hourly).summary == "no block dump has been read"


def test_zip_chunks_of_a_dump_are_read_and_other_transactions_skipped(ws):
    pairs = _pairs()
    first = [_block(1, [TRANSFER, *(_wrapped(c, line) for c, line in pairs[:4])])]
    second = [_block(2, [_wrapped(c, line) for c, line in pairs[4:]]), _block(3, [TRANSFER | {"id": "T2"}])]
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("dump/chunk-0001.jsonl", "\n".join(first) + "\n")
        zf.writestr("dump/chunk-0002.json", "\n".join(second) + "\n")
        zf.writestr("README.txt", "not a dump")
    ws.drop("chain.zip", buf.getvalue())
    ws.run()
    assert _figures(ws) == EXPECTED
    [job] = ws.jobs()
    assert job["status"] == "completed"
    assert "3 blocks (heights 1-3), 8 contract transactions, 2 other transactions skipped (type 4: 2)" in job["details"]
    assert "skipped chain.zip::README.txt" in job["details"]
    sources = {r["source_file"] for r in ws.transactions().values()}
    assert sources == {"chain.zip::dump/chunk-0001.jsonl", "chain.zip::dump/chunk-0002.json"}
    assert _check(ws).passed


def test_bad_block_lines_and_transactions_are_rejected_with_their_line_and_the_rest_is_read(ws):
    good = [_wrapped(c, line) for c, line in _pairs()]
    no_sender = _wrapped(W1, vote("V9", at(9, 9), "K9"))
    del no_sender["tx"]["senderPublicKey"]
    odd_entry = _wrapped(W1, vote("V8", at(9, 8), "K8"))
    odd_entry["tx"]["params"][0]["type"] = "decimal"
    bad_ts = _wrapped(W1, vote("V7", at(9, 7), "K7"))
    bad_ts["tx"]["timestamp"] = 1725602400  # seconds: the export parser refuses it
    lines = [
        _block(1, good[:4]),
        "{not json",
        _block(2, [no_sender, *good[4:], odd_entry]),
        json.dumps({"height": 3, "transactions": []}),
        _block(4, [bad_ts]),
    ]
    ws.drop("chain.jsonl", lines)
    ws.run()
    assert _figures(ws) == EXPECTED
    rejected = {(r["line_number"], r["reason"]) for r in ws.rejected_rows()}
    assert (2, "the block line is not JSON: Expecting property name enclosed in double quotes") in rejected
    # Two bad transactions in one block line: one rejected row for the line, with both reasons.
    [line_3] = [r for n, r in rejected if n == 3]
    first, second = line_3.split("; ")
    assert first == "block 2, transaction 1 (V9): the contract transaction has no 'senderPublicKey'"
    assert second.startswith(
        "block 2, transaction 6 (V8): entry 'operation' of 'params' has the unknown type 'decimal'"
    )
    assert (4, "the block has no 'timestamp'") in rejected
    assert any(n == 5 and r.startswith("block 4, transaction 1: ") and "milliseconds" in r for n, r in rejected)
    assert len(rejected) == 4
    assert {r["filename"] for r in ws.rejected_rows()} == {"chain.jsonl"}
    [job] = ws.jobs()
    assert job["status"] == "completed" and "4 rejected lines" in job["details"]


def test_missing_and_forked_heights_fail_the_completeness_check(ws):
    pairs = _pairs()
    ws.drop("part1.jsonl", [_block(1, [_wrapped(*pairs[0])]), _block(2, []), _block(3, [])])
    ws.drop("part2.jsonl", [_block(6, [_wrapped(*pairs[1])]), _block(7, []), _block(10, [])])
    ws.drop("part3.jsonl", [_block(7, [TRANSFER])])  # height 7 again, with other content
    ws.drop("part4.jsonl", [_block(3, [])])  # height 3 again, the same line: no problem
    ws.run()
    assert {j["status"] for j in ws.jobs()} == {"completed"}  # blocks without votes still count
    result = _check(ws)
    assert not result.passed
    assert result.figures["missing_heights"] == 4  # 4, 5, 8, 9
    assert result.figures["missing_ranges"] == ["4-5", "8-9"]
    assert result.figures["heights_with_different_content"] == 1
    assert result.figures["different_content"] == [
        {"height": 7, "versions": 2, "sources": ["part2.jsonl", "part3.jsonl"]}
    ]
    assert result.summary == (
        "4 block heights missing between 1 and 10 (4-5, 8-9); 1 heights read with different content (7)"
    )


def test_alert_evidence_names_the_blocks_of_its_transactions(ws):
    """A vote after the close raises ``vote_after_close`` naming the vote; the alert's
    details name its block too."""
    lines = [
        (W1, simple("S1", at(7, 50), "startVoting")),
        *[(c, line) for c, line in _pairs() if c == W1],
        (W1, simple("F1", at(9, 30), "finishVoting")),
        (W1, vote("Late1", at(9, 45), "K6")),
    ]
    blocks = [_block(100 + i, [_wrapped(c, line)]) for i, (c, line) in enumerate(lines)]
    ws.drop("chain.jsonl", blocks)
    ws.ingest()
    _, metrics = ws.publish()
    [late] = [f for f in metrics.findings if f.rule == "vote_after_close"]
    assert late.evidence_tx_ids == ["Late1"]
    assert late.details()["evidence_blocks"] == {"Late1": 100 + len(lines) - 1}


def test_a_long_dump_reports_its_progress_in_the_log(ws, monkeypatch, caplog):
    monkeypatch.setattr(ingest_files, "PROGRESS_EVERY_SECONDS", 0.0)
    ws.drop("chain.jsonl", [_block(h, [_wrapped(c, line)]) for h, (c, line) in enumerate(_pairs(), start=1)])
    with caplog.at_level(logging.INFO, logger="election_pipeline.stages.ingest_files"):
        ws.run(batch_size=3)
    progress = [r.getMessage() for r in caplog.records if "transactions read so far" in r.getMessage()]
    # 8 transactions in batches of 3: reports after 3 and 6 transactions (a block counts once
    # all its transactions are read: 2 and 5 blocks).
    assert [m.split(": ", 1)[1].split(" transactions")[0] for m in progress] == ["2 blocks, 3", "5 blocks, 6"]
    assert all("now chain.jsonl, block height" in m and "transactions/s" in m for m in progress)
    assert _figures(ws) == EXPECTED


def test_a_damaged_gzip_dump_is_refused_whole(ws, tmp_path: Path):
    data = gzip.compress(("\n".join(_block(1, [_wrapped(c, x)]) for c, x in _pairs()) + "\n").encode())
    ws.drop("chain.jsonl.gz", data[: len(data) // 2])
    ws.run()
    [job] = ws.jobs()
    assert job["status"] == "failed"
    assert "chain.jsonl.gz is damaged and cannot be read" in job["details"]
    assert (ws.quarantine_dir / "chain.jsonl.gz").exists()
    assert ws.transactions() == {}


def test_the_sample_election_as_a_dump_gives_the_figures_of_its_export_files(workspace_factory, tmp_path: Path):
    """One election, two shapes: the sample's hourly export files (with their rollbacks,
    repeated lines and malformed lines) and the block dump made from the same transactions
    (rolled-back ones left out, as a chain holds them). Every hourly figure, every total and
    every alert's rule and constituency are the same."""
    exports, dumped = workspace_factory("exports"), workspace_factory("dump")
    truth = generate_sample(exports.input_dir, exports.reference_dir, seed=11, constituencies=5)
    load_reference(exports.reference_dir, exports.engine)
    for name in ("elections.csv", "constituencies.csv"):
        (dumped.reference_dir / name).write_bytes((exports.reference_dir / name).read_bytes())
    load_reference(dumped.reference_dir, dumped.engine)
    written = dump_from_sample_folder(exports.input_dir, tmp_path / "chain.jsonl.gz", transactions_per_block=40)
    (dumped.input_dir / "chain.jsonl.gz").write_bytes((tmp_path / "chain.jsonl.gz").read_bytes())
    exports.ingest()
    dumped.ingest()
    (_, from_exports), (_, from_dump) = exports.publish(), dumped.publish()
    contracts = truth.contract_ids
    assert contracts
    for c in contracts:
        assert exports.hourly_figures(c) == dumped.hourly_figures(c), c
        for column in ("bulletins_issued", "votes_cast", "registered_voters", "participation_rate"):
            assert exports.constituency(c)[column] == dumped.constituency(c)[column], (c, column)
    standing = {t for t, r in exports.transactions().items() if not r["is_rolled_back"]}
    assert set(dumped.transactions()) == standing
    assert written.transactions == len(standing)
    assert all(r["block_height"] is not None for r in dumped.transactions().values())

    def alerts(metrics) -> set[tuple[str, str, str]]:
        return {(f.rule, f.constituency_id, f.window_key) for f in metrics.findings}

    assert alerts(from_exports) == alerts(from_dump)
    assert quality.block_heights_contiguous(dumped.duck).passed

    # The election report gives each contract's first and last block (dumps only).
    heights: dict[str, list[int]] = {}
    for r in dumped.transactions().values():
        heights.setdefault(r["constituency_id"], []).append(r["block_height"])
    pages = {}
    for ws in (exports, dumped):
        publish_election_metrics(ws.engine, THRESHOLDS.offline_after_hours)
        [report] = write_reports(ws.engine, tmp_path / ws.root.name, THRESHOLDS.offline_after_hours)
        pages[ws.root.name] = report.html_path.read_text(encoding="utf-8")
    assert "blocks (heights)" in pages["dump"] and "blocks (heights)" not in pages["exports"]
    known = [c for c in contracts if c in heights and dumped.constituency(c)["election_id"]]
    assert known
    for c in known:
        assert f"<td>{min(heights[c]):,}–{max(heights[c]):,}</td>" in pages["dump"], c


def test_a_gzipped_dump_that_expands_like_a_bomb_is_refused(ws):
    """70 blank lines of 1 MiB each squeezed into a few dozen kilobytes: more than 64 MiB and more
    than 200 times the file's size (ELECTION_ZIP_MAX_RATIO), so the dump is refused whole."""
    lines = "\n".join(_block(h, [_wrapped(c, x)]) for h, (c, x) in enumerate(_pairs(), start=1)) + "\n"
    ws.drop("chain.json.gz", gzip.compress(lines.encode() + (b" " * 1024**2 + b"\n") * 70))
    ws.run()
    [job] = ws.jobs()
    assert job["status"] == "failed"
    assert "chain.json.gz is refused" in job["details"] and "possible gzip bomb" in job["details"]
    assert ws.transactions() == {}


def test_lines_classified_a_few_at_a_time_and_long_lines_give_the_same_figures(workspace_factory, monkeypatch):
    """A large file's lines are classified apart every ``CLASSIFY_EVERY_LINES`` lines, and
    a line over ``SQL_LINE_MAX_CHARS`` goes to the Python parser at once: here every two
    lines, and 300 characters (so the bulletin lines take the Python parser's road). A dump
    and a zip of hourly files read that way give the hand-computed figures, rejected lines
    included."""
    monkeypatch.setattr(ingest_files, "CLASSIFY_EVERY_LINES", 2)
    monkeypatch.setattr(line_sql, "SQL_LINE_MAX_CHARS", 300)
    dumped, zipped = workspace_factory("dump"), workspace_factory("zip")
    blocks = [_block(h, [_wrapped(c, line)]) for h, (c, line) in enumerate(_pairs(), start=1)]
    dumped.drop("chain.jsonl", [*blocks[:3], "{not json", *blocks[3:]])
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for (contract, h), lines in LINES.items():
            zf.writestr(file_name(contract, h), "".join(line + "\n" for line in lines) + "bad line\n")
    zipped.drop("hours.zip", buf.getvalue())
    for ws in (dumped, zipped):
        ws.run()
        assert _figures(ws) == EXPECTED
    assert [(r["line_number"], r["reason"][:26]) for r in dumped.rejected_rows()] == [(4, "the block line is not JSON")]
    assert sorted(r["line_number"] for r in zipped.rejected_rows()) == [3, 4, 4]
    assert stored_without_origin(dumped, also_drop=("block_height",)) == stored_without_origin(
        zipped, also_drop=("block_height",)
    )
