"""Reader for the node's block dump (docs/input-format.md#block-dump).

A block dump is JSON Lines: one block a line, ``{"height", "timestamp", "transactions"}``.
A contract transaction is a type-105 transaction that wraps the contract's own transaction
in ``tx`` (type 103 create or 104 call) and carries the contract's state changes in
``results``. :func:`read_blocks` turns each such transaction into the official 12-field
export line it stands for (``tx.id;tx.type;proofs[0];tx.version;tx.timestamp;...``), so that
it is parsed and counted by exactly the rules of an export line, and yields it with the
block it came from. ``params``/``results`` entries are ``{key, type, value}`` with ``type``
one of ``string``, ``integer``, ``boolean``, ``binary``; they become the export's
``stringValue``/``intValue``/``boolValue``/``binaryValue`` entries. A binary value (an
encrypted ballot, a blind signature: several kilobytes) is not carried past this reader: no
figure uses it and neither store keeps it; the export line gets an empty ``binaryValue``.

The dump is read a line at a time: memory does not grow with its size. A line that cannot
be read (not JSON, not a block, a transaction missing a field, an entry of an unknown type)
is yielded as a :class:`DumpProblem` with its line number and the reason; the rest is read.
Transactions of other types than 105 (and type-105 transactions wrapping something other
than 103/104) are skipped and counted in the block's ``skipped``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import IO, Any

#: File names (lower case) read as a block dump.
BLOCK_DUMP_SUFFIXES = (".jsonl", ".jsonl.gz", ".json.gz")
#: Archive members read as a block dump.
BLOCK_DUMP_MEMBER_SUFFIXES = (".jsonl", ".json")
#: The transaction type that wraps a contract transaction.
CONTRACT_WRAPPER_TYPE = 105
#: Longest block line read (bytes); a longer one is rejected and skipped.
MAX_BLOCK_LINE_BYTES = 256 * 1024**2

_ENTRY_VALUE_KEYS = {"string": "stringValue", "integer": "intValue", "boolean": "boolValue", "binary": "binaryValue"}
_CONTRACT_ID = re.compile(r"^[A-Za-z0-9]+$")
_MAX_RAW_CHARS = 65_536
_MAX_REASON_CHARS = 300
# One encoder for every line (json.dumps with options builds a new one per call).
_encode = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=str).encode


def is_block_dump_name(name: str) -> bool:
    """Whether a file in the drop folder is a block dump, by its name."""
    return name.lower().endswith(BLOCK_DUMP_SUFFIXES)


def is_block_dump_member(name: str) -> bool:
    """Whether an archive member is (a chunk of) a block dump, by its name."""
    return name.lower().endswith(BLOCK_DUMP_MEMBER_SUFFIXES)


@dataclass(slots=True)
class DumpBlock:
    """One block line that could be read: its height, a digest of the line (two lines of one
    height with different digests are two different blocks), how many contract transactions
    it held and how many other transactions were skipped, by type."""

    source: str
    line_number: int
    height: int
    digest: str
    transactions: int
    skipped: Counter[str] = field(default_factory=Counter)


@dataclass(slots=True)
class DumpTransaction:
    """One contract transaction of a block, as the 12-field export line it stands for."""

    source: str
    line_number: int  # of the block line
    height: int
    index: int  # 1-based position in the block's transactions
    contract_id: str
    text: str


@dataclass(slots=True)
class DumpProblem:
    """A block line, or one transaction of it, that cannot be counted, and why."""

    source: str
    line_number: int
    reason: str
    raw: str


DumpItem = DumpBlock | DumpTransaction | DumpProblem


class _Refused(ValueError):
    """A transaction (or block) that cannot be read; ``str()`` is the reason."""


def _no_constant(name: str) -> Any:
    raise _Refused(f"the block line holds {name}, which is not a JSON number")


_decoder = json.JSONDecoder(parse_constant=_no_constant)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _entries(value: Any, what: str) -> list[dict[str, Any]]:
    """``{key, type, value}`` entries as the export's ``{key, <type>Value}`` entries."""
    if not isinstance(value, list):
        raise _Refused(f"'{what}' is not a JSON array of {{key, type, value}} entries")
    out: list[dict[str, Any]] = []
    for entry in value:
        if not isinstance(entry, dict):
            raise _Refused(f"an entry of '{what}' is not a JSON object")
        key = entry.get("key")
        if not isinstance(key, str):
            raise _Refused(f"an entry of '{what}' has no 'key' string")
        kind = entry.get("type")
        value_key = _ENTRY_VALUE_KEYS.get(kind) if isinstance(kind, str) else None
        if value_key is None:
            known = ", ".join(_ENTRY_VALUE_KEYS)
            raise _Refused(f"entry {key!r} of '{what}' has the unknown type {kind!r} (known: {known})")
        if "value" not in entry:
            raise _Refused(f"entry {key!r} of '{what}' has no 'value'")
        item = entry["value"]
        if kind == "binary":
            if not isinstance(item, str):
                raise _Refused(f"entry {key!r} of '{what}' is binary but its value is not a string")
            out.append({"key": key, "binaryValue": ""})
            continue
        out.append({"key": key, value_key: item})
    return out


