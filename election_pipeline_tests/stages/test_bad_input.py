"""Bad input (docs/input-format.md#bad-input): nothing lost, nothing double-counted, every problem explained.

Real files in a tmp workspace, the real stages, results read from the operational database.
Tuples from ``ws.hourly_figures`` are
(transaction_count, bulletins_issued, votes_cast, revote_count, rejected_count).
"""

from __future__ import annotations

import io
import os
import time
import zipfile
from pathlib import Path

import pytest

from election_pipeline.stages.ingest_files import ready_files

from .conftest import C1, C2, CX, add_voters, at, bsi, export_line, file_name, hour, vote


def zip_bytes(members: list[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as zf:
        for name, data in members:
            zf.writestr(name, data)
    return buf.getvalue()


def csv_bytes(lines: list[str]) -> bytes:
    return "".join(l + "\n" for l in lines).encode()


def stray_files(ws) -> list[str]:
    """Files anywhere under the test's tmp dir that are not in a work folder or a database."""
    work = {ws.input_dir, ws.processed_dir, ws.quarantine_dir, ws.reference_dir}
    out = []
    for path in ws.root.parent.rglob("*"):
        if path.is_dir() or any(parent in work for parent in path.parents):
            continue
        if path.name.startswith(("ops.db", "warehouse.duckdb")):
            continue
        out.append(str(path.relative_to(ws.root.parent)))
    return sorted(out)


def only_job(ws) -> dict:
    jobs = ws.jobs()
    assert len(jobs) == 1
    return jobs[0]


# --------------------------------------------------------------------------------------
# Bad lines: rejected rows, the rest of the file counted
# --------------------------------------------------------------------------------------

BAD_FIELD_COUNT = "Tx2;104;SIG;4;1725609600000;K2"  # 6 fields
BAD_JSON = (
    'Tx3;104;SIG;4;1725609600000;K3;0;;[{"key":"operation","stringValue":"vote"},'
    '{"key":"vote","binaryValue":"QUJD;[];{"contractVersion":1};'
)
BAD_TS = export_line("Tx5", "startVoting", "2024-09-06 08:00:00")
BAD_OP = export_line("Tx6", "updateVotersList", at(8, 30))


def test_bad_lines_become_rejected_rows_and_the_rest_is_counted(ws):
    name = file_name(C1, 8)
    ws.drop(
        name,
        [
            vote("V1", at(8, 10), "K1"),  # line 1: good
            BAD_FIELD_COUNT,  # line 2
            BAD_JSON,  # line 3
            "",  # line 4: blank, skipped (not a rejection)
            BAD_TS,  # line 5
            BAD_OP,  # line 6
            bsi("B1", at(8, 20), 2),  # line 7: good
        ],
    )
    summary = ws.run()

    rows = [(r["filename"], r["source"], r["line_number"], r["raw_line"]) for r in ws.rejected_rows()]
    assert rows == [
        (name, name, 2, BAD_FIELD_COUNT),
        (name, name, 3, BAD_JSON),
        (name, name, 5, BAD_TS),
        (name, name, 6, BAD_OP),
    ]
    reasons = [r["reason"] for r in ws.rejected_rows()]
    assert reasons[0] == "expected 12 fields separated by ';', found 6 (the line ends before the params field)"
    assert reasons[1].startswith("field 8 (params) is not valid JSON")
    assert reasons[2] == "field 4 (ts) is not an integer epoch-milliseconds timestamp: '2024-09-06 08:00:00'"
    assert reasons[3] == "unknown operation 'updateVotersList'"

    # the two good lines: V1 (1 vote) and B1 (2 bulletins) -> 2 tx
    assert ws.hourly_figures(C1) == {hour(8): (2, 2, 1, 0, 0)}
    job = only_job(ws)
    assert (job["status"], job["transactions_processed"], job["rejected_lines"]) == ("completed", 2, 4)
    assert "4 rejected lines (first: " + name + " line 2: expected 12 fields" in job["details"]
    assert {r["job_id"] for r in ws.rejected_rows()} == {job["id"]}
    assert (ws.processed_dir / name).exists() and not (ws.input_dir / name).exists()
    assert summary.rejected_lines == 4


def test_non_utf8_line_in_a_good_file_is_a_rejected_row(ws):
    name = file_name(C1, 8)
    bad = export_line("R1", "results", at(8, 5), params=[{"key": "note", "stringValue": "Округ"}])
    ws.drop(name, csv_bytes([vote("V1", at(8, 1), "K1")]) + bad.encode("cp1251") + b"\n")
    ws.run()
    rows = ws.rejected_rows()
    assert [(r["line_number"], r["reason"]) for r in rows] == [(2, "the line is not valid UTF-8")]
    # 'Округ' in cp1251 = CE EA F0 F3 E3, kept readable as backslash escapes
    assert "\\xce\\xea\\xf0\\xf3\\xe3" in rows[0]["raw_line"]
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}  # V1 only


# --------------------------------------------------------------------------------------
# Whole files that fail: job failed, file quarantined byte for byte
# --------------------------------------------------------------------------------------


def _assert_quarantined(ws, name: str, data: bytes, reason_part: str) -> dict:
    job = only_job(ws)
    assert job["status"] == "failed"
    assert reason_part in job["details"]
    assert job["transactions_processed"] == 0
    assert not (ws.input_dir / name).exists()
    kept = ws.quarantine_dir / name
    assert kept.read_bytes() == data  # moved, byte-identical, never deleted
    assert job["stored_path"] == str(kept)
    assert [(e["status"], e["stored_path"]) for e in ws.ledger()] == [("failed", str(kept))]
    assert ws.transactions() == {}
    assert ws.duck_count("raw_transactions") == 0
    assert ws.hourly(C1) == {}
    assert stray_files(ws) == []
    return job


def test_file_whose_lines_are_all_bad(ws):
    name = file_name(C1, 8)
    data = csv_bytes([BAD_FIELD_COUNT, BAD_OP])
    ws.drop(name, data)
    ws.run()
    job = _assert_quarantined(
        ws,
        name,
        data,
        f"none of the 2 lines of {name} could be read (first problem: {name} line 1: expected 12 fields",
    )
    assert job["rejected_lines"] == 2
    # every bad line is still explained, line by line
    assert [(r["line_number"], r["raw_line"], r["job_id"]) for r in ws.rejected_rows()] == [
        (1, BAD_FIELD_COUNT, job["id"]),
        (2, BAD_OP, job["id"]),
    ]


@pytest.mark.parametrize("data", [b"", b"\n\n   \n"], ids=["zero-bytes", "blank-lines"])
def test_empty_file(ws, data):
    name = file_name(C1, 8)
    ws.drop(name, data)
    ws.run()
    _assert_quarantined(ws, name, data, f"{name} is empty: it holds no transaction line")
    assert ws.rejected_rows() == []


def test_binary_file(ws):
    name = file_name(C1, 8)
    data = b"PK\x03\x04\x00\x00\x00binary\x00\xff\xfe" * 20
    ws.drop(name, data)
    ws.run()
    _assert_quarantined(ws, name, data, f"{name} is a binary file (it contains NUL bytes), not a text export")


def test_non_utf8_file(ws):
    name = file_name(C1, 8)
    lines = [
        export_line("R1", "results", at(8, 5), params=[{"key": "district", "stringValue": "Северный"}]),
        export_line("R2", "results", at(8, 6), params=[{"key": "district", "stringValue": "Южный"}]),
    ]
    data = "".join(l + "\n" for l in lines).encode("cp1251")  # a whole export in cp1251
    ws.drop(name, data)
    ws.run()
    job = _assert_quarantined(
        ws,
        name,
        data,
        f"none of the 2 lines of {name} could be read (first problem: {name} line 1: the line is not valid UTF-8)",
    )
    assert job["rejected_lines"] == 2
    assert [r["reason"] for r in ws.rejected_rows()] == ["the line is not valid UTF-8"] * 2


def test_file_name_without_contract_id(ws):
    data = csv_bytes([vote("V1", at(8, 1), "K1")])
    ws.drop("export-2024-09-06.csv", data)
    ws.run()
    _assert_quarantined(ws, "export-2024-09-06.csv", data, "cannot tell the contract id from the file name")


def test_failed_file_does_not_stop_the_others(ws):
    ws.drop(file_name(C1, 7), b"\x00\x00\x00")  # binary: fails
    ws.drop(file_name(C1, 8), [vote("V1", at(8, 1), "K1")])  # good
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["failed", "completed"]  # name order 0700 < 0800
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}


