"""parse_line: one line of the official 12-field export (docs/input-format.md#export-line).

Lines are built by hand here; every expectation is worked out in the comment next to it.
"""

from __future__ import annotations

import contextlib
import json
from datetime import datetime, timedelta
from typing import Any

import pytest

from election_pipeline.ingest.export_line import LineError, ms_to_utc, parse_line, utc_to_ms

EPOCH = datetime(1970, 1, 1)
TS = 1_725_609_600_000  # 2024-09-06T08:00:00Z: 19972 days * 86_400_000 ms + 8 h * 3_600_000 ms
KEY = "VoterKey111"


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def line(
    tx_id: str = "Tx1",
    tx_type: str = "104",
    ts: str = str(TS),
    sender: str = KEY,
    params: str | None = None,
    diff: str = "[]",
    extra: str = '{"contractVersion":1}',
    rollback: str = "",
    version: str = "4",
    operation: str = "vote",
) -> str:
    if params is None:
        params = _j(
            [
                {"key": "operation", "stringValue": operation},
                {"key": "vote", "binaryValue": "QUJD" * 250},
                {"key": "blindSig", "binaryValue": "U0lH"},
            ]
        )
    return ";".join([tx_id, tx_type, "SIGNATURE", version, ts, sender, "0", "", params, diff, extra, rollback])


def bsi_params(data: Any, operation: str = "blindSigIssue") -> str:
    return _j([{"key": "operation", "stringValue": operation}, {"key": "data", "stringValue": data}])


def test_ts_constant_is_what_the_comment_says():
    assert EPOCH + timedelta(milliseconds=TS) == datetime(2024, 9, 6, 8, 0, 0)


# --------------------------------------------------------------------------------------
# Good lines
# --------------------------------------------------------------------------------------


def test_accepted_vote_fields():
    tx = parse_line(line())
    assert tx.tx_id == "Tx1"
    assert tx.tx_type == 104
    assert tx.version == 4  # field 3 is the format version, not a block height
    assert tx.ts_ms == TS
    assert tx.timestamp == datetime(2024, 9, 6, 8, 0, 0)  # TS is exactly 08:00:00.000 UTC
    assert tx.sender == KEY
    assert tx.operation == "vote"
    assert tx.rejected is False  # empty diff: no FAIL key
    assert tx.is_rollback is False
    assert tx.bulletins == 0  # only blindSigIssue issues bulletins
    assert tx.voters_added is None
    assert tx.counts_as_vote is True


def test_timestamp_is_exact_to_the_millisecond():
    # 08:59:59.999 = TS + 3_599_999 ms
    tx = parse_line(line(ts=str(TS + 3_599_999)))
    assert tx.timestamp == datetime(2024, 9, 6, 8, 59, 59, 999_000)
    assert utc_to_ms(tx.timestamp) == TS + 3_599_999
    assert ms_to_utc(TS) == datetime(2024, 9, 6, 8)


def test_rejected_by_fail_key_in_diff():
    diff = _j([{"key": "FAIL_addrX_Tx1_vote", "stringValue": "blind signature verification failed"}])
    tx = parse_line(line(diff=diff))
    assert tx.rejected is True
    assert tx.counts_as_vote is False  # rejected votes never count


def test_fail_elsewhere_than_at_key_start_is_not_a_rejection():
    diff = _j([{"key": "VOTE_addrX", "stringValue": "FAIL_looking_value"}, {"key": "X_FAIL", "intValue": 1}])
    assert parse_line(line(diff=diff)).rejected is False  # only keys *starting* with FAIL reject


def test_rollback_line():
    tx = parse_line(line(rollback="-1"))
    assert tx.is_rollback is True
    assert tx.raw_data["rollback"] is True
    assert tx.counts_as_vote is False


@pytest.mark.parametrize("spelled", ["vote", "VOTE", "Vote", "vOtE", " vote "])
def test_operation_matched_case_insensitively(spelled):
    assert parse_line(line(operation=spelled)).operation == "vote"  # canonical spelling


