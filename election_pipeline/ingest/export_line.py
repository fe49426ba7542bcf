"""Parser for one line of the official 12-field transaction export (docs/input-format.md#export-line).

A line is ``nestedTxId;type;signature;version;ts;senderPublicKey;fee;feeAssetId;params;diff;extra;rollback``.
The first eight fields never contain ``;``. ``params``, ``diff`` and ``extra`` are JSON whose
strings may contain ``;``, so they are decoded as JSON values one after the other instead of
splitting on every separator.

:func:`parse_line` returns a :class:`ParsedTransaction` (ballot blobs already dropped) or
raises :class:`LineError` with a reason a person can act on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from election_pipeline.vocabulary import Operation

#: Canonical spelling of every operation the contract knows, keyed by its lower-case form.
KNOWN_OPERATIONS: dict[str, str] = {op.value.lower(): op.value for op in Operation}

# Timestamps outside these bounds are almost surely seconds (or microseconds) instead of ms.
_MIN_TS_MS = 946_684_800_000  # 2000-01-01T00:00:00Z
_MAX_TS_MS = 4_102_444_800_000  # 2100-01-01T00:00:00Z
_EPOCH = datetime(1970, 1, 1)
_LONG_STRING = 2_000

#: Longest ``nestedTxId`` the operational database holds (``transactions.tx_id``).
MAX_TX_ID_CHARS = 128
#: Longest ``senderPublicKey`` the operational database holds (``transactions.sender``).
MAX_SENDER_CHARS = 255
# The raw store keeps version and voter counts as 32-bit INTEGER.
_INT32_MIN = -(2**31)
_INT32_MAX = 2**31 - 1
_INT32_MAX_DIGITS = len(str(_INT32_MAX))
_ASCII_DIGITS = re.compile(r"[0-9]+")
_MAX_REASON_CHARS = 300
_SURROGATE = re.compile("[\ud800-\udfff]")
_STORE_ESCAPE = re.compile(r"\\u(?:0000|[dD][89abcdefABCDEF])")


class _Unstorable(ValueError):
    """A JSON number PostgreSQL's JSONB cannot hold (NaN, Infinity, or one that overflows to it)."""


def _no_constant(name: str) -> Any:
    raise _Unstorable(name)


def _finite_float(text: str) -> float:
    value = float(text)
    if math.isinf(value):  # 1e400 is read as Infinity
        raise _Unstorable(text)
    return value


# The JSON fields are read as Python's json module reads them, but NaN, Infinity and numbers
# that overflow to an infinity are refused: the line is then rejected with its reason (the
# DuckDB reader of analytics/line_sql.py leaves such lines to this parser).
_decoder = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite_float)