# --------------------------------------------------------------------------------------
# Duplicates
# --------------------------------------------------------------------------------------


def test_same_file_dropped_twice_counts_once(ws):
    name = file_name(C1, 8)
    data = csv_bytes([vote("V1", at(8, 1), "K1"), vote("V2", at(8, 2), "K2"), bsi("B1", at(8, 3), 2)])
    ws.drop(name, data)
    ws.run()
    figures = {hour(8): (3, 2, 2, 0, 0)}  # V1, V2, B1 = 3 tx; 2 bulletins; K1 + K2 = 2 votes
    assert ws.hourly_figures(C1) == figures
    first_target = ws.processed_dir / name
    assert first_target.read_bytes() == data

    ws.drop(name, data)  # the same bytes again, after the first copy was moved away
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["duplicate"]
    assert ws.hourly_figures(C1) == figures  # nothing counted again
    c = ws.constituency(C1)
    assert (c["transaction_count"], c["votes_cast"], c["bulletins_issued"]) == (3, 2, 2)
    assert len(ws.transactions()) == 3

    first, second = ws.jobs()
    assert (first["status"], first["transactions_processed"]) == ("completed", 3)
    assert second["status"] == "completed" and second["transactions_processed"] == 0
    assert second["details"].startswith(f"same content as {name} (SHA-256 ")
    assert second["details"].endswith("nothing counted again")
    # kept, under a different name, next to the first copy
    second_target = Path(second["stored_path"])
    assert second_target.parent == ws.processed_dir and second_target.name != name
    assert second_target.name == f"{C1}_2024-09-06_0800-0900.{first['file_hash'][:12]}.csv"
    assert second_target.read_bytes() == data and first_target.read_bytes() == data
    assert not (ws.input_dir / name).exists()
    assert len(ws.ledger()) == 1