@pytest.mark.parametrize(
    "spelled,canonical",
    [
        ("BLINDSIGISSUE", "blindSigIssue"),
        ("addvoterslist", "addVotersList"),
        ("FinishVoting", "finishVoting"),
        ("COMMISSIONDECRYPTION", "commissionDecryption"),
        ("Results", "results"),
    ],
)
def test_every_operation_has_a_canonical_name(spelled, canonical):
    params = [{"key": "operation", "stringValue": spelled}]
    if canonical == "blindSigIssue":
        params.append({"key": "data", "stringValue": "[]"})
    if canonical == "addVotersList":
        params.append({"key": "votersCount", "intValue": 3})
    assert parse_line(line(params=_j(params))).operation == canonical


def test_blindsigissue_counts_array_elements():
    data = _j(
        [{"userId": "u1", "maskedSig": "a"}, {"userId": "u2", "maskedSig": "b"}, {"userId": "u3", "maskedSig": "c"}]
    )
    tx = parse_line(line(params=bsi_params(data)))
    assert tx.operation == "blindSigIssue"
    assert tx.bulletins == 3  # three elements in data -> 3 bulletins from one transaction


def test_semicolons_inside_json_strings_of_params_and_diff():
    # maskedSig "r;s" pairs and a diff value holding ';': a split on every ';' would see 17 fields
    data = _j([{"userId": "u1", "maskedSig": "aa;bb"}, {"userId": "u2", "maskedSig": "cc;dd;ee"}])
    diff = _j([{"key": "BLINDSIG_u1", "stringValue": "x;y"}])
    raw = line(params=bsi_params(data), diff=diff)
    assert raw.count(";") == 11 + 1 + 2 + 1  # 11 separators + 3 inside data (escaped JSON) + 1 in diff
    tx = parse_line(raw)
    assert tx.bulletins == 2  # two elements, the ';' inside them do not split anything
    assert tx.raw_data["diff"] == [{"key": "BLINDSIG_u1", "stringValue": "x;y"}]
    assert tx.raw_data["extra"] == {"contractVersion": 1}
    assert tx.is_rollback is False


def test_csv_quoted_json_fields_are_unquoted():
    params = '"[{""key"":""operation"",""stringValue"":""startVoting""}]"'
    tx = parse_line(line(params=params))
    assert tx.operation == "startVoting"


def test_createcontract_103_without_operation_param():
    params = _j([{"key": "title", "stringValue": "District 1"}])
    extra = _j({"image": "registry/voting:1", "imageHash": "ff00", "apiVersion": "1.0"})
    tx = parse_line(line(tx_type="103", params=params, extra=extra, sender="CommissionKey"))
    assert tx.tx_type == 103
    assert tx.operation == "createContract"  # 103 without 'operation' is the contract creation
    # image data of a 103 is reduced to its key names
    assert tx.raw_data["extra"] == {"keys": ["apiVersion", "image", "imageHash"]}


def test_add_voters_list_votersCount_int_string_and_hashes():
    def add(params):
        return parse_line(line(params=_j([{"key": "operation", "stringValue": "addVotersList"}, *params])))

    hashes = {"key": "userIdHashes", "stringValue": _j(["h1", "h2", "h3", "h4"])}
    assert add([hashes, {"key": "votersCount", "intValue": 7}]).voters_added == 7  # votersCount wins
    assert add([hashes, {"key": "votersCount", "stringValue": "12"}]).voters_added == 12  # numeric string
    assert add([hashes]).voters_added == 4  # no votersCount: 4 hashes
    assert add([{"key": "userIdHashes", "stringValue": "[]"}]).voters_added == 0  # empty list


def test_raw_data_has_no_ballot_but_keeps_its_length():
    raw = line()
    tx = parse_line(raw)
    dumped = json.dumps(tx.raw_data)
    assert 'binaryValue"' not in dumped
    assert "QUJDQUJD" not in dumped  # no piece of the ballot survives
    assert "SIGNATURE" not in dumped  # the signature is not kept either
    assert tx.raw_data["params"] == [
        {"key": "operation", "stringValue": "vote"},
        {"key": "vote", "binaryValueLength": 1000},  # "QUJD" * 250 = 1000 characters
        {"key": "blindSig", "binaryValueLength": 4},  # "U0lH" = 4 characters
    ]
    assert tx.raw_data["ts"] == TS
    assert tx.raw_data["senderPublicKey"] == KEY
    assert tx.raw_data["type"] == 104
    assert tx.raw_data["version"] == 4


