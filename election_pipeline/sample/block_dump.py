"""Writing the node's raw **block dump** from export lines (docs/input-format.md#other-sources).

A block dump is JSON Lines, one block per line, compact JSON, ``\\n`` line ends::

    {"height": 1, "timestamp": <ms>, "signature": "<base58>", "reference": "<previous signature>",
     "transactions": [ ... ]}

Each contract transaction of the export (type 103 or 104) is wrapped in a type-105
transaction, the way the node records an executed contract call::

    {"type": 105, "id": "<44 base58>", "version": 1, "timestamp": <ms>, "sender": "<node address>",
     "senderPublicKey": "<node key>", "fee": 0, "tx": <the export's transaction>, "results": <its diff>}

``params`` and ``diff`` entries are rewritten the node's way: ``{"key": k, "stringValue": v}``
becomes ``{"key": k, "type": "string", "value": v}`` (``integer``, ``boolean``; a binary value
becomes ``"base64:" + v``).

What a chain never holds is left out: rollback lines (``-1``) and the transactions they
cancel. A cancelled transaction counts nowhere, so the figures of a dump are those of the
export it was written from.

The writer is used by tests and by ``benchmarks/block_dump.py``:

* :func:`export_line_to_dump_tx` converts one export line;
* :class:`BlockDumpWriter` writes transactions (already converted) block by block;
* :func:`write_block_dump` writes the dump of a stream of export lines;
* :func:`dump_from_sample_folder` writes the dump of a folder written by
  :func:`election_pipeline.sample.generator.generate_sample`.

Everything is deterministic: the ids and signatures the writer makes up are derived from
``seed`` and the transactions, so the same input always gives the same bytes.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol

from election_pipeline.ingest.export_files import FileRefused, iter_export_lines
from election_pipeline.ingest.export_line import LineError, parse_line

__all__ = [
    "REFERENCE_FILES",
    "BlockDumpWriter",
    "Compression",
    "DumpWritten",
    "SampleDumpWritten",
    "SkippedLine",
    "compression_for",
    "convert_entries",
    "dump_from_sample_folder",
    "export_line_to_dump_tx",
    "wrap_contract_tx",
    "write_block_dump",
]

#: How the dump file is packed: plain JSON Lines, gzip, or a zip archive holding one ``.jsonl``.
Compression = Literal["none", "gzip", "zip"]

#: Files of a sample folder that are reference data, not exports.
REFERENCE_FILES = frozenset({"elections.csv", "constituencies.csv", "ground_truth.json"})

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_ENTRY_TYPES = (
    ("stringValue", "string"),
    ("intValue", "integer"),
    ("boolValue", "boolean"),
    ("binaryValue", "binary"),
)
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed member time: the same input gives the same bytes
_decoder = json.JSONDecoder()


class _Sink(Protocol):
    """Where the dump's bytes go: the file, or a gzip or zip-member stream over it."""

    def write(self, data: bytes, /) -> int: ...


# --------------------------------------------------------------------------------------
# Results
# --------------------------------------------------------------------------------------


@dataclass(slots=True)
class DumpWritten:
    """What a dump holds.

    ``transactions`` counts the contract transactions (type 105 wrappers);
    ``other_transactions`` the other types (transfers) added around them. ``first_height`` and
    ``last_height`` bound the heights written (``last_height < first_height`` when no block
    was written). ``rollback_lines`` rollback lines were left out and, with them,
    ``cancelled`` transactions; ``duplicates`` repeated transaction ids were dropped.
    """

    path: Path
    blocks: int = 0
    transactions: int = 0
    other_transactions: int = 0
    first_height: int = 1
    last_height: int = 0
    rollback_lines: int = 0
    cancelled: int = 0
    duplicates: int = 0

    @property
    def heights(self) -> range:
        """The block heights written, ``range(first_height, last_height + 1)``."""
        return range(self.first_height, self.last_height + 1)


@dataclass(slots=True)
class SkippedLine:
    """A line of a sample folder left out of the dump: where it was (``source`` names the file,
    and for archives the member, ``archive.zip::member.csv``), and why."""

    source: str
    line_number: int
    reason: str