class LineError(ValueError):
    """A line that cannot be counted. ``reason`` says why, in words for the analyst."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(slots=True)
class ParsedTransaction:
    """One export line, reduced to what the pipeline counts and keeps.

    ``timestamp`` is a naive ``datetime`` in UTC. ``raw_data`` holds the parsed fields of the
    line (with binary values, encrypted ballots and blind signatures, replaced by their size):
    the ingest takes the fee, fee asset and ``FAIL`` key from it. What the operational
    ``transactions.raw_data`` keeps is decided by the publish step (docs/data-model.md).
    """

    tx_id: str
    tx_type: int
    version: int | None
    ts_ms: int
    timestamp: datetime
    sender: str
    operation: str
    rejected: bool
    is_rollback: bool
    bulletins: int
    voters_added: int | None
    raw_data: dict[str, Any] = field(default_factory=dict)

    @property
    def counts_as_vote(self) -> bool:
        return self.operation == "vote" and not self.rejected and not self.is_rollback


def ms_to_utc(ts_ms: int) -> datetime:
    """Epoch milliseconds to a naive UTC datetime (exact, no float rounding)."""
    return _EPOCH + timedelta(milliseconds=ts_ms)


def utc_to_ms(moment: datetime) -> int:
    """Naive-UTC or aware datetime to epoch milliseconds."""
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


def _split_head(line: str) -> tuple[list[str], str]:
    parts = line.split(";", 8)
    if len(parts) < 9:
        raise LineError(
            f"expected 12 fields separated by ';', found {len(parts)} (the line ends before the params field)"
        )
    return parts[:8], parts[8]


def _take_json(text: str, pos: int, name: str, index: int) -> tuple[Any, int]:
    """Decode the JSON value of field ``name`` starting at ``pos``; return it and the next position."""
    if pos >= len(text) or text[pos] == ";":
        return None, pos  # empty field
    if text[pos] == '"' and index >= 8:
        # A CSV-quoted JSON field: "[{""key"": ...}]". Unquote it, then decode.
        end = pos + 1
        chunks: list[str] = []
        while True:
            q = text.find('"', end)
            if q < 0:
                raise LineError(f"field {index} ({name}) has an unterminated quote")
            chunks.append(text[end:q])
            if q + 1 < len(text) and text[q + 1] == '"':
                chunks.append('"')
                end = q + 2
                continue
            inner = "".join(chunks)
            try:
                return _decoder.decode(inner), q + 1
            except json.JSONDecodeError as exc:
                raise LineError(f"field {index} ({name}) is not valid JSON: {exc.msg}") from exc
            except (RecursionError, ValueError) as exc:
                raise _undecodable(exc, f"field {index} ({name})") from exc
    try:
        value, end = _decoder.raw_decode(text, pos)
    except json.JSONDecodeError as exc:
        raise LineError(f"field {index} ({name}) is not valid JSON: {exc.msg} at character {exc.pos - pos}") from exc
    except (RecursionError, ValueError) as exc:
        raise _undecodable(exc, f"field {index} ({name})") from exc
    return value, end


def _undecodable(exc: RecursionError | ValueError, where: str) -> LineError:
    """The reason for JSON that is well-formed but cannot be decoded (``where`` names the field)."""
    if isinstance(exc, RecursionError):
        return LineError(f"{where} is nested too deeply to read (JSON more than about 900 levels deep)")
    if isinstance(exc, _Unstorable):
        return LineError(f"{where} holds a number that cannot be stored: {str(exc)[:40]!r}")
    # json raises a plain ValueError for an integer longer than int() accepts (4,300 digits).
    return LineError(f"{where} holds a number with too many digits to read")


def _expect_separator(text: str, pos: int, after: str) -> int:
    if pos >= len(text):
        raise LineError(f"expected 12 fields separated by ';', the line ends after {after}")
    if text[pos] != ";":
        raise LineError(f"unexpected text after {after}: {text[pos : pos + 20]!r}")
    return pos + 1


def _entries(value: Any, name: str, index: int) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(e, dict) for e in value):
        raise LineError(f"field {index} ({name}) must be a JSON array of {{key, value}} objects")
    return value


def _entry_value(entry: dict[str, Any]) -> Any:
    for key in ("stringValue", "intValue", "boolValue", "binaryValue", "value"):
        if key in entry:
            return entry[key]
    return None


def _sanitize(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Drop ballot-sized values: binary values become their length, long strings a prefix."""
    out: list[dict[str, Any]] = []
    for entry in entries:
        clean: dict[str, Any] = {}
        for k, v in entry.items():
            if k == "binaryValue" and isinstance(v, str):
                clean["binaryValueLength"] = len(v)
            elif isinstance(v, str) and len(v) > _LONG_STRING:
                clean[k] = v[:200] + f"... [{len(v)} characters]"
            else:
                clean[k] = v
        out.append(clean)
    return out


def _json_array_param(params: dict[str, Any], key: str, operation: str) -> list[Any]:
    raw = params.get(key)
    if isinstance(raw, list):
        return raw
    if not isinstance(raw, str):
        raise LineError(f"{operation} transaction has no '{key}' parameter holding a JSON array")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise LineError(f"{operation} parameter '{key}' is not valid JSON: {exc.msg}") from exc
    except RecursionError as exc:
        raise LineError(f"{operation} parameter '{key}' is nested too deeply to read") from exc
    except ValueError as exc:
        raise LineError(f"{operation} parameter '{key}' holds a number with too many digits to read") from exc
    if not isinstance(value, list):
        raise LineError(f"{operation} parameter '{key}' must be a JSON array")
    return value