def _head_field(value: Any, name: str) -> str:
    """A value of the export's first eight fields, as text (they never hold ``;``)."""
    text = "" if value is None else str(value)
    if ";" in text or "\n" in text or "\r" in text:
        raise _Refused(f"'{name}' holds a ';' or a line break")
    return text


def _required(tx: dict[str, Any], name: str) -> Any:
    if name not in tx or tx[name] is None:
        raise _Refused(f"the contract transaction has no '{name}'")
    return tx[name]


def export_line(wrapper: dict[str, Any]) -> tuple[str, str] | int | str:
    """The export line ``(contract_id, text)`` of a type-105 transaction, or the inner type
    (an int, or its text) when it wraps something other than a 103/104 contract transaction.

    Raises :class:`ValueError` with the reason when a field it needs is missing or malformed.
    """
    inner = wrapper.get("tx")
    if not isinstance(inner, dict):
        raise _Refused("the type-105 transaction has no 'tx' object (the contract transaction)")
    tx_type = _required(inner, "type")
    if tx_type not in (103, 104) or not _whole(tx_type):
        return tx_type if _whole(tx_type) else str(tx_type)
    tx_id = _required(inner, "id")
    if not isinstance(tx_id, str) or not tx_id:
        raise _Refused("the contract transaction's 'id' is not a non-empty string")
    ts = _required(inner, "timestamp")
    if not _whole(ts):
        raise _Refused(f"the contract transaction's 'timestamp' is not a whole number of milliseconds ({ts!r})")
    sender = _required(inner, "senderPublicKey")
    if not isinstance(sender, str):
        raise _Refused("the contract transaction's 'senderPublicKey' is not a string")
    params = _entries(_required(inner, "params"), "params")
    if "results" not in wrapper:
        raise _Refused("the type-105 transaction has no 'results' (the contract's state changes)")
    diff = _entries(wrapper["results"] if wrapper["results"] is not None else [], "results")
    if tx_type == 104:
        contract_id = _required(inner, "contractId")
        extra: dict[str, Any] = {}
        if inner.get("contractVersion") is not None:
            extra["contractVersion"] = inner["contractVersion"]
    else:
        contract_id = tx_id
        extra = {k: inner[k] for k in ("image", "imageHash", "contractName") if inner.get(k) is not None}
    if not isinstance(contract_id, str) or not _CONTRACT_ID.match(contract_id):
        raise _Refused(f"the contract id {str(contract_id)[:80]!r} is not a base58 id")
    version = inner.get("version")
    if version is not None and not _whole(version):
        raise _Refused(f"the contract transaction's 'version' is not a whole number ({version!r})")
    proofs = inner.get("proofs")
    signature = proofs[0] if isinstance(proofs, list) and proofs and isinstance(proofs[0], str) else ""
    fields = (
        _head_field(tx_id, "id"),
        str(tx_type),
        "" if ";" in signature or "\n" in signature else signature,
        "" if version is None else str(version),
        str(ts),
        _head_field(sender, "senderPublicKey"),
        _head_field(inner.get("fee"), "fee"),
        _head_field(inner.get("feeAssetId"), "feeAssetId"),
        _encode(params),
        _encode(diff),
        _encode(extra) if extra else "",
        "",
    )
    return contract_id, ";".join(fields)