@dataclass(slots=True)
class SampleDumpWritten:
    """What :func:`dump_from_sample_folder` read and wrote.

    ``lines_read`` counts every non-blank line of the export files; of those, ``duplicates``
    repeated a transaction already read, ``rollback_lines`` were rollbacks, ``cancelled``
    transactions were cancelled by them and ``skipped`` lines could not be converted.
    ``transactions`` were written (= ``dump.transactions``). ``skipped_files`` lists files
    that could not be read at all, with the reason.
    """

    dump: DumpWritten
    files: int = 0
    lines_read: int = 0
    transactions: int = 0
    duplicates: int = 0
    rollback_lines: int = 0
    cancelled: int = 0
    skipped: list[SkippedLine] = field(default_factory=list)
    skipped_files: list[tuple[str, str]] = field(default_factory=list)

    @property
    def skipped_reasons(self) -> dict[str, int]:
        """How many lines were skipped for each reason."""
        out: dict[str, int] = {}
        for line in self.skipped:
            out[line.reason] = out.get(line.reason, 0) + 1
        return out


# --------------------------------------------------------------------------------------
# One line
# --------------------------------------------------------------------------------------


def convert_entries(entries: Any, field_name: str) -> list[dict[str, Any]]:
    """Export entries (``{"key", "stringValue" | "intValue" | "boolValue" | "binaryValue"}``)
    as the node writes them (``{"key", "type", "value"}``).

    ``None`` (an empty field) gives ``[]``. Raises ``ValueError`` naming ``field_name`` for
    anything that is not a list of such entries."""
    if entries is None:
        return []
    if not isinstance(entries, list):
        raise ValueError(f"{field_name} must be a JSON array of entries")
    out: list[dict[str, Any]] = []
    for number, entry in enumerate(entries, start=1):
        if not isinstance(entry, dict) or "key" not in entry:
            raise ValueError(f"{field_name} entry {number} is not an object with a 'key'")
        out.append(_convert_entry(entry, field_name, number))
    return out


def _convert_entry(entry: dict[str, Any], field_name: str, number: int) -> dict[str, Any]:
    for export_key, node_type in _ENTRY_TYPES:
        if export_key in entry:
            value = entry[export_key]
            if node_type == "binary":
                if not isinstance(value, str):
                    raise ValueError(
                        f"{field_name} entry {number} ({entry['key']!r}) has a binaryValue that is not text"
                    )
                if not value.startswith("base64:"):
                    value = "base64:" + value
            return {"key": entry["key"], "type": node_type, "value": value}
    raise ValueError(
        f"{field_name} entry {number} ({entry['key']!r}) has no stringValue, intValue, boolValue or binaryValue"
    )


def _take_json(text: str, pos: int, name: str) -> tuple[Any, int]:
    """The JSON value of field ``name`` at ``pos`` (``None`` when the field is empty), and the
    position just after it, which must be a ``;``."""
    if pos < len(text) and text[pos] != ";":
        if text[pos] == '"':  # a CSV-quoted JSON field: "[{""key"": ...}]"
            end = pos + 1
            while True:
                q = text.find('"', end)
                if q < 0:
                    raise ValueError(f"field {name} has an unterminated quote")
                if text.startswith('""', q):
                    end = q + 2
                    continue
                value = json.loads(text[pos + 1 : q].replace('""', '"'))
                pos = q + 1
                break
        else:
            value, pos = _decoder.raw_decode(text, pos)
    else:
        value = None
    if pos >= len(text) or text[pos] != ";":
        raise ValueError(f"field {name} is not followed by ';'")
    return value, pos + 1


def _split_line(line: str) -> tuple[list[str], Any, Any, Any]:
    """The eight head fields (which never contain ``;``) and the decoded params, diff and
    extra (JSON values, which may contain ``;``, decoded one after the other)."""
    parts = line.split(";", 8)
    if len(parts) < 9:
        raise ValueError(f"expected 12 fields separated by ';', found {len(parts)}")
    rest = parts[8]
    params, pos = _take_json(rest, 0, "8 (params)")
    diff, pos = _take_json(rest, pos, "9 (diff)")
    extra, _ = _take_json(rest, pos, "10 (extra)")
    return parts[:8], params, diff, extra


def _fee(text: str) -> int | str:
    stripped = text.strip()
    return int(stripped) if stripped.isascii() and stripped.isdigit() else text