def _check_storable(value: Any, name: str, index: int) -> None:
    """Refuse strings PostgreSQL cannot store in JSONB: a NUL (``\\u0000``) or an unpaired surrogate."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, str):
            if "\x00" in item:
                raise LineError(
                    f"field {index} ({name}) holds a NUL character (\\u0000) in a JSON string; "
                    "the database cannot store it"
                )
            if not item.isascii() and _SURROGATE.search(item):
                raise LineError(
                    f"field {index} ({name}) holds an unpaired UTF-16 surrogate (\\ud800-\\udfff) in a JSON "
                    "string; the database cannot store it"
                )


def _voters_count(count: Any) -> int | None:
    """``votersCount`` as a number: an int, or a string of ASCII digits; None when it is neither."""
    if isinstance(count, int) and not isinstance(count, bool):
        value = count
    elif isinstance(count, str) and _ASCII_DIGITS.fullmatch(count.strip()):
        digits = count.strip().lstrip("0") or "0"
        if len(digits) > _INT32_MAX_DIGITS:  # also keeps int() clear of its 4,300-digit limit
            raise LineError("addVotersList parameter 'votersCount' is out of range")
        value = int(digits)
    else:
        return None
    if not _INT32_MIN <= value <= _INT32_MAX:
        raise LineError("addVotersList parameter 'votersCount' is out of range")
    return value


#: A whole number as the export writes one: ASCII digits, perhaps a minus sign (what ``int()``
#: also reads, such as ``+104``, ``1_04`` or digits of other scripts, is not an export's number).
_WHOLE_NUMBER = re.compile(r"-?[0-9]{1,30}")


def _whole_number(raw: str, reason: str) -> int:
    """``raw`` (surrounding whitespace ignored) as an int; :class:`LineError` with ``reason`` if
    it is not written as a whole number."""
    text = raw.strip()
    if not _WHOLE_NUMBER.fullmatch(text):
        raise LineError(reason)
    return int(text)


def parse_line(line: str) -> ParsedTransaction:
    """Parse one export line (without its line ending).

    Raises :class:`LineError` for wrong field counts, bad JSON, a non-numeric or implausible
    ``ts``, an unknown transaction type or operation, or a malformed bulletin list, and for
    anything else that keeps the line from being read: whatever the input, nothing but
    :class:`LineError` comes out.
    """
    try:
        return _parse(line)
    except LineError:
        raise
    except Exception as exc:  # hostile input must end as a rejected line, never as a crash
        reason = f"the line could not be read: {type(exc).__name__}: {exc}"
        raise LineError(reason.replace("\x00", "\\x00")[:_MAX_REASON_CHARS]) from exc


def _parse(line: str) -> ParsedTransaction:
    if not line.strip():
        raise LineError("empty line")
    if "\x00" in line:
        raise LineError("the line contains a NUL character (\\x00); an export line is text")
    head, rest = _split_head(line)
    tx_id, type_raw, _signature, version_raw, ts_raw, sender, _fee, _fee_asset = head

    tx_id = tx_id.strip()
    if not tx_id:
        raise LineError("field 0 (nestedTxId) is empty")
    if len(tx_id) > MAX_TX_ID_CHARS:
        raise LineError(f"field 0 (nestedTxId) is longer than {MAX_TX_ID_CHARS} characters")
    tx_type = _whole_number(type_raw, f"field 1 (type) is not a number: {type_raw[:40]!r}")
    if tx_type not in (103, 104):
        raise LineError(f"field 1 (type) is {tx_type}; only 103 (create) and 104 (call) are known")
    ts_ms = _whole_number(ts_raw, f"field 4 (ts) is not an integer epoch-milliseconds timestamp: {ts_raw[:40]!r}")
    if not _MIN_TS_MS <= ts_ms < _MAX_TS_MS:
        raise LineError(
            f"field 4 (ts) = {ts_ms} is not a plausible epoch-milliseconds timestamp "
            "(outside 2000-2100; seconds instead of milliseconds?)"
        )
    version: int | None
    version = (
        _whole_number(version_raw, f"field 3 (version) is not a number: {version_raw[:40]!r}")
        if version_raw.strip()
        else None
    )
    if version is not None and not _INT32_MIN <= version <= _INT32_MAX:
        raise LineError("field 3 (version) is out of range")
    if len(sender) > MAX_SENDER_CHARS:
        raise LineError(f"field 5 (senderPublicKey) is longer than {MAX_SENDER_CHARS} characters")

    params_value, pos = _take_json(rest, 0, "params", 8)
    pos = _expect_separator(rest, pos, "field 8 (params)")
    diff_value, pos = _take_json(rest, pos, "diff", 9)
    pos = _expect_separator(rest, pos, "field 9 (diff)")
    extra_value, pos = _take_json(rest, pos, "extra", 10)
    pos = _expect_separator(rest, pos, "field 10 (extra)")
    rollback_raw = rest[pos:].strip()
    if ";" in rollback_raw:
        found = 12 + rollback_raw.count(";")
        raise LineError(f"expected 12 fields separated by ';', found {found}")
    if rollback_raw not in ("", "-1"):
        raise LineError(f"field 11 (rollback) must be empty or -1, got {rollback_raw[:40]!r}")
    if extra_value is not None and not isinstance(extra_value, dict):
        raise LineError("field 10 (extra) must be a JSON object")

    param_entries = _entries(params_value, "params", 8)
    diff_entries = _entries(diff_value, "diff", 9)
    params = {str(e.get("key")): _entry_value(e) for e in param_entries if "key" in e}

    op_raw = params.get("operation")
    if op_raw is None:
        if tx_type != 103:
            raise LineError("call transaction (type 104) has no 'operation' parameter")
        operation = Operation.CREATE_CONTRACT.value
    else:
        operation = KNOWN_OPERATIONS.get(str(op_raw).strip().lower(), "")
        if tx_type == 103 and operation != Operation.CREATE_CONTRACT:
            raise LineError(
                "a type-103 line creates the contract and can only be createContract; "
                f"this one names {str(op_raw)[:60]!r}"
            )
        if not operation:
            raise LineError(f"unknown operation {str(op_raw)[:60]!r}")

    if operation == "vote" and not sender.strip():
        raise LineError("vote transaction without a senderPublicKey (the voter's key)")

    rejected = any(str(e.get("key", "")).startswith("FAIL") for e in diff_entries)

    bulletins = 0
    voters_added: int | None = None
    if operation == "blindSigIssue":
        bulletins = len(_json_array_param(params, "data", operation))
    elif operation == "addVotersList":
        voters_added = _voters_count(params.get("votersCount"))
        if voters_added is None:
            voters_added = len(_json_array_param(params, "userIdHashes", operation))

    raw_data: dict[str, Any] = {
        "type": tx_type,
        "version": version,
        "ts": ts_ms,
        "senderPublicKey": sender,
        "fee": _fee,
        "feeAssetId": _fee_asset,
        "params": _sanitize(param_entries),
        "diff": _sanitize(diff_entries),
        "extra": extra_value if tx_type == 104 else ({"keys": sorted(extra_value)} if extra_value else None),
        "rollback": rollback_raw == "-1",
    }
    if "\\" in rest and _STORE_ESCAPE.search(rest):  # only these escapes decode to what JSONB refuses
        _check_storable(raw_data["params"], "params", 8)
        _check_storable(raw_data["diff"], "diff", 9)
        _check_storable(raw_data["extra"], "extra", 10)
    return ParsedTransaction(
        tx_id=tx_id,
        tx_type=tx_type,
        version=version,
        ts_ms=ts_ms,
        timestamp=ms_to_utc(ts_ms),
        sender=sender,
        operation=operation,
        rejected=rejected,
        is_rollback=rollback_raw == "-1",
        bulletins=bulletins,
        voters_added=voters_added,
        raw_data=raw_data,
    )
