"""Whole-voting archives: one archive per contract, ``<contractId>.zip`` or
``<contractId>_dump.zip``, holding the whole voting as 12-field lines in which a ``;`` inside
JSON is written ``\\u003b`` (docs/input-format.md#other-sources).

The same lines are dropped once as hourly files and once as whole-voting archives into two
real workspaces (SQLite, then PostgreSQL) and run through the real stages: the figures must
be the same, and equal to the hand-computed ones.

The election and its hand-computed figures are in ``hand_election.py``.
"""

from __future__ import annotations

import io
import logging
import zipfile

import pytest

from election_pipeline.ingest.export_files import whole_voting_contract
from election_pipeline.stages import ingest_files

from .conftest import file_name
from .hand_election import EXPECTED, LINES, W1, W2, stored_without_origin


def _official(line: str) -> str:
    """The line as the official observer format writes it: ``;`` inside JSON as ``\\u003b``
    (here the only ``;`` inside JSON are those of the ``maskedSig`` values)."""
    return line.replace("ab12;cd34", "ab12\\u003bcd34")


def _archive(members: list[tuple[str, list[str]]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, lines in members:
            zf.writestr(name, "".join(line + "\n" for line in lines))
    return buf.getvalue()


def _figures(ws) -> dict:
    return {c: ws.hourly_figures(c) for c in (W1, W2)}


def test_whole_voting_archives_give_the_figures_of_hourly_files(workspace_factory):
    hourly, whole = workspace_factory("hourly"), workspace_factory("whole")
    for (contract, h), lines in LINES.items():
        hourly.drop(file_name(contract, h), lines)
    w1 = [_official(line) for line in LINES[(W1, 8)] + LINES[(W1, 9)]]
    w2 = [_official(line) for line in LINES[(W2, 8)]]
    assert all("\\u003b" in line for line in (w1[0], w2[0])) and ";cd34" not in w1[0]
    whole.drop(f"{W1}_dump.zip", _archive([(f"{W1}_dump.csv", w1)]))
    whole.drop(f"{W2}.zip", _archive([("voting.csv", w2)]))  # a member name without the contract id
    for ws in (hourly, whole):
        ws.run()
    assert _figures(hourly) == _figures(whole) == EXPECTED
    for c, voters in ((W1, 3), (W2, 1)):
        assert hourly.constituency(c)["votes_cast"] == whole.constituency(c)["votes_cast"] == voters
    assert stored_without_origin(hourly) == stored_without_origin(whole)
    sources = {r["source_file"] for r in whole.transactions().values()}
    assert sources == {f"{W1}_dump.zip::{W1}_dump.csv", f"{W2}.zip::voting.csv"}
    assert {j["status"] for j in whole.jobs()} == {"completed"}


def test_a_member_named_for_another_contract_is_refused(ws):
    ws.drop(f"{W1}.zip", _archive([(file_name(W2, 8), LINES[(W2, 8)])]))
    ws.run()
    [job] = ws.jobs()
    assert job["status"] == "failed"
    assert f"holds the whole voting of contract {W1}" in job["details"]
    assert f"named for contract {W2}" in job["details"]
    assert (ws.quarantine_dir / f"{W1}.zip").exists()


@pytest.mark.parametrize(
    ("name", "contract"),
    [
        (f"{W1}.zip", W1),
        (f"{W1}_dump.zip", W1),
        (f"{W1}_DUMP.ZIP", W1),
        ("batch.zip", None),  # not a contract id: the members' names decide
        ("CtrNorth1.zip", None),  # too short for a contract id
        (f"{W1}_2024-09-06.zip", None),  # an archive of hourly files
        (f"{W1}.csv", None),
    ],
)
def test_which_archive_names_are_whole_voting_archives(name, contract):
    assert whole_voting_contract(name) == contract


def test_a_long_archive_reports_its_progress_in_the_log(ws, monkeypatch, caplog):
    """Every batch staged past the reporting interval (here 0 s, in batches of 2 lines) is a
    line of the run's log: lines read so far, the member being read, the rate."""
    monkeypatch.setattr(ingest_files, "PROGRESS_EVERY_SECONDS", 0.0)
    lines = [_official(line) for line in LINES[(W1, 8)] + LINES[(W1, 9)]]
    ws.drop(f"{W1}_dump.zip", _archive([("voting.csv", lines)]))
    with caplog.at_level(logging.INFO, logger="election_pipeline.stages.ingest_files"):
        ws.run(batch_size=2)
    progress = [r.getMessage() for r in caplog.records if "lines read so far" in r.getMessage()]
    # 6 lines in batches of 2: reports after 2, 4 and 6 lines.
    assert [m.split(": ", 1)[1].split(" lines")[0] for m in progress] == ["2", "4", "6"]
    assert all(f"now {W1}_dump.zip::voting.csv" in m and "lines/s" in m for m in progress)
    assert ws.hourly_figures(W1) == EXPECTED[W1]