def test_same_content_under_another_name_counts_once(ws):
    data = csv_bytes([vote("V1", at(8, 1), "K1")])
    ws.drop(file_name(C1, 8), data)
    ws.drop(file_name(C1, 8, tag="-copy"), data)
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["completed", "duplicate"]
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}  # V1 once
    assert (ws.processed_dir / file_name(C1, 8, tag="-copy")).read_bytes() == data  # no clash: own name kept


def test_refused_file_dropped_again_stays_refused(ws):
    name = file_name(C1, 8)
    ws.drop(name, b"\x00binary")
    ws.run()
    ws.drop(name, b"\x00binary")
    summary = ws.run()
    assert [o.status for o in summary.outcomes] == ["duplicate"]
    first, second = ws.jobs()
    assert (first["status"], second["status"]) == ("failed", "failed")
    assert "already refused" in second["details"]
    assert sorted(p.read_bytes() for p in ws.quarantine_dir.iterdir()) == [b"\x00binary", b"\x00binary"]


# --------------------------------------------------------------------------------------
# A contract no reference knows
# --------------------------------------------------------------------------------------


def test_contract_not_in_reference_is_counted_and_flagged(ws):
    ws.write_reference(
        ["E1,Test election,RU,parliamentary,2024-09-06T08:00:00,2024-09-08T20:00:00,Europe/Moscow,active,"],
        [f"{C1},E1,North,R1,urban,100,active"],
    )
    ws.drop(file_name(CX, 8), [bsi("B1", at(8, 1), 3), vote("V1", at(8, 2), "K1"), vote("V2", at(8, 3), "K2")])
    ws.drop(file_name(CX, 9), [vote("V3", at(9, 1), "K1")])
    ws.ingest()
    _, metrics = ws.publish()

    # hour 8: B1, V1, V2 = 3 tx, 3 bulletins, 2 voters; hour 9: V3 = K1's revote
    assert ws.hourly_figures(CX) == {hour(8): (3, 3, 2, 0, 0), hour(9): (1, 0, 0, 1, 0)}
    assert {r["election_id"] for r in ws.hourly(CX).values()} == {None}
    assert {r["participation_rate"] for r in ws.hourly(CX).values()} == {0.0}
    c = ws.constituency(CX)
    assert (c["in_reference"], c["status"], c["election_id"], c["type"]) == (False, "unknown", None, "unknown")
    assert (c["registered_voters"], c["registered_voters_source"], c["participation_rate"]) == (0, "none", 0.0)
    # 4 tx, 3 bulletins, 2 distinct voters, 3 accepted votes - 2 = 1 revote
    assert (c["transaction_count"], c["bulletins_issued"], c["votes_cast"], c["revote_count"]) == (4, 3, 2, 1)
    unknown = [f for f in metrics.findings if f.rule == "unknown_constituency"]
    assert [(f.constituency_id, f.figures) for f in unknown] == [(CX, {"transactions": 4})]
    # the reference constituency is untouched
    assert ws.constituency(C1)["in_reference"] is True