def _problem(source: str, number: int, reason: str, raw: str) -> DumpProblem:
    return DumpProblem(source, number, reason[:_MAX_REASON_CHARS], raw[:_MAX_RAW_CHARS].replace("\x00", "\\x00"))


def _block(source: str, number: int, line: bytes) -> Iterator[DumpItem]:
    """The items of one block line (without its line end)."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        yield _problem(source, number, "the block line is not valid UTF-8", line.decode("utf-8", "backslashreplace"))
        return
    if not text.strip():
        return
    try:
        block = _decoder.decode(text)
    except (ValueError, RecursionError) as err:
        reason = err.msg if isinstance(err, json.JSONDecodeError) else str(err) or type(err).__name__
        yield _problem(source, number, f"the block line is not JSON: {reason}", text)
        return
    if not isinstance(block, dict):
        yield _problem(source, number, "the block line is not a JSON object", text)
        return
    missing = [k for k in ("height", "timestamp", "transactions") if k not in block]
    if missing:
        yield _problem(source, number, f"the block has no {', '.join(repr(k) for k in missing)}", text)
        return
    height: int = block["height"]
    if not _whole(height) or height < 0:
        yield _problem(source, number, f"the block's 'height' is not a whole number >= 0 ({height!r})", text)
        return
    transactions = block["transactions"]
    if not isinstance(transactions, list):
        yield _problem(source, number, f"block {height}: 'transactions' is not a JSON array", text)
        return
    found = DumpBlock(source, number, height, hashlib.blake2b(line, digest_size=16).hexdigest(), 0)
    for index, wrapper in enumerate(transactions, start=1):
        if not isinstance(wrapper, dict):
            yield _problem(source, number, f"block {height}, transaction {index}: not a JSON object", str(wrapper))
            continue
        if wrapper.get("type") != CONTRACT_WRAPPER_TYPE:
            found.skipped[str(wrapper.get("type"))] += 1
            continue
        try:
            result = export_line(wrapper)
        except (_Refused, ValueError, TypeError, RecursionError) as err:
            tx = wrapper.get("tx")
            named = f" ({tx['id']})" if isinstance(tx, dict) and isinstance(tx.get("id"), str) else ""
            raw = _encode(wrapper)
            yield _problem(source, number, f"block {height}, transaction {index}{named[:100]}: {err}", raw)
            continue
        if not isinstance(result, tuple):
            found.skipped[f"105/{result}"] += 1
            continue
        found.transactions += 1
        yield DumpTransaction(source, number, height, index, result[0], result[1])
    yield found


def read_blocks(stream: IO[bytes], source: str) -> Iterator[DumpItem]:
    """Every item of a block dump read from ``stream``, a line at a time: per block line, its
    transactions and problems, then the :class:`DumpBlock` itself."""
    number = 0
    while True:
        line = stream.readline(MAX_BLOCK_LINE_BYTES)
        if not line:
            return
        number += 1
        if len(line) >= MAX_BLOCK_LINE_BYTES and not line.endswith(b"\n"):
            head = line[:200].decode("utf-8", "backslashreplace")
            while line and not line.endswith(b"\n"):  # skip the rest of the line
                line = stream.readline(MAX_BLOCK_LINE_BYTES)
            yield _problem(
                source, number, f"the block line is longer than {MAX_BLOCK_LINE_BYTES:,} bytes; it was skipped", head
            )
            continue
        if number == 1 and line.startswith(b"\xef\xbb\xbf"):
            line = line[3:]
        yield from _block(source, number, line.rstrip(b"\r\n"))