def test_long_string_values_are_cut():
    long_value = "x" * 3000
    params = _j([{"key": "operation", "stringValue": "results"}, {"key": "results", "stringValue": long_value}])
    tx = parse_line(line(params=params))
    kept = tx.raw_data["params"][1]["stringValue"]
    assert kept == "x" * 200 + "... [3000 characters]"  # 200-character prefix + the original length


def test_empty_version_is_none():
    assert parse_line(line(version="")).version is None


def test_trailing_whitespace_in_rollback_field_is_tolerated():
    assert parse_line(line(rollback="-1 ")).is_rollback is True


# --------------------------------------------------------------------------------------
# Every LineError reason
# --------------------------------------------------------------------------------------


def _reason(text: str) -> str:
    with pytest.raises(LineError) as info:
        parse_line(text)
    assert info.value.reason == str(info.value)
    return info.value.reason


def test_empty_line():
    assert _reason("   ") == "empty line"


def test_too_few_fields_before_params():
    # 6 fields: 5 separators -> split(';', 8) gives 6 parts
    assert _reason("Tx1;104;SIG;4;1725609600000;Key") == (
        "expected 12 fields separated by ';', found 6 (the line ends before the params field)"
    )


def test_line_ends_after_extra_11_fields():
    full = line()
    eleven = full[: full.rfind(";")]  # drop the rollback field and its separator
    assert _reason(eleven) == "expected 12 fields separated by ';', the line ends after field 10 (extra)"


def test_line_ends_after_params():
    full = line()
    head, params = ";".join(full.split(";", 9)[:8]), line().split(";", 8)[8]
    params_only = head + ";" + params[: params.index("];") + 1]
    assert _reason(params_only) == "expected 12 fields separated by ';', the line ends after field 8 (params)"


def test_thirteen_fields():
    assert _reason(line() + ";0") == "expected 12 fields separated by ';', found 13"  # one extra ';'


def test_fourteen_fields():
    assert _reason(line(rollback="-1;0;0")) == "expected 12 fields separated by ';', found 14"  # two extra


def test_empty_tx_id():
    assert _reason(line(tx_id=" ")) == "field 0 (nestedTxId) is empty"


def test_non_numeric_type():
    assert _reason(line(tx_type="call")) == "field 1 (type) is not a number: 'call'"


@pytest.mark.parametrize("written", ["+104", "1_04", "\u0661\u0660\u0664", "１０４", "104.0"])
def test_a_type_written_other_than_in_ascii_digits_is_not_a_number(written):
    """``int()`` reads all of these as 104; an export writes its numbers in ASCII digits."""
    assert _reason(line(tx_type=written)) == f"field 1 (type) is not a number: {written!r}"


@pytest.mark.parametrize("written", ["+1725609600000", "1_725_609_600_000", "１７２５６０９６０００００"])
def test_a_ts_written_other_than_in_ascii_digits_is_rejected(written):
    assert _reason(line(ts=written)) == f"field 4 (ts) is not an integer epoch-milliseconds timestamp: {written!r}"


def test_a_version_written_with_a_plus_sign_is_not_a_number():
    assert _reason(line(version="+4")) == "field 3 (version) is not a number: '+4'"


def test_unknown_type():
    assert _reason(line(tx_type="105")) == "field 1 (type) is 105; only 103 (create) and 104 (call) are known"


def test_non_numeric_ts():
    assert _reason(line(ts="2024-09-06 08:00:00")) == (
        "field 4 (ts) is not an integer epoch-milliseconds timestamp: '2024-09-06 08:00:00'"
    )


def test_ts_in_seconds_is_implausible():
    # 1_725_609_600 ms is 1970-01-20: seconds were written instead of milliseconds
    assert _reason(line(ts="1725609600")) == (
        "field 4 (ts) = 1725609600 is not a plausible epoch-milliseconds timestamp "
        "(outside 2000-2100; seconds instead of milliseconds?)"
    )


def test_non_numeric_version():
    assert _reason(line(version="v4")) == "field 3 (version) is not a number: 'v4'"