# --------------------------------------------------------------------------------------
# Archives
# --------------------------------------------------------------------------------------


def test_zip_with_path_traversal_refused(ws):
    data = zip_bytes(
        [
            ("C1_a.csv", csv_bytes([vote("V1", at(8, 1), "K1")])),
            ("../evil.csv", csv_bytes([vote("V2", at(8, 2), "K2")])),
        ]
    )
    ws.drop("C1_batch.zip", data)
    ws.run()
    job = only_job(ws)
    assert job["status"] == "failed"
    assert job["details"] == (
        "C1_batch.zip is refused: member name '../evil.csv' points outside the archive "
        "(path traversal); nothing was read from it"
    )
    assert (ws.quarantine_dir / "C1_batch.zip").read_bytes() == data
    assert not (ws.root / "evil.csv").exists() and not (ws.root.parent / "evil.csv").exists()
    assert stray_files(ws) == []
    assert ws.transactions() == {}  # not even the good member is counted: the archive is refused whole


def test_zip_expanding_beyond_the_limit_refused(ws):
    data = zip_bytes([("C1_bomb.csv", b"0" * 5_000_000)])  # 5 MB of '0' compress to a few KB
    assert len(data) < 50_000
    ws.drop("C1_bomb.zip", data)
    ws.run(zip_max_total_bytes=1_000_000)
    job = only_job(ws)
    assert job["status"] == "failed"
    assert job["details"] == (
        "C1_bomb.zip is refused: it expands to more than 1,000,000 bytes "
        "(ELECTION_ZIP_MAX_TOTAL_BYTES); possible zip bomb"
    )
    assert (ws.quarantine_dir / "C1_bomb.zip").read_bytes() == data
    assert stray_files(ws) == []


def test_zip_with_csv_members_and_a_nested_zip_is_read(ws):
    inner = zip_bytes([(file_name(C2, 8), csv_bytes([vote("V2", at(8, 2), "K2"), bsi("B1", at(8, 3), 2)]))])
    data = zip_bytes(
        [
            (file_name(C1, 8), csv_bytes([vote("V1", at(8, 1), "K1")])),
            ("inner.zip", inner),
            ("readme.txt", b"not an export"),
        ]
    )
    ws.drop("batch_2024-09-06.zip", data)
    ws.run()
    assert ws.hourly_figures(C1) == {hour(8): (1, 0, 1, 0, 0)}  # V1
    assert ws.hourly_figures(C2) == {hour(8): (2, 2, 1, 0, 0)}  # V2 + B1: 2 tx, 2 bulletins, 1 vote
    txs = ws.transactions()
    assert {t: (r["constituency_id"], r["source_file"]) for t, r in txs.items()} == {
        "V1": (C1, f"batch_2024-09-06.zip::{file_name(C1, 8)}"),
        "V2": (C2, f"batch_2024-09-06.zip::inner.zip::{file_name(C2, 8)}"),
        "B1": (C2, f"batch_2024-09-06.zip::inner.zip::{file_name(C2, 8)}"),
    }
    job = only_job(ws)
    assert (job["status"], job["transactions_processed"]) == ("completed", 3)  # 1 + 2
    assert "skipped batch_2024-09-06.zip::readme.txt: not a .csv file" in job["details"]
    assert (ws.processed_dir / "batch_2024-09-06.zip").read_bytes() == data
    assert stray_files(ws) == []


def test_zip_nested_two_levels_refused(ws):
    deepest = zip_bytes([(file_name(C1, 8), csv_bytes([vote("V1", at(8, 1), "K1")]))])
    data = zip_bytes([("level1.zip", zip_bytes([("level2.zip", deepest)]))])
    ws.drop("batch.zip", data)
    ws.run()
    job = only_job(ws)
    assert job["status"] == "failed"
    assert job["details"] == "batch.zip::level1.zip is refused: archive 'level2.zip' is nested more than one level deep"
    assert (ws.quarantine_dir / "batch.zip").read_bytes() == data
    assert ws.transactions() == {}


