"""The sample-election generator: real files in tmp_path, read back with the real parser.

The ground truth in :class:`SampleSummary` comes from the generator's own event list; here it
is checked against a small, straightforward counter that follows docs/input-format.md#counting-rules over the
lines parsed from the written files.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections import defaultdict
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from election_pipeline.ingest.export_files import contract_id_from_name, iter_export_lines
from election_pipeline.ingest.export_line import LineError, ParsedTransaction, parse_line
from election_pipeline.sample import (
    CONSTITUENCIES_HEADER,
    ELECTIONS_HEADER,
    SampleSummary,
    generate_sample,
    has_input_files,
)

BASE58 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{44}$")
FILE_NAME = re.compile(
    r"^(?P<cid>[1-9A-HJ-NP-Za-km-z]{44})_(?P<date>\d{4}-\d{2}-\d{2})_(?P<start>\d{4})-\d{4}"
    r"\.(csv|zip)$"
)
#: What the parser must say about each kind of malformed line the generator writes.
MALFORMED_REASONS = {
    "wrong field count (line cut short)": "expected 12 fields",
    "wrong field count (13 fields)": "expected 12 fields",
    "bad JSON in params": "field 8 (params) is not valid JSON",
    "bad JSON in diff": "field 9 (diff) is not valid JSON",
    "non-numeric ts": "field 4 (ts) is not an integer",
    "unknown operation": "unknown operation",
}


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> SampleSummary:
    root = tmp_path_factory.mktemp("sample")
    return generate_sample(root / "input", root / "reference")


Row = tuple[str, str, int, ParsedTransaction | None, str]


def read_all(input_dir: Path) -> list[Row]:
    """Every line of every file: (source, contract id, line number, parsed or None, raw text)."""
    rows: list[Row] = []
    for path in sorted(input_dir.iterdir()):
        for line in iter_export_lines(path):
            assert line.text is not None, f"{line.source}:{line.line_number} is not UTF-8"
            try:
                tx: ParsedTransaction | None = parse_line(line.text)
            except LineError:
                tx = None
            rows.append((line.source, line.contract_id, line.line_number, tx, line.text))
    return rows


@pytest.fixture(scope="module")
def parsed(sample: SampleSummary) -> list[Row]:
    return read_all(sample.input_dir)


def _read_tree(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def _hour(moment: datetime) -> datetime:
    return moment.replace(minute=0, second=0, microsecond=0)


def _file_hour(source: str) -> datetime:
    """The first hour named by the (innermost) file name of a source label."""
    match = FILE_NAME.match(source.rsplit("::", maxsplit=1)[-1])
    assert match, source
    return datetime.strptime(f"{match['date']} {match['start']}", "%Y-%m-%d %H%M")


def reference_counter(rows: list[Row]) -> list[dict]:
    """docs/input-format.md#counting-rules, the plain way: dedupe by tx id, drop rolled-back ids, bucket by
    UTC hour, count the bulletins of accepted blindSigIssue, the first accepted vote of a key
    as a vote and its later accepted votes as revotes; every standing transaction once."""
    transactions: dict[tuple[str, str], ParsedTransaction] = {}
    rolled_back: set[tuple[str, str]] = set()
    for _source, contract, _number, tx, _text in rows:
        if tx is None:
            continue
        key = (contract, tx.tx_id)
        if tx.is_rollback:
            rolled_back.add(key)
        else:
            transactions.setdefault(key, tx)
    figures: dict[tuple[str, datetime], dict[str, int]] = defaultdict(
        lambda: {"bulletins_issued": 0, "votes_cast": 0, "revotes": 0, "transaction_count": 0}
    )
    standing = sorted(
        ((key[0], tx) for key, tx in transactions.items() if key not in rolled_back),
        key=lambda item: (item[1].ts_ms, item[1].tx_id),
    )
    voted: set[tuple[str, str]] = set()
    for contract, tx in standing:
        bucket = figures[(contract, _hour(tx.timestamp))]
        bucket["transaction_count"] += 1
        if tx.rejected:
            continue
        if tx.operation == "blindSigIssue":
            bucket["bulletins_issued"] += tx.bulletins
        elif tx.operation == "vote":
            if (contract, tx.sender) in voted:
                bucket["revotes"] += 1
            else:
                voted.add((contract, tx.sender))
                bucket["votes_cast"] += 1
    return [
        {"constituency_id": contract, "hour": hour, **counts} for (contract, hour), counts in sorted(figures.items())
    ]


# ---- determinism ---------------------------------------------------------------------


def test_same_seed_gives_byte_identical_files(sample: SampleSummary, tmp_path: Path) -> None:
    again = generate_sample(tmp_path / "input", tmp_path / "reference")
    assert _read_tree(tmp_path / "input") == _read_tree(sample.input_dir)
    assert _read_tree(tmp_path / "reference") == _read_tree(sample.reference_dir)
    assert again.expected_hourly == sample.expected_hourly


def test_different_seed_gives_different_files(sample: SampleSummary, tmp_path: Path) -> None:
    other = generate_sample(tmp_path / "input", tmp_path / "reference", seed=8)
    assert set(other.contract_ids).isdisjoint(sample.contract_ids)
    mine = set(_read_tree(sample.input_dir).values())
    theirs = set(_read_tree(tmp_path / "input").values())
    assert mine.isdisjoint(theirs)
    assert other.election_id != sample.election_id


# ---- files and lines -----------------------------------------------------------------


def test_every_file_name_yields_a_known_contract_id(sample: SampleSummary) -> None:
    names = sorted(p.name for p in sample.input_dir.iterdir())
    assert names == sorted(p.name for p in sample.files)
    assert not [n for n in names if n.endswith(".part")]

    def check(name: str) -> None:
        assert FILE_NAME.match(name), name
        contract = contract_id_from_name(name)
        assert BASE58.match(contract)
        assert contract in sample.contract_ids

    nested = 0
    for name in names:
        check(name)
        if name.endswith(".zip"):
            with zipfile.ZipFile(sample.input_dir / name) as archive:
                for member in archive.namelist():
                    check(member)
                    if member.endswith(".zip"):
                        nested += 1
                        inner = zipfile.ZipFile(io.BytesIO(archive.read(member)))
                        for inner_member in inner.namelist():
                            assert inner_member.endswith(".csv")
                            check(inner_member)
    assert nested == 1
    zips = [n for n in names if n.endswith(".zip")]
    assert len(zips) == 2
    assert {contract_id_from_name(n) for n in zips} == {sample.zipped_contract_id}
    assert len({contract_id_from_name(n) for n in names}) == len(sample.contract_ids)


def test_every_line_parses_except_the_malformed_ones(sample: SampleSummary, parsed) -> None:
    failures = {(source, number) for source, _c, number, tx, _t in parsed if tx is None}
    written = {(m.source, m.line_number) for m in sample.malformed}
    assert sample.malformed_lines == 6
    assert failures == written
    assert len(parsed) == sample.line_count
    kinds = {(m.source, m.line_number): m.kind for m in sample.malformed}
    assert set(kinds.values()) == set(MALFORMED_REASONS)
    assert len({m.source for m in sample.malformed}) == 2  # a couple of files
    for source, _c, number, tx, text in parsed:
        if tx is None:
            with pytest.raises(LineError) as caught:
                parse_line(text)
            assert MALFORMED_REASONS[kinds[(source, number)]] in caught.value.reason


def test_reference_counter_equals_ground_truth(sample: SampleSummary, parsed) -> None:
    assert reference_counter(parsed) == sample.expected_hourly
    for contract, hours in sample.hourly.items():
        totals = sample.totals[contract]
        assert totals.votes_cast == sum(f.votes_cast for f in hours.values())
        assert totals.bulletins_issued == sum(f.bulletins_issued for f in hours.values())
        assert totals.transaction_count == sum(f.transaction_count for f in hours.values())
    rows = {(r["constituency_id"], r["hour"]) for r in sample.expected_hourly}
    assert rows == {(c, h) for c, hours in sample.hourly.items() for h in hours}


# ---- what the sample promises ------------------------------------------------------


def test_sample_carries_the_irregularities(sample: SampleSummary, parsed) -> None:
    good = [(source, contract, tx, text) for source, contract, _n, tx, text in parsed if tx]
    originals = {tx.tx_id: (source, tx) for source, _c, tx, _t in good if not tx.is_rollback}

    rollbacks = [(source, tx) for source, _c, tx, _t in good if tx.is_rollback]
    assert len(rollbacks) == sample.rollback_lines >= 2
    assert all(tx.tx_id in originals for _s, tx in rollbacks)
    assert any(_file_hour(source) > _hour(tx.timestamp) for source, tx in rollbacks)

    sources_by_id: dict[str, set[str]] = defaultdict(set)
    for source, _c, tx, _t in good:
        if not tx.is_rollback:
            sources_by_id[tx.tx_id].add(source)
    repeated = sum(1 for s in sources_by_id.values() if len(s) > 1)
    assert repeated == sample.duplicated_lines >= 2
    assert any("::" in s and s.count("::") == 2 for s, *_ in good)  # a zip inside a zip

    txs = [tx for _s, _c, tx, _t in good if not tx.is_rollback]
    assert {tx.version for tx in txs} == {4}
    ops = {tx.operation for tx in txs}
    lifecycle = {
        "createContract",
        "addVotersList",
        "addMainKey",
        "startVoting",
        "blindSigIssue",
        "vote",
        "finishVoting",
        "commissionDecryption",
        "decryption",
        "results",
    }
    assert lifecycle == ops
    assert any(tx.rejected and tx.operation == "vote" for tx in txs)
    assert any(tx.rejected and tx.operation == "blindSigIssue" for tx in txs)
    assert any(tx.bulletins >= 2 for tx in txs if tx.operation == "blindSigIssue")
    assert any(sum(f.revotes for f in h.values()) for h in sample.hourly.values())
    spelled = {p["stringValue"] for tx in txs for p in tx.raw_data["params"] if p.get("key") == "operation"}
    odd = spelled - lifecycle
    assert any(s.lower() == "vote" for s in odd) and any(s.lower() == "blindsigissue" for s in odd)
    assert any(
        ";" in p["stringValue"]
        for tx in txs
        if tx.operation == "blindSigIssue"
        for p in tx.raw_data["params"]
        if p.get("key") == "data"
    )
    creates = [tx for tx in txs if tx.operation == "createContract"]
    assert all(tx.tx_type == 103 and "image" in tx.raw_data["extra"]["keys"] for tx in creates)
    assert all(tx.raw_data["extra"] == {"contractVersion": 1} for tx in txs if tx.tx_type == 104)

    registered = sample.registered_voters
    for tx in txs:
        if tx.operation == "addVotersList":
            contract = next(c for s, c, t, _ in good if t is tx)
            assert tx.voters_added == registered[contract]
    # No vote after the window closes; ballots carry the requested size (base64 of 256 bytes).
    votes = [tx for tx in txs if tx.operation == "vote"]
    assert all(sample.window_start <= tx.timestamp < sample.window_end for tx in votes)
    vote_sizes = {
        p["binaryValueLength"]
        for tx in txs
        if tx.operation == "vote"
        for p in tx.raw_data["params"]
        if p.get("key") == "vote"
    }
    assert 344 in vote_sizes


def test_participation_stuffing_and_unknown_contract(sample: SampleSummary) -> None:
    for c in sample.constituencies:
        totals = sample.totals[c.id]
        if c.id == sample.unknown_contract_id:
            assert not c.in_reference and totals.votes_cast > 0 and totals.participation_rate == 0
        elif c.id == sample.stuffed_contract_id:
            stuffed_hours = [f for f in sample.hourly[c.id].values() if f.votes_cast >= f.bulletins_issued + 25]
            assert len(stuffed_hours) >= 3
        else:
            assert 40 <= totals.participation_rate <= 80, (c.id, totals)
            assert totals.votes_cast <= totals.bulletins_issued
    assert sample.total_bytes < 25 * 1024 * 1024


# ---- reference files ---------------------------------------------------------------


def test_reference_files(sample: SampleSummary) -> None:
    with (sample.reference_dir / "elections.csv").open(newline="", encoding="utf-8") as fh:
        elections = list(csv.reader(fh))
    assert (
        tuple(elections[0])
        == ELECTIONS_HEADER
        == (
            "id",
            "name",
            "country",
            "type",
            "start_date",
            "end_date",
            "timezone",
            "status",
            "description",
        )
    )
    assert len(elections) == 2
    row = dict(zip(elections[0], elections[1], strict=False))
    assert row["id"] == sample.election_id
    assert (row["name"], row["country"], row["type"], row["timezone"], row["status"]) == (
        "Sample regional election",
        "Exampleland",
        "local",
        "Europe/Moscow",
        "completed",
    )
    assert row["start_date"] == "2024-09-06T08:00:00+03:00"
    assert row["end_date"] == "2024-09-08T20:00:00+03:00"
    start = datetime.fromisoformat(row["start_date"])
    offset = start.utcoffset()
    assert offset is not None
    assert start.replace(tzinfo=None) - offset == sample.window_start

    with (sample.reference_dir / "constituencies.csv").open(newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
        fh.seek(0)
        header = next(csv.reader(fh))
    assert (
        tuple(header)
        == CONSTITUENCIES_HEADER
        == ("id", "election_id", "name", "region", "type", "registered_voters", "status")
    )
    ids = [r["id"] for r in rows]
    assert sample.unknown_contract_id not in ids
    assert sample.stuffed_contract_id in ids
    assert ids == sample.reference_contract_ids and len(ids) == 6
    assert {r["election_id"] for r in rows} == {sample.election_id}
    assert {r["status"] for r in rows} == {"active"}
    assert {r["type"] for r in rows} <= {"urban", "rural", "suburban"}
    assert 2 <= len({r["region"] for r in rows}) <= 3
    for r in rows:
        assert int(r["registered_voters"]) == sample.registered_voters[r["id"]]
        assert 300 <= int(r["registered_voters"]) <= 900


def test_existing_reference_files_are_not_overwritten_by_default(tmp_path: Path) -> None:
    kwargs: dict[str, Any] = {"constituencies": 2, "voters_per_constituency": (40, 60)}
    generate_sample(tmp_path / "in", tmp_path / "ref", **kwargs)
    before = _read_tree(tmp_path / "ref")
    with pytest.raises(FileExistsError, match="overwrite_reference"):
        generate_sample(tmp_path / "in2", tmp_path / "ref", seed=9, **kwargs)
    assert not (tmp_path / "in2").exists()  # refused before writing anything
    assert _read_tree(tmp_path / "ref") == before
    generate_sample(tmp_path / "in3", tmp_path / "ref", seed=9, write_reference=False, **kwargs)
    assert _read_tree(tmp_path / "ref") == before
    generate_sample(tmp_path / "in4", tmp_path / "ref", seed=9, overwrite_reference=True, **kwargs)
    assert _read_tree(tmp_path / "ref") != before


def test_small_sample_is_still_consistent(tmp_path: Path) -> None:
    summary = generate_sample(
        tmp_path / "in", tmp_path / "ref", seed=3, constituencies=2, voters_per_constituency=(40, 60), ballot_bytes=32
    )
    rows = read_all(tmp_path / "in")
    failures = {(s, n) for s, _c, n, tx, _t in rows if tx is None}
    assert failures == {(m.source, m.line_number) for m in summary.malformed}
    assert summary.malformed_lines == 6
    assert reference_counter(rows) == summary.expected_hourly
    assert summary.unknown_contract_id not in summary.reference_contract_ids


def test_has_input_files(tmp_path: Path) -> None:
    folder = tmp_path / "drop"
    assert not has_input_files(folder)
    folder.mkdir()
    assert not has_input_files(folder)
    (folder / "x_2024-09-06_0500-0600.csv.part").write_text("partial")
    (folder / ".hidden.csv").write_text("")
    (folder / "notes.txt").write_text("")
    assert not has_input_files(folder)
    (folder / "x_2024-09-06_0500-0600.zip").write_bytes(b"")
    assert has_input_files(folder)


# ---- labelled anomalies and ground truth ----------------------------------------------

from datetime import timedelta  # noqa: E402
from zoneinfo import ZoneInfo  # noqa: E402

from election_pipeline.sample.generator import (  # noqa: E402
    ANOMALY_RULES,
    DEFAULT_ANOMALIES,
    GROUND_TRUTH_FILE,
)


def test_default_sample_plants_every_default_anomaly_and_keeps_clean_constituencies(sample: SampleSummary) -> None:
    import json

    kinds = [a.kind for a in sample.anomalies]
    assert sorted(kinds) == sorted(DEFAULT_ANOMALIES)
    assert all(a.rules == ANOMALY_RULES[a.kind] for a in sample.anomalies)
    hosts = {a.constituency_id for a in sample.anomalies}
    assert hosts <= set(sample.reference_contract_ids)
    clean = sample.clean_contract_ids
    assert len(clean) >= 2 and not hosts & set(clean)
    assert next(a for a in sample.anomalies if a.kind == "stuffing").constituency_id == sample.stuffed_contract_id
    for c in sample.constituencies:
        assert sorted(c.anomalies) == sorted(a.kind for a in sample.anomalies if a.constituency_id == c.id)

    truth = json.loads((sample.reference_dir / GROUND_TRUTH_FILE).read_text(encoding="utf-8"))
    assert sample.ground_truth_file == sample.reference_dir / GROUND_TRUTH_FILE
    assert truth == json.loads(json.dumps(sample.ground_truth()))
    assert {a["kind"] for a in truth["anomalies"]} == set(DEFAULT_ANOMALIES)
    assert truth["timezone"] == "Europe/Moscow"


def test_planted_anomalies_are_in_the_counted_figures(sample: SampleSummary) -> None:
    """Each planted anomaly, checked against the ground-truth counts (which come from the
    generator's own transactions, and which the pipeline reproduces)."""
    tz = ZoneInfo(sample.timezone)

    def local_hour(h: datetime) -> int:
        return h.replace(tzinfo=ZoneInfo("UTC")).astimezone(tz).hour

    by_kind = {a.kind: a for a in sample.anomalies}
    for kind, a in by_kind.items():
        hours = sample.hourly[a.constituency_id]
        assert (a.start is None) == (a.end is None)  # a planted window has both ends or neither
        inside = {h: f for h, f in hours.items() if a.start is not None and a.end is not None and a.start <= h < a.end}
        if kind == "offline_gap":
            assert a.start is not None and a.end is not None
            assert inside == {} and (a.end - a.start) >= timedelta(hours=4)
            assert any(h < a.start for h in hours) and any(h >= a.end for h in hours)
        elif kind == "spike":
            assert sum(f.votes_cast for f in inside.values()) >= 30
        elif kind == "night_burst":
            assert all(local_hour(h) < 6 for h in inside) and len(inside) == 2
            assert all(f.votes_cast >= 12 for f in inside.values())
        elif kind == "high_rejection":
            [f] = inside.values()
            assert f.rejected_count >= 8 and f.rejected_count / f.transaction_count > 0.25
        elif kind == "revote_burst":
            [f] = inside.values()
            assert f.revotes >= 10 and f.revotes > f.votes_cast
        elif kind == "stuffing":
            assert sum(f.votes_cast - f.bulletins_issued for f in inside.values()) >= 4 * 25
        elif kind == "integer_turnout":
            totals = sample.totals[a.constituency_id]
            assert totals.votes_cast * 100 == a.figures["percent"] * totals.registered_voters
            assert totals.registered_voters % 20 == 0


def test_clean_constituencies_never_have_votes_above_bulletins() -> None:
    """Rollbacks only cancel a revote or a bulletin nobody used, so an honest constituency
    never shows more voters than bulletins at the end of any hour (several seeds)."""
    import tempfile

    for seed in (1, 2, 3, 4):
        with tempfile.TemporaryDirectory() as tmp:
            s = generate_sample(
                Path(tmp) / "in",
                Path(tmp) / "ref",
                seed=seed,
                constituencies=8,
                voters_per_constituency=(100, 300),
                ballot_bytes=16,
            )
            for cid in s.clean_contract_ids:
                votes = bulletins = 0
                for _h, f in sorted(s.hourly[cid].items()):
                    votes += f.votes_cast
                    bulletins += f.bulletins_issued
                    assert votes <= bulletins, (seed, cid)
            assert s.rollback_lines >= 2


def test_time_zone_late_votes_and_no_anomalies(tmp_path: Path) -> None:
    s = generate_sample(
        tmp_path / "in",
        tmp_path / "ref",
        seed=5,
        constituencies=10,
        ballot_bytes=16,
        timezone_name="Asia/Kolkata",
        anomalies=["late_votes", "spike"],
    )
    with (tmp_path / "ref" / "elections.csv").open(newline="", encoding="utf-8") as fh:
        row = next(csv.DictReader(fh))
    assert (row["start_date"], row["end_date"], row["timezone"]) == (
        "2024-09-06T08:00:00+05:30",
        "2024-09-08T20:00:00+05:30",
        "Asia/Kolkata",
    )
    assert (s.window_start, s.window_end) == (datetime(2024, 9, 6, 2, 30), datetime(2024, 9, 8, 14, 30))
    assert sorted(a.kind for a in s.anomalies) == ["late_votes", "spike"]
    late = next(a for a in s.anomalies if a.kind == "late_votes")
    assert late.start is not None and late.start >= datetime(2024, 9, 8, 14) and s.stuffed_contract_id == ""
    late_votes = sum(f.votes_cast for h, f in s.hourly[late.constituency_id].items() if h >= datetime(2024, 9, 8, 15))
    assert late_votes >= 1

    none = generate_sample(tmp_path / "in2", tmp_path / "ref2", seed=5, constituencies=4, ballot_bytes=16, anomalies=[])
    assert none.anomalies == [] and len(none.clean_contract_ids) == 4

    with pytest.raises(ValueError, match="unknown anomaly kind"):
        generate_sample(tmp_path / "in3", tmp_path / "ref3", anomalies=["meteor"])
    with pytest.raises(ValueError, match="IANA time zone"):
        generate_sample(tmp_path / "in4", tmp_path / "ref4", timezone_name="Mars/Olympus")