def test_bad_json_in_params():
    cut = '[{"key":"operation","stringValue":"vote"},{"key":"vote","binaryValue":"QUJD'
    reason = _reason(line(params=cut))
    assert reason.startswith("field 8 (params) is not valid JSON: ")


def test_bad_json_in_diff():
    reason = _reason(line(diff='[{"key":"VOTE_x","stringValue":"oops}]'))
    assert reason.startswith("field 9 (diff) is not valid JSON: ")


def test_bad_json_in_extra():
    assert _reason(line(extra="{contractVersion:1}")).startswith("field 10 (extra) is not valid JSON: ")


def test_unterminated_csv_quote():
    # no closing quote anywhere in the rest of the line (empty diff and extra)
    assert _reason(line(params='"[{""key"":""operation""', diff="", extra="")) == (
        "field 8 (params) has an unterminated quote"
    )


def test_bad_json_inside_csv_quotes():
    assert _reason(line(params='"[{""key"":}]"')).startswith("field 8 (params) is not valid JSON: ")


def test_text_after_json_value():
    # the reason quotes the next 20 characters: 'x;[];{"contractVersi'
    assert _reason(line(params="[]x")) == "unexpected text after field 8 (params): 'x;[];{\"contractVersi'"


def test_params_not_array_of_objects():
    assert _reason(line(params='{"key":"operation"}')) == (
        "field 8 (params) must be a JSON array of {key, value} objects"
    )
    assert _reason(line(diff='["FAIL"]')) == "field 9 (diff) must be a JSON array of {key, value} objects"


def test_extra_not_object():
    assert _reason(line(extra="[1]")) == "field 10 (extra) must be a JSON object"


def test_bad_rollback_field():
    assert _reason(line(rollback="1")) == "field 11 (rollback) must be empty or -1, got '1'"


def test_call_without_operation():
    assert _reason(line(params=_j([{"key": "vote", "binaryValue": "QQ=="}]))) == (
        "call transaction (type 104) has no 'operation' parameter"
    )


def test_unknown_operation():
    assert _reason(line(operation="updateVotersList")) == "unknown operation 'updateVotersList'"


def test_vote_without_sender():
    assert _reason(line(sender="")) == "vote transaction without a senderPublicKey (the voter's key)"


def test_blindsigissue_without_data():
    params = _j([{"key": "operation", "stringValue": "blindSigIssue"}])
    assert _reason(line(params=params)) == "blindSigIssue transaction has no 'data' parameter holding a JSON array"


def test_blindsigissue_data_not_json():
    assert _reason(line(params=bsi_params("[{oops"))).startswith("blindSigIssue parameter 'data' is not valid JSON: ")


def test_blindsigissue_data_not_array():
    assert _reason(line(params=bsi_params('{"userId":"u1"}'))) == "blindSigIssue parameter 'data' must be a JSON array"


def test_add_voters_list_without_count_or_hashes():
    params = _j([{"key": "operation", "stringValue": "addVotersList"}])
    assert _reason(line(params=params)) == (
        "addVotersList transaction has no 'userIdHashes' parameter holding a JSON array"
    )


# --------------------------------------------------------------------------------------
# Hostile input: every problem is a LineError, never a crash
# --------------------------------------------------------------------------------------


def _deep_array(depth: int) -> str:
    return "[" * depth + "]" * depth