def export_line_to_dump_tx(contract_id: str, line: str, *, seed: int = 0) -> dict[str, Any]:
    """The type-105 transaction of the node's block dump for one export line of contract
    ``contract_id`` (the line without its line end). ``seed`` chooses the node (sender of
    the wrapper) and the wrapper's made-up id.

    The line is first read by the pipeline's own parser (:func:`parse_line`), so a line the
    pipeline would reject is refused here too, with the parser's reason. Raises
    ``ValueError`` with the reason for a line that cannot be converted, a rollback line
    included (a chain holds no rollback: leave out the line and the transaction it cancels),
    and for a type-103 line whose id is not ``contract_id`` (on the chain, the creating
    transaction's id is the contract id).
    """
    line = line.rstrip("\r\n")
    try:
        parsed = parse_line(line)
    except LineError as exc:
        raise ValueError(f"the pipeline rejects this line: {exc.reason}") from exc
    if parsed.is_rollback:
        raise ValueError(
            f"a rollback line (-1) of {parsed.tx_id} is not a transaction and has no place in a block dump"
        )
    try:
        head, params, diff, extra = _split_line(line)
    except (ValueError, RecursionError) as exc:  # parse_line accepted it, so this is unexpected
        raise ValueError(f"the line cannot be split into its fields: {exc}") from exc
    _tx_id, _type, signature, _version, _ts, sender, fee, fee_asset = head
    extra = extra or {}
    inner: dict[str, Any] = {
        "type": parsed.tx_type,
        "id": parsed.tx_id,
        "version": parsed.version,
        "timestamp": parsed.ts_ms,
        "senderPublicKey": sender,
        "fee": _fee(fee),
        "feeAssetId": fee_asset if fee_asset.strip() else None,
        "params": convert_entries(params, "field 8 (params)"),
        "proofs": [signature] if signature else [],
    }
    if parsed.tx_type == 104:
        inner["contractId"] = contract_id
        inner["contractVersion"] = extra.get("contractVersion", 1)
    else:
        if parsed.tx_id != contract_id:
            raise ValueError(
                f"a type-103 line creates contract {parsed.tx_id}, but its file names contract {contract_id}"
            )
        inner["image"] = extra.get("image", "")
        inner["imageHash"] = extra.get("imageHash", "")
        inner["contractName"] = extra.get("contractName", "")
    return wrap_contract_tx(inner, convert_entries(diff, "field 9 (diff)"), seed=seed)


# --------------------------------------------------------------------------------------
# Made-up ids (deterministic)
# --------------------------------------------------------------------------------------


def _b58(text: str, length: int) -> str:
    """``length`` base58 characters derived from ``text`` (the same text, the same string)."""
    out: list[str] = []
    counter = 0
    while len(out) < length:
        digest = hashlib.sha512(f"{counter}:{text}".encode()).digest()
        out.extend(_B58[b % 58] for b in digest)
        counter += 1
    return "".join(out[:length])


@dataclass(frozen=True, slots=True)
class _Node:
    """The node that executed the contract calls (the sender of every type-105 wrapper)."""

    address: str
    public_key: str

    @classmethod
    def of(cls, seed: int) -> _Node:
        return cls("3N" + _b58(f"node-address:{seed}", 33), _b58(f"node-key:{seed}", 44))


def wrap_contract_tx(
    inner: dict[str, Any], results: list[dict[str, Any]], *, seed: int = 0, wrapper_id: str | None = None
) -> dict[str, Any]:
    """The type-105 wrapper of a contract transaction ``inner`` (type 103 or 104, in the
    node's shape) with its ``results``. The wrapper's id is derived from ``seed`` and the
    inner id unless given."""
    node = _Node.of(seed)
    return {
        "type": 105,
        "id": wrapper_id or _b58(f"executed:{seed}:{inner['id']}", 44),
        "version": 1,
        "timestamp": inner["timestamp"],
        "sender": node.address,
        "senderPublicKey": node.public_key,
        "fee": 0,
        "tx": inner,
        "results": results,
    }


# --------------------------------------------------------------------------------------
# Writing blocks
# --------------------------------------------------------------------------------------


