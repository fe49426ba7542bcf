"""line_sql against parse_line: DuckDB only accepts lines the Python parser reads alike.

``election_pipeline.analytics.line_sql`` classifies staged export lines in DuckDB and leaves
every line it does not accept for :func:`~election_pipeline.ingest.export_line.parse_line`.
For that split to be invisible, three properties must hold, checked here on generated lines
(valid structures, then mutated) and on the canonical lines of the test builders and of the
sample generator:

1. DuckDB never accepts a line that ``parse_line`` rejects;
2. on every line DuckDB accepts, every field it gives equals what ``parse_line`` gives;
3. DuckDB accepts the ordinary shapes of real lines (otherwise the fast path is useless).

Lines go in through ``stage_lines`` (as the Python reader hands them over) and through
``stage_text_files`` (real files with ``\\n`` or ``\\r\\n`` endings, a byte-order mark, blank
lines): for files the staged lines must also be exactly those the Python reader yields.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from election_pipeline.analytics import line_sql
from election_pipeline.ingest.export_files import FileRefused, iter_export_lines
from election_pipeline.ingest.export_line import LineError, parse_line
from election_pipeline.sample.generator import generate_sample
from election_pipeline.vocabulary import Operation
from election_pipeline_tests.stages.conftest import (
    BALLOT,
    add_voters,
    bsi,
    export_line,
    rollback_of,
    simple,
    vote,
)

TS = 1_725_609_600_000  # 2024-09-06T08:00:00Z
MIN_TS = 946_684_800_000
MAX_TS = 4_102_444_800_000
B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
OPERATIONS = [op.value for op in Operation]
FIELDS = ", ".join(line_sql.CLASSIFIED_COLUMNS[2:])

SETTINGS = settings(
    max_examples=120,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.large_base_example],
)

# --------------------------------------------------------------------------------------
# The oracle and the comparison
# --------------------------------------------------------------------------------------

Fields = tuple[Any, ...]


def python_fields(line: str) -> Fields | None:
    """What parse_line gives for ``line``, in ``_classified`` column order; None when rejected."""
    try:
        parsed = parse_line(line)
    except LineError:
        return None
    fail_key = next(
        (str(e.get("key", "")) for e in parsed.raw_data["diff"] if str(e.get("key", "")).startswith("FAIL")), None
    )
    return (
        parsed.tx_id,
        parsed.tx_type,
        parsed.version,
        parsed.ts_ms,
        parsed.sender,
        parsed.raw_data["fee"],
        parsed.raw_data["feeAssetId"],
        parsed.operation,
        parsed.rejected,
        fail_key,
        parsed.is_rollback,
        parsed.bulletins,
        parsed.voters_added,
    )


@dataclass
class Outcome:
    staged: dict[tuple[int, int], str]
    accepted: dict[tuple[int, int], Fields]


def outcome(duck: duckdb.DuckDBPyConnection) -> Outcome:
    line_sql.classify(duck)
    staged = {(f, n): text for f, n, text in duck.execute("SELECT file_id, line_number, line FROM _lines").fetchall()}
    accepted = {
        (row[0], row[1]): tuple(row[2:])
        for row in duck.execute(f"SELECT file_id, line_number, {FIELDS} FROM _classified").fetchall()
    }
    left = {(f, n) for f, n, _ in line_sql.unclassified(duck)}
    assert left == set(staged) - set(accepted)
    return outcome_checked(Outcome(staged, accepted))


def outcome_checked(result: Outcome) -> Outcome:
    """Properties (1) and (2) on every line DuckDB accepted."""
    assert set(result.accepted) <= set(result.staged)
    for where, got in result.accepted.items():
        line = result.staged[where]
        expected = python_fields(line)
        assert expected is not None, f"DuckDB accepted a line parse_line rejects: {line[:300]!r}"
        assert got == expected, f"DuckDB read {line[:300]!r} as {got}, parse_line as {expected}"
    return result


def via_stage_lines(duck: duckdb.DuckDBPyConnection, lines: list[str]) -> Outcome:
    line_sql.create_stage(duck)
    line_sql.stage_lines(duck, [(7, number, text) for number, text in enumerate(lines, start=1)])
    return outcome(duck)


def python_reader(path: Path) -> dict[int, str] | None:
    """The lines the Python reader yields for a file (None when it refuses the file)."""
    try:
        return {s.line_number: s.text for s in iter_export_lines(path) if s.text is not None}
    except FileRefused:
        return None


def via_text_files(duck: duckdb.DuckDBPyConnection, folder: Path, files: list[bytes]) -> Outcome:
    """Write ``files`` into ``folder`` and classify them through ``stage_text_files``; the
    staged lines of each file must be those the Python reader yields."""
    paths = []
    for file_id, content in enumerate(files, start=1):
        path = folder / f"Ctr{file_id}_2024-09-06_0800-0900.csv"
        path.write_bytes(content)
        paths.append((file_id, str(path)))
    line_sql.create_stage(duck)
    line_sql.stage_text_files(duck, paths)
    result = outcome(duck)
    for file_id, path_text in paths:
        by_python = python_reader(Path(path_text))
        if by_python is None:
            continue  # refused as a whole (a NUL in the first 8 KiB): never staged by the ingest
        by_duckdb = {n: text for (f, n), text in result.staged.items() if f == file_id}
        assert by_duckdb == by_python
    return result


@pytest.fixture(scope="module")
def duck() -> Iterator[duckdb.DuckDBPyConnection]:
    connection = duckdb.connect()
    yield connection
    connection.close()


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("line_sql")


# --------------------------------------------------------------------------------------
# Strategies: canonical lines, structures, mutations
# --------------------------------------------------------------------------------------

ids = st.text(B58, min_size=1, max_size=44)
timestamps = st.integers(MIN_TS, MAX_TS - 1)
NASTY = list(';"\\,[]{}:\t\r\x00 \x0b\x0c\x1c\x85\xa0\u2028\u3000\ufeffé€𝄞Na-+.0e')
texts = st.text(st.one_of(st.sampled_from(NASTY), st.characters(codec="utf-8")), max_size=12)


def spellings(name: str) -> st.SearchStrategy[str]:
    """``name`` in any letter case."""
    return st.lists(st.booleans(), min_size=len(name), max_size=len(name)).map(
        lambda upper: "".join(c.upper() if u else c.lower() for c, u in zip(name, upper, strict=True))
    )


@st.composite
def canonical_lines(draw: st.DrawFn) -> str:
    """A line as the builders of the stage tests write it: DuckDB must accept it."""
    tx_id, ts = draw(ids), draw(timestamps)
    kind = draw(st.sampled_from(["bsi", "vote", "add_voters", "simple", "create", "export_line"]))
    if kind == "bsi":
        line = bsi(
            tx_id,
            ts,
            draw(st.integers(0, 6)),
            rejected=draw(st.booleans()),
            spelled=draw(spellings("blindSigIssue")),
            semicolon=draw(st.booleans()),
        )
    elif kind == "vote":
        line = vote(tx_id, ts, draw(ids), rejected=draw(st.booleans()), spelled=draw(spellings("vote")))
    elif kind == "add_voters":
        count = draw(st.none() | st.integers(0, 10**6))
        line = add_voters(tx_id, ts, count=count, hashes=draw(st.integers(0, 5)), rejected=draw(st.booleans()))
    elif kind == "simple":
        operation = draw(st.sampled_from([op for op in OPERATIONS if op not in ("blindSigIssue", "addVotersList")]))
        line = simple(tx_id, ts, draw(spellings(operation)))
    elif kind == "create":
        line = export_line(tx_id, draw(st.none() | spellings("createContract")), ts, tx_type=103)
    else:
        line = export_line(
            tx_id,
            "startVoting",
            ts,
            draw(st.text(B58, max_size=44)),
            version=draw(st.sampled_from(["", "1", "4", "123456789"])),
            fee=draw(st.sampled_from(["0", "100000", "", "0.5"])),
            fee_asset=draw(st.sampled_from(["", "WAVES", "Asset1"])),
            diff=[{"key": draw(st.sampled_from(["FAIL_x", "xFAIL", "VOTE_FAIL", "FAIL"])), "stringValue": "a;b"}],
        )
    return rollback_of(line) if draw(st.booleans()) else line


json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    texts,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=6,
)
value_keys = st.sampled_from(["stringValue", "intValue", "boolValue", "binaryValue", "value", "StringValue"])


@st.composite
def operation_entries(draw: st.DrawFn) -> Any:
    name: Any = draw(
        st.one_of(
            st.sampled_from(OPERATIONS).flatmap(spellings),
            st.sampled_from([" vote", "vote ", "updateVotersList", "", "vöte", "VOTE\t", "createcontract"]),
            json_values,
        )
    )
    return {"key": "operation", draw(st.sampled_from(["stringValue", "stringValue", "intValue", "value"])): name}


@st.composite
def data_entries(draw: st.DrawFn) -> Any:
    items = [{"userId": f"user-{i}", "maskedSig": draw(texts)} for i in range(draw(st.integers(0, 4)))]
    data: Any = draw(
        st.sampled_from(
            [
                json.dumps(items),
                items,
                json.dumps(items, separators=(",", ":")) + " ",
                " " + json.dumps(items),
                json.dumps({"items": items}),
                json.dumps(json.dumps(items)),
                "[1,]",
                "[NaN, nan]",
                "",
                5,
            ]
        )
        | json_values
    )
    return {"key": "data", draw(st.sampled_from(["stringValue", "stringValue", "binaryValue", "value"])): data}


@st.composite
def count_entries(draw: st.DrawFn) -> Any:
    count: Any = draw(
        st.one_of(
            st.integers(0, 10**6),
            st.integers(-(2**40), 2**40),
            st.integers(0, 10**6).map(str),
            st.sampled_from(["007", " 12 ", "12a", "", "١٢", "1.0", "2147483647", "2147483648", "0" * 12 + "5"]),
            st.sampled_from([1.0, True, None, [1]]),
        )
    )
    return {"key": "votersCount", draw(st.sampled_from(["intValue", "intValue", "stringValue", "value"])): count}


@st.composite
def hashes_entries(draw: st.DrawFn) -> Any:
    hashes = [f"hash{i}" for i in range(draw(st.integers(0, 4)))]
    value: Any = draw(st.sampled_from([json.dumps(hashes), hashes, json.dumps({"h": hashes}), "[", "null"]))
    return {"key": "userIdHashes", "stringValue": value}


ballot_entries = st.builds(
    lambda key, blob: {"key": key, "binaryValue": blob},
    st.sampled_from(["vote", "blindSig"]),
    st.sampled_from([BALLOT, "U0lHTkFUVVJF", "", "a;b", 'Q"x', "QQ\\u0000", "~"]),
)
other_entries = st.one_of(
    st.builds(lambda key, vk, v: {"key": key, vk: v}, texts, value_keys, json_values),
    st.dictionaries(texts, json_values, max_size=3),
    json_values,
)
param_entries = st.one_of(operation_entries(), data_entries(), count_entries(), hashes_entries(), ballot_entries)
string_diff_keys = st.one_of(
    st.sampled_from(
        ["FAIL_Tx1_blindSig", "FAIL", "xFAIL_", "fail_x", " FAIL_x", "VOTE_FAIL", "FAIL;x", "FAILED", "FAİL"]
    ),
    texts,
)
diff_keys = string_diff_keys | json_values
diff_entries = st.one_of(
    st.builds(lambda key, vk, v: {"key": key, vk: v}, diff_keys, value_keys, json_values),
    st.builds(lambda key: {"Key": key}, diff_keys),
    other_entries,
)


def dumps(value: Any, spaced: bool, ascii_only: bool) -> str:
    return json.dumps(value, separators=(", ", ": ") if spaced else (",", ":"), ensure_ascii=ascii_only)


def often(draw: st.DrawFn, usual: st.SearchStrategy[Any], odd: st.SearchStrategy[Any]) -> Any:
    """Mostly a value of ``usual``, now and then (1 in 12) one of ``odd``."""
    return draw(odd) if draw(st.integers(0, 11)) == 0 else draw(usual)


safe_values = st.one_of(st.integers(-(10**6), 10**6), st.booleans(), st.text(B58 + " ;:,[]{}é€", max_size=12))


@st.composite
def usual_params(draw: st.DrawFn, operation: str) -> list[Any]:
    """The params an ``operation`` line usually carries, with the values varied."""
    if operation == "blindSigIssue":
        items = [{"userId": f"user-{i}", "maskedSig": draw(texts)} for i in range(draw(st.integers(0, 5)))]
        data = json.dumps(items, ensure_ascii=draw(st.booleans()))
        return [{"key": "data", "stringValue": data if draw(st.integers(0, 3)) else items}]
    if operation == "addVotersList":
        hashes = [f"hash{i}" for i in range(draw(st.integers(0, 5)))]
        entries: list[Any] = [{"key": "userIdHashes", "stringValue": json.dumps(hashes)}]
        if draw(st.booleans()):
            count = draw(st.integers(0, 10**6))
            entries.append({"key": "votersCount", "intValue": count if draw(st.booleans()) else str(count)})
        return entries
    if operation == "vote":
        return [
            {"key": "vote", "binaryValue": BALLOT[: draw(st.integers(0, 800))]},
            {"key": "blindSig", "binaryValue": "U0lH"},
        ]
    return []


@st.composite
def structured_lines(draw: st.DrawFn) -> str:
    """A line built field by field: mostly well-formed, with odd values in some fields."""
    operation = draw(st.sampled_from(OPERATIONS))
    tx_type = "103" if operation == "createContract" and draw(st.booleans()) else "104"
    params: list[Any] = []
    if tx_type == "104" or draw(st.booleans()):
        params.append({"key": "operation", "stringValue": draw(spellings(operation))})
    params += draw(usual_params(operation))
    params += often(draw, st.just([]), st.lists(param_entries | other_entries, max_size=3))
    params += often(
        draw,
        st.lists(st.builds(lambda k, v: {"key": k, "stringValue": v}, texts, safe_values), max_size=2),
        st.just([]),
    )
    params = draw(st.permutations(params))
    usual_diff = st.lists(
        st.builds(lambda k, v: {"key": k, "stringValue": v}, string_diff_keys, safe_values),
        max_size=3,
    )
    diff = often(draw, usual_diff, st.lists(diff_entries, max_size=3))
    extra: Any = often(
        draw,
        st.sampled_from([{"contractVersion": 1}, {"image": "registry/contract:1", "imageHash": "abc"}, {}, None]),
        json_values,
    )
    spaced, ascii_only = draw(st.integers(0, 4)) == 0, draw(st.booleans())
    fields = [
        often(draw, ids, st.sampled_from(["", " Tx1", "Tx1 ", "T" * 128, "T" * 129, "Tx\xe91", "T x"]) | texts),
        often(
            draw,
            st.just(tx_type),
            st.sampled_from(["104", "103", " 104", "+104", "1_04", "105", "", "0104", "١٠٤"]) | texts,
        ),
        often(draw, st.sampled_from(["SigSigSig", "", "a b", "\"'"]), texts),
        often(
            draw,
            st.sampled_from(["4", "", "0", "123456789"]),
            st.sampled_from([" ", "1234567890", "2147483648", "-1", "4.0", " 4"]) | texts,
        ),
        often(
            draw,
            timestamps.map(str),
            st.sampled_from(
                [str(TS // 1000), str(MIN_TS - 1), str(MAX_TS), "0" + str(TS), " " + str(TS), "+" + str(TS), "1_725"]
            )
            | st.integers().map(str)
            | texts,
        ),
        often(
            draw,
            st.text(B58, min_size=1, max_size=44),
            st.sampled_from(["", " ", "K" * 255, "K" * 256, "Kéy", "K y"]) | texts,
        ),
        often(draw, st.sampled_from(["0", "", "1.5", "€"]), texts),
        often(draw, st.sampled_from(["", "WAVES"]), texts),
        "" if not params and draw(st.booleans()) else dumps(params, spaced, ascii_only),
        "" if not diff and draw(st.booleans()) else dumps(diff, spaced, ascii_only),
        "" if extra is None else dumps(extra, spaced, ascii_only),
        often(draw, st.sampled_from(["", "-1"]), st.sampled_from([" -1", "-1 ", "1", "-01", "-1;", "x", " "])),
    ]
    return ";".join(fields)


def _positions(line: str, pattern: str) -> list[re.Match[str]]:
    return list(re.finditer(pattern, line))


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str]) -> str:
    """``base`` with a few textual changes, each of a kind where two JSON readers may differ."""
    line = draw(base)
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(
            st.sampled_from(
                ["insert", "delete", "field", "quote_field", "whitespace", "case"]
                + ["number", "constant", "trailing_comma", "duplicate_key", "deep", "escape"] * 2
            )
        )
        where = draw(st.integers(0, len(line)))
        if kind == "insert":
            line = line[:where] + draw(texts | st.sampled_from(NASTY)) + line[where:]
        elif kind == "delete":
            line = line[:where] + line[where + draw(st.integers(1, 20)) :]
        elif kind == "number" and (found := _positions(line, r"(?<=[:\[,])-?[0-9]+(?:\.[0-9]+)?")):
            m = draw(st.sampled_from(found))
            number = draw(
                st.sampled_from(
                    ["1e400", "-1e400", "1E400", "1e308", "1.5e-400", "1e5", "9" * 250, "1" + "0" * 4400, "01", "-0"]
                )
            )
            line = line[: m.start()] + number + line[m.end() :]
        elif kind == "constant":
            found = _positions(line, r"NaN|-?Infinity|null|true|false|(?<=[:\[,])-?[0-9]+")
            if found:
                m = draw(st.sampled_from(found))
                constant = draw(st.sampled_from(["NaN", "nan", "-nan", "Infinity", "inf", "-Infinity", "-inf", "null"]))
                line = line[: m.start()] + constant + line[m.end() :]
        elif kind == "trailing_comma" and (found := _positions(line, r"[\]}]")):
            m = draw(st.sampled_from(found))
            line = line[: m.start()] + draw(st.sampled_from([",", ", ", ",,"])) + line[m.start() :]
        elif kind == "duplicate_key" and (found := _positions(line, r'"(key|stringValue|intValue|[A-Za-z]+)":')):
            m = draw(st.sampled_from(found))
            value = draw(st.sampled_from(['"operation"', '"vote"', "1", '"FAIL_x"', "[]"]))
            line = line[: m.start()] + f'"{m.group(1)}":{value},' + line[m.start() :]
        elif kind == "deep":
            depth = draw(st.sampled_from([3, 250, 499, 501, 1000, 1200]))
            if draw(st.booleans()) and (found := _positions(line, r'(?<=[:\[,])(?:"[^"\\]*"|-?[0-9]+|true|false)')):
                m = draw(st.sampled_from(found))
                line = line[: m.start()] + "[" * depth + m.group(0) + "]" * depth + line[m.end() :]
            else:  # inside a JSON string (the data or userIdHashes array read a second time)
                nested = draw(st.sampled_from(["[" * depth + "]" * depth, "\\u005b" * depth + "\\u005d" * depth]))
                line = line.replace('"[', '"' + nested[: len(nested) // 2] + "[", 1)
                line = line.replace(']"', "]" + nested[len(nested) // 2 :] + '"', 1)
        elif kind == "escape" and (found := _positions(line, r'(?<=")[^"\\;]')):
            m = draw(st.sampled_from(found))
            escape = draw(
                st.sampled_from(
                    ["\\u0000", "\\ud800", "\\uDFFF", "\\udbff"] * 3
                    + ["\\\\u0000", "\\U0000", "\\udbff\\udfff", "\\u003b", "\\u005b", "\\u0031" * 300, "\\x41"]
                    + ["\\/", "\\\\", '\\"', "\\t", "\x00", "\\u00e9", "\\ud83d\\ude00", "\\u0022", "\\u005c"]
                )
            )
            line = line[: m.start()] + escape + line[m.start() :]
        elif kind == "field":
            parts = line.split(";")
            index = draw(st.integers(0, len(parts) - 1))
            parts[index] = draw(st.sampled_from(["", " ", "A" * 129, "A" * 5000, "9" * 30, "\x00"]) | texts)
            line = ";".join(parts)
        elif kind == "quote_field":
            parts = line.split(";", 8)
            if len(parts) == 9 and parts[8][:1] == "[":
                params, sep, rest = parts[8].partition("];")
                parts[8] = '"' + (params + "]").replace('"', '""') + '"' + ";" + rest if sep else parts[8]
                line = ";".join(parts)
        elif kind == "whitespace" and (found := _positions(line, r"[;,:\[\]{}]")):
            m = draw(st.sampled_from(found))
            blank = draw(st.sampled_from([" ", "\t", "\r", "\n", "  ", "\x0c", "\xa0"]))
            line = (
                line[: m.start()] + blank + line[m.start() :]
                if draw(st.booleans())
                else line[: m.end()] + blank + line[m.end() :]
            )
        elif kind == "case" and (found := _positions(line, r'"(key|stringValue|intValue|operation|data|votersCount)"')):
            m = draw(st.sampled_from(found))
            line = line[: m.start()] + m.group(0).upper() + line[m.end() :]
    return line


junk = st.one_of(texts, st.text(max_size=200), st.text(st.sampled_from(NASTY), max_size=60))
lines = st.one_of(
    canonical_lines(),
    structured_lines(),
    mutated(canonical_lines()),
    mutated(structured_lines()),
    junk,
)


# --------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------


def check_canonical(result: Outcome, where: dict[tuple[int, int], str]) -> None:
    """Property (3): every canonical line was accepted by DuckDB."""
    for key, line in where.items():
        assert key in result.accepted, f"DuckDB left a canonical line for the Python parser: {line[:300]!r}"


REGRESSIONS = [
    # A \u0000 escape decodes to a NUL, which parse_line refuses (JSONB cannot store it).
    export_line("Tx1", "startVoting", TS, diff=[{"key": "X", "stringValue": "a\\u0000b"}]).replace("\\\\", "\\"),
    # An unpaired surrogate escape.
    export_line("Tx2", "startVoting", TS, diff=[{"key": "X", "stringValue": "a\\ud800"}]).replace("\\\\", "\\"),
    # 1e400 overflows to Infinity, which parse_line refuses.
    export_line("Tx3", "startVoting", TS, extra={"contractVersion": 1}).replace(":1}", ":1e400}"),
    export_line("Tx4", "startVoting", TS, diff=[{"key": "X", "intValue": 1}]).replace(":1}", ":-1E+400}"),
    # A data array nested deeper than json.loads reads, its brackets written as \u005b/\u005d.
    bsi("Tx5", TS, 1).replace('"[{', '"' + "\\u005b" * 1100 + "[{", 1).replace('}]"', "}]" + "\\u005d" * 1100 + '"', 1),
    # ... and a userIdHashes array likewise.
    add_voters("Tx6", TS, hashes=1)
    .replace('"[\\"', '"' + "\\u005b" * 1100 + '[\\"')
    .replace('\\"]"', '\\"]' + "\\u005d" * 1100 + '"'),
]


@pytest.mark.parametrize("line", REGRESSIONS, ids=range(len(REGRESSIONS)))
def test_regressions_are_left_for_the_python_parser(duck: duckdb.DuckDBPyConnection, line: str) -> None:
    assert python_fields(line) is None
    result = via_stage_lines(duck, [line])
    assert not result.accepted


@SETTINGS
@given(st.lists(lines, min_size=1, max_size=30), st.lists(canonical_lines(), max_size=5))
@example(REGRESSIONS, [])
def test_duckdb_accepts_only_what_parse_line_reads_alike(
    duck: duckdb.DuckDBPyConnection, batch: list[str], canonical: list[str]
) -> None:
    result = via_stage_lines(duck, batch + canonical)
    check_canonical(result, {(7, len(batch) + i): line for i, line in enumerate(canonical, start=1)})


blank_lines = st.sampled_from(["", " ", "\t", " \t ", "\x0b", "\x0c", "\r", "\x1c", "\x85", "\xa0", "\u2028", "\u3000"])


@st.composite
def export_files(draw: st.DrawFn) -> tuple[bytes, dict[int, str]]:
    """The bytes of one export file and its canonical lines by line number."""
    body = draw(
        st.lists(
            st.tuples(
                st.one_of(
                    lines.map(lambda text: (text, False)),
                    canonical_lines().map(lambda text: (text, True)),
                    blank_lines.map(lambda text: (text, False)),
                ),
                st.sampled_from(["\n", "\r\n", "\r\r\n"]),
            ),
            min_size=1,
            max_size=12,
        )
    )
    bom = "\ufeff" if draw(st.booleans()) else ""
    canonical = {}
    chunks = []
    number = 1  # a generated line may hold a '\n' of its own: it is then two lines of the file
    for (text, is_canonical), ending in body:
        chunks.append(text + ending)
        if is_canonical:
            canonical[number] = text
        number += (text + ending).count("\n")
    content = bom + "".join(chunks)
    if draw(st.booleans()):
        content = content.rstrip("\n")
    return content.encode("utf-8"), canonical


@SETTINGS
@given(st.lists(export_files(), min_size=1, max_size=3))
def test_text_files_stage_and_classify_like_the_python_reader(
    duck: duckdb.DuckDBPyConnection, folder: Path, files: list[tuple[bytes, dict[int, str]]]
) -> None:
    for old in folder.iterdir():
        old.unlink()
    result = via_text_files(duck, folder, [content for content, _ in files])
    canonical = {(file_id, n): text for file_id, (_, by_n) in enumerate(files, start=1) for n, text in by_n.items()}
    staged_canonical = {key: text for key, text in canonical.items() if key in result.staged}
    check_canonical(result, staged_canonical)


def test_crlf_bom_and_blank_lines(duck: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    first = vote("TxA", TS, "VoterA")
    second = bsi("TxB", TS + 1, 3, semicolon=True)
    content = ("\ufeff" + first + "\r\n \t\r\n\u3000\n\x1c\r\n" + second + "\r\r\n\n").encode()
    result = via_text_files(duck, tmp_path, [content])
    assert result.staged == {(1, 1): first, (1, 5): second}
    check_canonical(result, result.staged)


# --------------------------------------------------------------------------------------
# Property (3) on the canonical lines
# --------------------------------------------------------------------------------------


def builder_lines() -> list[str]:
    lines = [
        bsi("TxB1", TS, 3),
        bsi("TxB2", TS, 5, rejected=True, spelled="BLINDSIGISSUE"),
        bsi("TxB3", TS, 2, semicolon=True),
        bsi("TxB4", TS, 0),
        vote("TxV1", TS, "Voter1"),
        vote("TxV2", TS, "Voter2", rejected=True, spelled="Vote"),
        add_voters("TxA1", TS, hashes=4),
        add_voters("TxA2", TS, count=1000, hashes=2),
        add_voters("TxA3", TS, count=0, rejected=True),
        export_line("TxC1", None, TS, tx_type=103),
        export_line("TxC2", "createContract", TS, tx_type=103),
        export_line("TxE1", "startVoting", TS, version="", fee="", fee_asset="WAVES"),
        export_line("TxE2", "results", TS, diff=[{"key": "x_FAIL", "stringValue": "not a failure"}]),
    ]
    lines += [
        simple(f"TxS{i}", TS + i, op) for i, op in enumerate(OPERATIONS) if op not in ("blindSigIssue", "addVotersList")
    ]
    lines += [rollback_of(line) for line in list(lines)]
    return lines


def test_builder_lines_are_accepted(duck: duckdb.DuckDBPyConnection) -> None:
    canonical = builder_lines()
    result = via_stage_lines(duck, canonical)
    check_canonical(result, {(7, n): line for n, line in enumerate(canonical, start=1)})


def test_sample_generator_lines(duck: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """Every line of a small sample election that parse_line accepts, DuckDB accepts alike;
    the malformed ones it leaves for the Python parser."""
    summary = generate_sample(
        tmp_path / "input", tmp_path / "reference", seed=3, constituencies=3, voters_per_constituency=(30, 60)
    )
    csv_files = sorted((tmp_path / "input").glob("*.csv"))
    line_sql.create_stage(duck)
    line_sql.stage_text_files(duck, [(i, str(p)) for i, p in enumerate(csv_files, start=1)])
    zipped = [
        (len(csv_files) + 1, n, s.text)
        for n, s in enumerate(
            (s for z in sorted((tmp_path / "input").glob("*.zip")) for s in iter_export_lines(z)), start=1
        )
        if s.text is not None
    ]
    line_sql.stage_lines(duck, zipped)
    result = outcome(duck)
    good = {key: line for key, line in result.staged.items() if python_fields(line) is not None}
    assert len(good) > 300
    assert len(result.staged) - len(good) >= summary.malformed_lines > 0
    check_canonical(result, good)


def test_reader_helpers_agree(duck: duckdb.DuckDBPyConnection, tmp_path: Path) -> None:
    """unclassified() and add_classified() round-trip the lines the Python parser reads."""
    lines = [vote("TxV1", TS, "Voter1"), export_line("TxU", "startVoting", TS, params=[{"key": "x", "value": None}])]
    line_sql.create_stage(duck)
    line_sql.stage_lines(duck, [(1, n, text) for n, text in enumerate(lines, start=1)])
    line_sql.classify(duck)
    left = line_sql.unclassified(duck)
    assert [n for _, n, _ in left] == [2]
    rows = []
    for file_id, number, text in left:
        fields = python_fields(text)
        assert fields is not None
        rows.append((file_id, number, *fields))
    line_sql.add_classified(duck, rows)
    assert not line_sql.unclassified(duck)