def test_damaged_zip_fails_alone_and_the_run_goes_on(ws):
    body = csv_bytes([vote("V1", at(8, 1), "K1")])
    packed = bytearray(zip_bytes([(file_name(C1, 8), body)], compression=zipfile.ZIP_STORED))
    info = zipfile.ZipFile(io.BytesIO(bytes(packed))).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    packed[start + 3] ^= 0x01  # one stored data byte changed: the CRC-32 no longer matches
    ws.drop("A_damaged.zip", bytes(packed))
    ws.drop(file_name(C2, 8), [vote("V2", at(8, 2), "K2")])
    ws.run()
    jobs = {j["filename"]: j for j in ws.jobs()}
    assert jobs["A_damaged.zip"]["status"] == "failed"
    assert (ws.quarantine_dir / "A_damaged.zip").read_bytes() == bytes(packed)
    assert ws.hourly_figures(C2) == {hour(8): (1, 0, 1, 0, 0)}  # the next file is still counted


# --------------------------------------------------------------------------------------
# Readiness
# --------------------------------------------------------------------------------------


def test_ready_files_ignores_partial_copies_and_unsettled_files(tmp_path):
    folder = tmp_path / "input"
    folder.mkdir()
    now = time.time()
    for name in ("C1_a.csv.tmp", "C1_b.csv.part", ".C1_c.csv", "C1_old.csv", "C1_old.zip", "C1_fresh.csv"):
        (folder / name).write_text("x")
        os.utime(folder / name, (now - 100, now - 100))  # settled long ago...
    os.utime(folder / "C1_fresh.csv", (now - 10, now - 10))  # ...except this one: changed 10 s ago
    (folder / "sub").mkdir()

    # settle 30 s: the fresh file (10 s) is not ready; .tmp/.part/hidden never are; name order
    assert [p.name for p in ready_files(folder, settle_seconds=30, now=now)] == ["C1_old.csv", "C1_old.zip"]
    # 25 s later it has been quiet for 35 s >= 30 s
    assert [p.name for p in ready_files(folder, settle_seconds=30, now=now + 25)] == [
        "C1_fresh.csv",
        "C1_old.csv",
        "C1_old.zip",
    ]
    # renamed into place from its .tmp name: picked up like any other file
    (folder / "C1_a.csv.tmp").rename(folder / "C1_a.csv")
    assert next(p.name for p in ready_files(folder, settle_seconds=30, now=now + 25)) == "C1_a.csv"
    assert ready_files(tmp_path / "missing", settle_seconds=0) == []


def test_partial_copies_are_not_ingested(ws):
    ws.drop(file_name(C1, 8) + ".part", [vote("V1", at(8, 1), "K1")])
    ws.drop(file_name(C1, 9) + ".tmp", [vote("V2", at(9, 1), "K2")])
    summary = ws.run()
    assert summary.outcomes == []
    assert ws.jobs() == [] and ws.transactions() == {}
    assert sorted(p.name for p in ws.input_dir.iterdir()) == [file_name(C1, 8) + ".part", file_name(C1, 9) + ".tmp"]


def test_same_name_new_content_adds_only_new_transactions(ws):
    name = file_name(C1, 8)
    ws.drop(name, [vote("V1", at(8, 1), "K1"), vote("V2", at(8, 2), "K2")])
    ws.run()
    # a corrected re-export under the same name: V2 again, plus V3
    data = csv_bytes([vote("V2", at(8, 2), "K2"), vote("V3", at(8, 3), "K3")])
    ws.drop(name, data)
    summary = ws.run()
    assert [(o.status, o.transactions, o.new_transactions) for o in summary.outcomes] == [("completed", 2, 1)]
    assert ws.hourly_figures(C1) == {hour(8): (3, 0, 3, 0, 0)}  # V1, V2, V3 once each; 3 voters
    second = ws.jobs()[1]
    assert Path(second["stored_path"]).read_bytes() == data  # kept beside the first, not over it
    assert (ws.processed_dir / name).read_bytes() != data


def test_unknown_contract_with_addvoterslist_still_has_participation_zero(ws):
    ws.drop(
        file_name(CX, 8),
        [
            add_voters("A1", at(8, 0), count=10),
            bsi("B1", at(8, 1), 2),
            vote("V1", at(8, 2), "K1"),
            vote("V2", at(8, 3), "K2"),
        ],
    )
    ws.ingest()
    _, metrics = ws.publish()
    c = ws.constituency(CX)
    assert c["votes_cast"] == 2  # K1, K2
    # docs/input-format.md#bad-input: flagged unknown, no registered voters -> participation 0 (the alert says the same)
    alert = next(f for f in metrics.findings if f.rule == "unknown_constituency")
    assert "no registered voters, so its participation is 0" in alert.description
    assert (c["registered_voters"], c["participation_rate"]) == (0, 0.0)  # actual: (10, 20.0) = 2 / 10