def compression_for(path: Path) -> Compression:
    """The packing a file name calls for: ``.jsonl`` plain, ``.jsonl.gz`` / ``.json.gz``
    gzip, ``.zip`` a zip archive. ``ValueError`` for any other name."""
    name = path.name.lower()
    if name.endswith(".jsonl"):
        return "none"
    if name.endswith((".jsonl.gz", ".json.gz")):
        return "gzip"
    if name.endswith(".zip"):
        return "zip"
    raise ValueError(f"{path.name}: a block dump is named *.jsonl, *.jsonl.gz, *.json.gz or *.zip")


def _sort_key(tx: dict[str, Any]) -> tuple[int, str]:
    """Transactions are ordered by time, then by id (the inner id for a contract transaction)."""
    inner = tx.get("tx")
    tx_id = inner["id"] if isinstance(inner, dict) else tx["id"]
    return int(tx["timestamp"]), str(tx_id)


class BlockDumpWriter:
    """Writes a block dump block by block, holding one block in memory at a time.

    Give it transactions in time order (timestamp, then id) with :meth:`add`; each block
    takes ``transactions_per_block`` contract transactions, ordered by timestamp then id. A
    transaction earlier than one already written raises ``ValueError``: sort the input
    first. Every ``other_transactions_every`` contract transactions (0: never) a type-4
    transfer with the same timestamp follows, as a chain carries other traffic besides the
    elections. The file is written as ``<name>.part`` and renamed into place by
    :meth:`close` (a drop folder ignores ``*.part``); on an error it is deleted.

    ``compress`` must agree with the file name (see :func:`compression_for`), which
    chooses it when ``None``. Use as a context manager, or call :meth:`close`.
    """

    def __init__(
        self,
        path: Path,
        *,
        transactions_per_block: int = 50,
        first_height: int = 1,
        compress: Compression | None = None,
        other_transactions_every: int = 0,
        seed: int = 0,
    ) -> None:
        if transactions_per_block < 1:
            raise ValueError("transactions_per_block must be at least 1")
        if first_height < 1:
            raise ValueError("first_height must be at least 1 (heights are 1-based)")
        if other_transactions_every < 0:
            raise ValueError("other_transactions_every must be 0 (none) or more")
        self.path = Path(path)
        by_name = compression_for(self.path)
        if compress is not None and compress != by_name:
            raise ValueError(f"{self.path.name} calls for {by_name!r} packing, not {compress!r}")
        self.compress: Compression = by_name
        self.per_block = transactions_per_block
        self.other_every = other_transactions_every
        self.seed = seed
        self.written = DumpWritten(self.path, first_height=first_height, last_height=first_height - 1)
        self._reference = _b58(f"genesis:{seed}:{first_height - 1}", 88)
        self._block: list[dict[str, Any]] = []
        self._ids: set[str] = set()
        self._last_key: tuple[int, str] | None = None
        self._cancelled: set[str] = set()
        self._contract_txs = 0
        self._part = self.path.with_name(self.path.name + ".part")
        self._stack = contextlib.ExitStack()
        self._out = self._open()
        self._closed = False

    # ---- file ---------------------------------------------------------------------

    def _open(self) -> _Sink:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        raw = self._stack.enter_context(open(self._part, "wb"))  # noqa: SIM115 - closed by the stack
        if self.compress == "gzip":
            packed = gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0, compresslevel=6)
            self._stack.callback(packed.close)
            return packed
        if self.compress == "zip":
            archive = self._stack.enter_context(zipfile.ZipFile(raw, "w", compression=zipfile.ZIP_DEFLATED))
            member = self.path.name[: -len(".zip")] + ".jsonl"
            info = zipfile.ZipInfo(member, date_time=_ZIP_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            return self._stack.enter_context(archive.open(info, "w", force_zip64=True))
        return raw

    def __enter__(self) -> BlockDumpWriter:
        return self

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()

    def close(self) -> DumpWritten:
        """Write the last block, finish the file and move it into place; returns what was written."""
        if not self._closed:
            try:
                self._flush()
                self._stack.close()
            except BaseException:
                self.abort()
                raise
            os.replace(self._part, self.path)
            self._closed = True
        return self.written

    def abort(self) -> None:
        """Stop writing and delete the partly written file."""
        if not self._closed:
            self._closed = True
            with contextlib.suppress(Exception):
                self._stack.close()
            self._part.unlink(missing_ok=True)

    # ---- transactions --------------------------------------------------------------

    def add(self, tx: dict[str, Any]) -> bool:
        """Add one transaction of the dump (a type-105 wrapper, or another type). Returns
        False when it is left out: its id is already in the block being filled (a
        duplicate) or a rollback cancelled it."""
        key = _sort_key(tx)
        if self._last_key is not None and key < self._last_key:
            raise ValueError(
                f"transaction {key[1]} (timestamp {key[0]}) comes after block {self.written.last_height}, "
                "which holds later transactions: give the transactions in time order"
            )
        if key[1] in self._cancelled:
            self.written.cancelled += 1
            return False
        if key[1] in self._ids:
            self.written.duplicates += 1
            return False
        if len(self._block) >= self.per_block:
            self._flush()
        self._block.append(tx)
        self._ids.add(key[1])
        return True

    def cancel(self, tx_id: str, ts_ms: int) -> None:
        """A rollback line: leave out transaction ``tx_id`` (whose timestamp is ``ts_ms``),
        whether it is in the block being filled or comes later. ``ValueError`` if it may
        already have been written in an earlier block."""
        self.written.rollback_lines += 1
        if self._last_key is not None and (ts_ms, tx_id) <= self._last_key:
            raise ValueError(
                f"the rollback of {tx_id} comes after block {self.written.last_height} was written: "
                "give the lines in time order"
            )
        self._cancelled.add(tx_id)
        if tx_id in self._ids:
            self._block = [t for t in self._block if _sort_key(t)[1] != tx_id]
            self._ids.discard(tx_id)
            self.written.cancelled += 1

    def _flush(self) -> None:
        if not self._block:
            return
        txs = sorted(self._block, key=_sort_key)
        self._last_key = _sort_key(txs[-1])
        height = self.written.last_height + 1
        signature = _b58(f"block:{self.seed}:{height}:{self._reference}:" + ",".join(t["id"] for t in txs), 88)
        block = {
            "height": height,
            "timestamp": max(int(t["timestamp"]) for t in txs),
            "signature": signature,
            "reference": self._reference,
            "transactions": list(self._with_others(txs)),
        }
        self._out.write(json.dumps(block, separators=(",", ":"), ensure_ascii=False).encode("utf-8") + b"\n")
        self._reference = signature
        self.written.blocks += 1
        self.written.last_height = height
        self._block = []
        self._ids = set()

    def _with_others(self, txs: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        node = _Node.of(self.seed)
        for tx in txs:
            yield tx
            if tx.get("type") != 105:
                self.written.other_transactions += 1
                continue
            self.written.transactions += 1
            self._contract_txs += 1
            if self.other_every and self._contract_txs % self.other_every == 0:
                self.written.other_transactions += 1
                yield {
                    "type": 4,
                    "id": _b58(f"transfer:{self.seed}:{tx['id']}", 44),
                    "version": 2,
                    "timestamp": tx["timestamp"],
                    "sender": node.address,
                    "recipient": "3N" + _b58(f"recipient:{self.seed}:{self._contract_txs}", 33),
                    "amount": 1,
                    "fee": 0,
                }


def _rollback_key(line: str) -> tuple[str, int] | None:
    """(tx id, ts) of a rollback line, None for any other line (read by the pipeline's parser)."""
    if not line.rstrip().endswith("-1"):
        return None
    try:
        parsed = parse_line(line)
    except LineError:
        return None
    return (parsed.tx_id, parsed.ts_ms) if parsed.is_rollback else None


def write_block_dump(
    lines: Iterable[tuple[str, str]],
    path: Path,
    *,
    transactions_per_block: int = 50,
    first_height: int = 1,
    compress: Compression | None = None,
    other_transactions_every: int = 0,
    seed: int = 0,
) -> DumpWritten:
    """Write the block dump of export ``lines``, each a ``(contract_id, line)`` pair, to ``path``.

    The lines must come in time order (``ts``, then transaction id), as a chain holds them;
    they are read one at a time and only one block is held in memory, so the input may be
    as long as a whole national voting. Rollback lines are left out with the transactions
    they cancel; a transaction id repeated within a block is written once. A line that
    cannot be converted raises ``ValueError`` (line number and reason) and no file is left
    behind. See :class:`BlockDumpWriter` for the options.
    """
    with BlockDumpWriter(
        path,
        transactions_per_block=transactions_per_block,
        first_height=first_height,
        compress=compress,
        other_transactions_every=other_transactions_every,
        seed=seed,
    ) as writer:
        for number, (contract_id, line) in enumerate(lines, start=1):
            text = line.rstrip("\r\n")
            try:
                rollback = _rollback_key(text)
                if rollback is not None:
                    writer.cancel(*rollback)
                else:
                    writer.add(export_line_to_dump_tx(contract_id, text, seed=seed))
            except ValueError as exc:
                raise ValueError(f"line {number} (contract {contract_id}): {exc}") from exc
    return writer.written


# --------------------------------------------------------------------------------------
# A sample folder
# --------------------------------------------------------------------------------------


def _export_files(input_dir: Path) -> list[Path]:
    """The ``.csv`` and ``.zip`` exports of a sample folder, in name order (reference files,
    hidden files and partial copies left out)."""
    return sorted(
        p
        for p in Path(input_dir).iterdir()
        if p.is_file()
        and p.name not in REFERENCE_FILES
        and not p.name.startswith(".")
        and p.suffix.lower() in (".csv", ".zip")
    )


def dump_from_sample_folder(input_dir: Path, path: Path, **kw: Any) -> SampleDumpWritten:
    """Write the block dump of every export in ``input_dir`` (a folder written by
    :func:`~election_pipeline.sample.generator.generate_sample`) to ``path``.

    Every ``.csv`` file and every ``.csv`` member of its ``.zip`` archives (nested archives
    included) is read with the pipeline's own file reader: a file's name up to the first
    ``_`` gives its contract, an archive member's own name gives it. Reference files
    (``elections.csv``, ``constituencies.csv``, ``ground_truth.json``) are left out. The
    first copy of a transaction id is kept, later copies dropped; rolled-back transactions
    are left out with their rollback lines; lines that are malformed or cannot be converted
    are skipped, each with its reason. The folder's transactions are held in memory (a
    sample folder is small), sorted by time and written with :func:`write_block_dump`'s
    writer; ``kw`` are its options (``transactions_per_block``, ``compress``, ...).
    """
    result = SampleDumpWritten(DumpWritten(Path(path)))
    kept: dict[str, dict[str, Any]] = {}
    rolled_back: set[str] = set()
    seed = int(kw.get("seed", 0))
    for file in _export_files(input_dir):
        result.files += 1
        try:
            for source_line in iter_export_lines(file):
                result.lines_read += 1
                _read_sample_line(
                    source_line.source,
                    source_line.line_number,
                    source_line.contract_id,
                    source_line.text,
                    kept,
                    rolled_back,
                    result,
                    seed,
                )
        except FileRefused as exc:
            result.skipped_files.append((file.name, exc.reason))
    standing = [tx for tx_id, tx in kept.items() if tx_id not in rolled_back]
    result.cancelled = len(kept) - len(standing)
    standing.sort(key=_sort_key)
    with BlockDumpWriter(Path(path), **kw) as writer:
        for tx in standing:
            writer.add(tx)
    result.dump = writer.written
    result.transactions = writer.written.transactions
    return result


def _read_sample_line(
    source: str,
    number: int,
    contract_id: str,
    text: str | None,
    kept: dict[str, dict[str, Any]],
    rolled_back: set[str],
    result: SampleDumpWritten,
    seed: int,
) -> None:
    """Sort one line of a sample folder into ``kept`` (first copy of each id), ``rolled_back``
    (ids of rollback lines) or ``result.skipped``."""
    if text is None:
        result.skipped.append(SkippedLine(source, number, "the line is not valid UTF-8"))
        return
    rollback = _rollback_key(text)
    if rollback is not None:
        result.rollback_lines += 1
        rolled_back.add(rollback[0])
        return
    try:
        tx = export_line_to_dump_tx(contract_id, text, seed=seed)
    except ValueError as exc:
        result.skipped.append(SkippedLine(source, number, str(exc)))
        return
    tx_id = tx["tx"]["id"]
    if tx_id in kept:
        result.duplicates += 1
    else:
        kept[tx_id] = tx