def _deep_object(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


@pytest.mark.parametrize("depth", [5_000, 1_000_000])
@pytest.mark.parametrize("shape", [_deep_array, _deep_object])
@pytest.mark.parametrize("field,index", [("params", 8), ("diff", 9), ("extra", 10)], ids=["params", "diff", "extra"])
def test_json_nested_too_deeply(shape, depth, field, index):
    deep = shape(depth)
    assert _reason(line(**{field: deep})) == (
        f"field {index} ({field}) is nested too deeply to read (JSON more than about 900 levels deep)"
    )


def test_csv_quoted_json_nested_too_deeply():
    quoted = '"' + _deep_array(5_000) + '"'  # no inner quotes to double
    assert _reason(line(params=quoted)) == (
        "field 8 (params) is nested too deeply to read (JSON more than about 900 levels deep)"
    )


@pytest.mark.parametrize("depth", [5_000, 1_000_000])
@pytest.mark.parametrize("shape", [_deep_array, _deep_object])
def test_json_string_parameter_nested_too_deeply(shape, depth):
    assert (
        _reason(line(params=bsi_params(shape(depth)))) == "blindSigIssue parameter 'data' is nested too deeply to read"
    )
    hashes = _j(
        [{"key": "operation", "stringValue": "addVotersList"}, {"key": "userIdHashes", "stringValue": shape(depth)}]
    )
    assert _reason(line(params=hashes)) == "addVotersList parameter 'userIdHashes' is nested too deeply to read"


def test_moderately_nested_json_is_still_read():
    # 500 levels inside a params value: well within what the decoder reads
    params = '[{"key":"operation","stringValue":"results"},{"key":"r","value":' + _deep_array(500) + "}]"
    assert parse_line(line(params=params)).operation == "results"


def test_json_number_with_too_many_digits():
    # json hands integers to int(), which refuses more than 4,300 digits with a plain ValueError
    params = '[{"key":"operation","stringValue":"results"},{"key":"r","intValue":' + "1" * 5_000 + "}]"
    assert _reason(line(params=params)) == "field 8 (params) holds a number with too many digits to read"
    assert _reason(line(params=bsi_params("[" + "7" * 5_000 + "]"))) == (
        "blindSigIssue parameter 'data' holds a number with too many digits to read"
    )


@pytest.mark.parametrize("where", ["tx_id", "sender", "params", "diff", "extra", "rollback", "version"])
def test_nul_character_anywhere(where):
    nul = "\x00"
    fields = {
        "tx_id": {"tx_id": "Tx" + nul},
        "sender": {"sender": KEY + nul},
        "params": {
            "params": '[{"key":"operation","stringValue":"vote' + nul + '"}]'
        },  # a raw NUL, not the \u0000 escape
        "diff": {"diff": "[]" + nul},
        "extra": {"extra": '{"contractVersion":1' + nul + "}"},
        "rollback": {"rollback": nul},
        "version": {"version": nul},
    }[where]
    assert _reason(line(**fields)) == "the line contains a NUL character (\\x00); an export line is text"


def test_nul_reason_comes_before_field_count():
    assert _reason("a\x00b") == "the line contains a NUL character (\\x00); an export line is text"
    assert _reason("\x00") == "the line contains a NUL character (\\x00); an export line is text"  # not blank


@pytest.mark.parametrize("name", ["vote", "VOTE", "startVoting", "results", "updateVotersList", " x "])
def test_type_103_can_only_be_create_contract(name):
    assert _reason(line(tx_type="103", operation=name)) == (
        f"a type-103 line creates the contract and can only be createContract; this one names {name!r}"
    )


def test_type_103_operation_name_is_cut_to_60_characters():
    long_name = "v" * 100
    assert _reason(line(tx_type="103", operation=long_name)) == (
        f"a type-103 line creates the contract and can only be createContract; this one names {'v' * 60!r}"
    )


@pytest.mark.parametrize("spelled", ["createContract", "CREATECONTRACT", " createcontract "])
def test_type_103_naming_create_contract_is_read(spelled):
    params = _j([{"key": "operation", "stringValue": spelled}])
    tx = parse_line(line(tx_type="103", params=params, extra=_j({"image": "i"})))
    assert tx.operation == "createContract"


def test_tx_id_length_limit():
    from election_pipeline.ingest.export_line import MAX_TX_ID_CHARS

    assert MAX_TX_ID_CHARS == 128  # transactions.tx_id is String(128)
    assert parse_line(line(tx_id=" " + "T" * 128 + " ")).tx_id == "T" * 128  # the limit counts after strip
    assert _reason(line(tx_id="T" * 129)) == "field 0 (nestedTxId) is longer than 128 characters"


def test_sender_length_limit():
    from election_pipeline.ingest.export_line import MAX_SENDER_CHARS

    assert MAX_SENDER_CHARS == 255  # transactions.sender is String(255)
    assert parse_line(line(sender="K" * 255)).sender == "K" * 255
    assert _reason(line(sender="K" * 256)) == "field 5 (senderPublicKey) is longer than 255 characters"


@pytest.mark.parametrize("version,expected", [("2147483647", 2147483647), ("-2147483648", -2147483648), ("0", 0)])
def test_version_in_32_bit_range(version, expected):
    assert parse_line(line(version=version)).version == expected


@pytest.mark.parametrize("version", ["2147483648", "-2147483649", "9" * 30])
def test_version_out_of_range(version):
    assert _reason(line(version=version)) == "field 3 (version) is out of range"


def _voters(count: Any) -> str:
    hashes = {"key": "userIdHashes", "stringValue": _j(["h1", "h2"])}
    value_key = "stringValue" if isinstance(count, str) else "intValue"
    return line(
        params=_j(
            [{"key": "operation", "stringValue": "addVotersList"}, {"key": "votersCount", value_key: count}, hashes]
        )
    )


@pytest.mark.parametrize(
    "count,expected",
    [
        (2147483647, 2147483647),
        ("2147483647", 2147483647),
        (-5, -5),  # a negative int is taken as it is (as before); only the 32-bit range is enforced
        (-2147483648, -2147483648),
        ("00012", 12),
        (" 12 ", 12),
        ("0" * 5_000 + "3", 3),  # leading zeros do not count toward int()'s digit limit
    ],
)
def test_voters_count_in_range(count, expected):
    assert parse_line(_voters(count)).voters_added == expected


@pytest.mark.parametrize("count", [2147483648, -3_000_000_000, "2147483648", "9" * 5_000])
def test_voters_count_out_of_range(count):
    assert _reason(_voters(count)) == "addVotersList parameter 'votersCount' is out of range"


@pytest.mark.parametrize("count", ["²", "١٢", "１２", "12a", "-5", ""])
def test_voters_count_not_ascii_digits_falls_back_to_hashes(count):
    # '²'.isdigit() is True but int('²') fails: only [0-9]+ is a count; the rest uses userIdHashes
    assert parse_line(_voters(count)).voters_added == 2


def test_unexpected_exception_becomes_a_line_error(monkeypatch):
    from election_pipeline.ingest import export_line

    def boom(entries):
        raise KeyError("x" * 1_000)

    monkeypatch.setattr(export_line, "_sanitize", boom)
    reason = _reason(line())
    assert reason.startswith("the line could not be read: KeyError: 'xxx")
    assert len(reason) == 300  # cut to 300 characters


HOSTILE_LINES = [
    "",
    ";" * 11,
    ";" * 50,
    "\x00" * 10,
    "\ud800;104",
    line(params="["),
    line(params="[" * 100_000),
    line(params='"' * 7),
    line(params='"[{""a"":1}'),
    line(params="1e999999"),
    line(params="-"),
    line(params="[NaN]"),
    line(params='[{"key":["operation"],"stringValue":"vote"}]'),
    line(params='[{"key":"operation","stringValue":["vote"]}]'),
    line(params='[{"key":"operation","stringValue":{"a":[1,2]}}]'),
    line(params='[{"key":"operation","stringValue":null}]'),
    line(params='[{"key":"operation","intValue":1e400}]'),
    line(params=bsi_params("1e400")),
    line(params=_j([{"key": "operation", "stringValue": "blindSigIssue"}, {"key": "data", "value": {"a": 1}}])),
    line(params=_j([{"key": "operation", "stringValue": "addVotersList"}, {"key": "votersCount", "value": [1]}])),
    line(params=_j([{"key": "operation", "stringValue": "addVotersList"}, {"key": "votersCount", "value": True}])),
    line(params=_j([{"key": "operation", "stringValue": "addVotersList"}, {"key": "votersCount", "value": 1.5}])),
    line(tx_type="1" * 10_000),
    line(ts="9" * 10_000),
    line(version="1" * 10_000),
    line(ts="1e12"),
    line(tx_type="１０４"),
    line(extra='"' + "x" * 10),
    line(diff='[{"key":' + _deep_object(2_000) + "}]"),
    line(rollback="-1" + ";" * 10),
    "Tx;104;S;4;" + "1" * 200_000,
]


@pytest.mark.parametrize("text", HOSTILE_LINES, ids=range(len(HOSTILE_LINES)))
def test_hostile_lines_raise_nothing_but_line_error(text):
    try:
        parse_line(text)
    except LineError as err:
        assert err.reason
        assert "\x00" not in err.reason


def test_every_prefix_and_byte_flip_of_a_line_raises_nothing_but_line_error():
    # a small deterministic fuzz: every prefix of a blindSigIssue line, and each position
    # replaced by a character that matters to the parser
    data = _j([{"userId": "u1", "maskedSig": "a;b"}])
    good = line(params=bsi_params(data), diff=_j([{"key": "FAIL_x", "stringValue": "y"}]))
    for cut in range(len(good) + 1):
        with contextlib.suppress(LineError):  # any other exception fails the test
            parse_line(good[:cut])
    for pos in range(len(good)):
        for ch in ('"', ";", "[", "{", "\\", "\x00", "9", "\ud800", "]"):
            with contextlib.suppress(LineError):
                parse_line(good[:pos] + ch + good[pos + 1 :])


# --------------------------------------------------------------------------------------
# JSON the operational database (PostgreSQL JSONB) cannot store
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400", "-1.5e999"])
def test_json_numbers_jsonb_cannot_hold(number):
    params = '[{"key":"operation","stringValue":"results"},{"key":"r","value":' + number + "}]"
    assert _reason(line(params=params)) == f"field 8 (params) holds a number that cannot be stored: {number!r}"
    assert _reason(line(extra='{"contractVersion":' + number + "}")) == (
        f"field 10 (extra) holds a number that cannot be stored: {number!r}"
    )
    quoted = '"[{""key"":""operation"",""stringValue"":""results""},{""key"":""r"",""value"":' + number + '}]"'
    assert _reason(line(params=quoted)).startswith("field 8 (params) holds a number that cannot be stored")


def test_ordinary_floats_are_read():
    params = '[{"key":"operation","stringValue":"results"},{"key":"r","value":1.5e300}]'
    assert parse_line(line(params=params)).raw_data["params"][1] == {"key": "r", "value": 1.5e300}


def test_nan_inside_a_json_string_parameter_is_only_counted():
    # the items of 'data' are counted, never stored: what they hold does not matter
    assert parse_line(line(params=bsi_params("[NaN, 1e400]"))).bulletins == 2


def test_escaped_nul_in_a_stored_json_string():
    diff = '[{"key":"VOTE_x","stringValue":"a\\u0000b"}]'
    assert _reason(line(diff=diff)) == (
        "field 9 (diff) holds a NUL character (\\u0000) in a JSON string; the database cannot store it"
    )
    params = '[{"key":"operation","stringValue":"results"},{"key\\u0000":"r"}]'  # in a key, too
    assert _reason(line(params=params)).startswith("field 8 (params) holds a NUL character")
    assert _reason(line(extra='{"a":["\\u0000"]}')).startswith("field 10 (extra) holds a NUL character")


def test_escaped_backslash_before_u0000_is_plain_text():
    diff = '[{"key":"VOTE_x","stringValue":"a\\\\u0000b"}]'  # the text a\u0000b, no NUL in it
    assert parse_line(line(diff=diff)).raw_data["diff"] == [{"key": "VOTE_x", "stringValue": "a\\u0000b"}]


@pytest.mark.parametrize("escape", ["\\ud800", "\\uDFFF", "\\ude00\\ud83d"])
def test_unpaired_surrogate_escape(escape):
    diff = '[{"key":"VOTE_x","stringValue":"a' + escape + 'b"}]'
    assert _reason(line(diff=diff)) == (
        "field 9 (diff) holds an unpaired UTF-16 surrogate (\\ud800-\\udfff) in a JSON string; "
        "the database cannot store it"
    )


def test_paired_surrogate_escape_is_read():
    diff = '[{"key":"VOTE_x","stringValue":"\\ud83d\\ude00"}]'  # one character, U+1F600
    assert parse_line(line(diff=diff)).raw_data["diff"][0]["stringValue"] == "\U0001f600"


def test_type_103_extra_keeps_only_key_names_so_only_they_are_checked():
    extra = '{"image":"a\\u0000b","imageHash":"ff"}'  # the NUL is in a value that is not kept
    tx = parse_line(line(tx_type="103", params="[]", extra=extra))
    assert tx.raw_data["extra"] == {"keys": ["image", "imageHash"]}
