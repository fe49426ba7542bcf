"""The block-dump writer: export lines in, the node's block dump out (real files in tmp_path)."""

from __future__ import annotations

import gzip
import json
import re
import zipfile
from pathlib import Path
from typing import Any

import pytest

from election_pipeline.sample import generate_sample
from election_pipeline.sample.block_dump import (
    BlockDumpWriter,
    dump_from_sample_folder,
    export_line_to_dump_tx,
    write_block_dump,
)

CONTRACT = "AsrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHpM"
SERVICE = "4tjBKgWy1kPvAY7J9nK5FNi3RWDqgMqmYXHcQCrbtBm2"
VOTER = "8dWhgiWMpTzzyBmnqnxvLkzDfN1XW5LmT1y8rKZcY2Z3"
SIG = "5" * 88
T0 = 1_725_598_800_000  # 2024-09-06T05:00:00Z
B58_44 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{44}$")
B58_88 = re.compile(r"^[1-9A-HJ-NP-Za-km-z]{88}$")

CALL = '{"contractVersion":1}'
CREATE_EXTRA = '{"image":"registry.example.org/voting:1","imageHash":"ab12","contractName":"voting","apiVersion":"1.0"}'


def line(tx_id: str, tx_type: int, ts: int, sender: str, params: str, diff: str, extra: str, rollback: str = "") -> str:
    return ";".join((tx_id, str(tx_type), SIG, "4", str(ts), sender, "0", "", params, diff, extra, rollback))


CREATE = line(
    CONTRACT,
    103,
    T0,
    SERVICE,
    '[{"key":"pollId","stringValue":"Asrx"},{"key":"dateStart","intValue":1725598800}]',
    '[{"key":"VOTING_BASE","stringValue":"{\\"status\\":\\"created\\"}"}]',
    CREATE_EXTRA,
)
VOTERS = line(
    "VotersTx1",
    104,
    T0 + 1_000,
    SERVICE,
    '[{"key":"operation","stringValue":"addVotersList"},{"key":"userIdHashes","stringValue":"[\\"u1\\",\\"u2\\"]"},'
    '{"key":"votersCount","intValue":2}]',
    '[{"key":"VOTERS_LIST_SIZE","intValue":2}]',
    CALL,
)
# A ';' inside a JSON string: the masked signature is an "r;s" pair.
BLIND = line(
    "BlindTx1",
    104,
    T0 + 2_000,
    SERVICE,
    '[{"key":"operation","stringValue":"blindSigIssue"},'
    '{"key":"data","stringValue":"[{\\"userId\\":\\"u1\\",\\"maskedSig\\":\\"aa;bb\\"}]"}]',
    '[{"key":"BLINDSIG_u1","boolValue":true}]',
    CALL,
)
VOTE = line(
    "VoteTx1",
    104,
    T0 + 3_000,
    VOTER,
    '[{"key":"operation","stringValue":"vote"},{"key":"vote","binaryValue":"QUJDRA=="}]',
    '[{"key":"VOTE_3Naddr","stringValue":"VoteTx1"}]',
    CALL,
)
REJECTED = line(
    "VoteTx2",
    104,
    T0 + 4_000,
    VOTER,
    '[{"key":"operation","stringValue":"vote"},{"key":"vote","binaryValue":"RUZHSA=="}]',
    '[{"key":"FAIL_3Naddr_VoteTx2_vote","stringValue":"blind signature verification failed"}]',
    CALL,
)
LINES = [CREATE, VOTERS, BLIND, VOTE, REJECTED]


def blocks_of(path: Path) -> list[dict[str, Any]]:
    """The blocks of a dump, whatever its packing."""
    return [json.loads(text) for text in dump_text(path).splitlines()]


def dump_text(path: Path) -> str:
    if path.name.endswith(".gz"):
        return gzip.decompress(path.read_bytes()).decode("utf-8")
    if path.suffix == ".zip":
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            assert names == [path.stem + ".jsonl"]
            return archive.read(names[0]).decode("utf-8")
    return path.read_text(encoding="utf-8")


def inner_of(block: dict[str, Any]) -> list[dict[str, Any]]:
    return [t["tx"] for t in block["transactions"] if t["type"] == 105]


def test_one_block_has_the_exact_structure(tmp_path: Path) -> None:
    written = write_block_dump([(CONTRACT, text) for text in LINES], tmp_path / "dump.jsonl")
    assert (written.blocks, written.transactions, written.other_transactions) == (1, 5, 0)
    assert list(written.heights) == [1]
    raw = (tmp_path / "dump.jsonl").read_bytes()
    assert raw.endswith(b"}\n") and raw.count(b"\n") == 1 and b": " not in raw[:200]
    [block] = blocks_of(tmp_path / "dump.jsonl")
    assert list(block) == ["height", "timestamp", "signature", "reference", "transactions"]
    assert block["height"] == 1 and block["timestamp"] == T0 + 4_000
    assert B58_88.match(block["signature"]) and B58_88.match(block["reference"])
    assert block["signature"] != block["reference"]
    wrappers = block["transactions"]
    assert [w["tx"]["id"] for w in wrappers] == [CONTRACT, "VotersTx1", "BlindTx1", "VoteTx1", "VoteTx2"]
    for w in wrappers:
        assert list(w) == ["type", "id", "version", "timestamp", "sender", "senderPublicKey", "fee", "tx", "results"]
        assert (w["type"], w["version"], w["fee"], w["timestamp"]) == (105, 1, 0, w["tx"]["timestamp"])
        assert B58_44.match(w["id"]) and w["sender"].startswith("3N")
    assert len({w["id"] for w in wrappers}) == 5

    create, voters, blind, vote, rejected = wrappers
    assert create["tx"] == {
        "type": 103,
        "id": CONTRACT,
        "version": 4,
        "timestamp": T0,
        "senderPublicKey": SERVICE,
        "fee": 0,
        "feeAssetId": None,
        "params": [
            {"key": "pollId", "type": "string", "value": "Asrx"},
            {"key": "dateStart", "type": "integer", "value": 1725598800},
        ],
        "proofs": [SIG],
        "image": "registry.example.org/voting:1",
        "imageHash": "ab12",
        "contractName": "voting",
    }
    assert create["results"] == [{"key": "VOTING_BASE", "type": "string", "value": '{"status":"created"}'}]
    assert voters["tx"]["params"] == [
        {"key": "operation", "type": "string", "value": "addVotersList"},
        {"key": "userIdHashes", "type": "string", "value": '["u1","u2"]'},
        {"key": "votersCount", "type": "integer", "value": 2},
    ]
    assert blind["tx"]["params"][1] == {
        "key": "data",
        "type": "string",
        "value": '[{"userId":"u1","maskedSig":"aa;bb"}]',
    }
    assert blind["results"] == [{"key": "BLINDSIG_u1", "type": "boolean", "value": True}]
    assert vote["tx"] == {
        "type": 104,
        "id": "VoteTx1",
        "version": 4,
        "timestamp": T0 + 3_000,
        "senderPublicKey": VOTER,
        "fee": 0,
        "feeAssetId": None,
        "params": [
            {"key": "operation", "type": "string", "value": "vote"},
            {"key": "vote", "type": "binary", "value": "base64:QUJDRA=="},
        ],
        "proofs": [SIG],
        "contractId": CONTRACT,
        "contractVersion": 1,
    }
    assert vote["results"] == [{"key": "VOTE_3Naddr", "type": "string", "value": "VoteTx1"}]
    assert rejected["results"] == [
        {"key": "FAIL_3Naddr_VoteTx2_vote", "type": "string", "value": "blind signature verification failed"}
    ]
    # one transaction converted alone is the same as in the block
    assert export_line_to_dump_tx(CONTRACT, VOTE) == vote


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("not;an;export;line", "expected 12 fields"),
        (VOTE.replace("VoteTx1;104", "VoteTx1;105"), "only 103 (create) and 104 (call)"),
        (VOTE + "-1", "rollback line"),
        (CREATE.replace(CONTRACT, "OtherContract1", 1), "its file names contract"),
        (VOTE.replace('"binaryValue":"QUJDRA=="', '"value":"x"'), "has no stringValue"),
    ],
)
def test_a_line_that_cannot_be_converted_says_why(text: str, reason: str) -> None:
    with pytest.raises(ValueError, match=re.escape(reason)):
        export_line_to_dump_tx(CONTRACT, text)


def test_packings_hold_the_same_blocks_and_heights_follow_on(tmp_path: Path) -> None:
    lines = [(CONTRACT, text) for text in LINES]
    texts = []
    for name in ("dump.jsonl", "dump.jsonl.gz", "dump.json.gz", "dump.zip"):
        written = write_block_dump(lines, tmp_path / name, transactions_per_block=2, first_height=7)
        assert (written.blocks, written.transactions) == (3, 5)
        assert list(written.heights) == [7, 8, 9]
        texts.append(dump_text(tmp_path / name))
        assert not list(tmp_path.glob("*.part"))
    assert len(set(texts)) == 1
    blocks = blocks_of(tmp_path / "dump.zip")
    assert [b["height"] for b in blocks] == [7, 8, 9]
    assert [len(b["transactions"]) for b in blocks] == [2, 2, 1]
    assert [b["reference"] for b in blocks[1:]] == [b["signature"] for b in blocks[:-1]]
    assert [b["timestamp"] for b in blocks] == [T0 + 1_000, T0 + 3_000, T0 + 4_000]
    # the same input, the same bytes
    write_block_dump(lines, tmp_path / "again.jsonl.gz", transactions_per_block=2, first_height=7)
    assert gzip.decompress((tmp_path / "again.jsonl.gz").read_bytes()).decode() == texts[0]
    assert (tmp_path / "again.jsonl.gz").read_bytes() == (tmp_path / "dump.jsonl.gz").read_bytes()


def test_transactions_are_ordered_by_time_then_id_within_a_block(tmp_path: Path) -> None:
    same_time = VOTE.replace(str(T0 + 3_000), str(T0 + 2_000)).replace("VoteTx1", "AVoteTx")
    lines = [(CONTRACT, text) for text in (VOTE, BLIND, same_time, VOTERS)]
    write_block_dump(lines, tmp_path / "dump.jsonl")
    [block] = blocks_of(tmp_path / "dump.jsonl")
    assert [t["id"] for t in inner_of(block)] == ["VotersTx1", "AVoteTx", "BlindTx1", "VoteTx1"]


def test_lines_out_of_time_order_across_blocks_are_refused(tmp_path: Path) -> None:
    lines = [(CONTRACT, text) for text in (VOTERS, BLIND, VOTE, CREATE)]
    with pytest.raises(ValueError, match="time order"):
        write_block_dump(lines, tmp_path / "dump.jsonl", transactions_per_block=2)
    assert not list(tmp_path.iterdir())  # no partial file is left behind


def test_rollback_and_the_transaction_it_cancels_are_left_out(tmp_path: Path) -> None:
    lines = [(CONTRACT, text) for text in (CREATE, VOTERS, BLIND, VOTE, VOTE + "-1", REJECTED)]
    written = write_block_dump(lines, tmp_path / "dump.jsonl", transactions_per_block=4)
    assert (written.transactions, written.rollback_lines, written.cancelled) == (4, 1, 1)
    ids = [t["id"] for b in blocks_of(tmp_path / "dump.jsonl") for t in inner_of(b)]
    assert ids == [CONTRACT, "VotersTx1", "BlindTx1", "VoteTx2"]
    # a rollback read before the transaction cancels it too
    lines = [(CONTRACT, text) for text in (CREATE, VOTE + "-1", VOTE)]
    written = write_block_dump(lines, tmp_path / "first.jsonl")
    assert [t["id"] for b in blocks_of(tmp_path / "first.jsonl") for t in inner_of(b)] == [CONTRACT]


def test_other_transactions_are_added_when_asked(tmp_path: Path) -> None:
    lines = [(CONTRACT, text) for text in LINES]
    written = write_block_dump(lines, tmp_path / "dump.jsonl", other_transactions_every=2)
    assert (written.transactions, written.other_transactions) == (5, 2)
    [block] = blocks_of(tmp_path / "dump.jsonl")
    assert [t["type"] for t in block["transactions"]] == [105, 105, 4, 105, 105, 4, 105]
    transfer = block["transactions"][2]
    assert transfer["timestamp"] == block["transactions"][1]["timestamp"] and transfer["amount"] == 1
    assert B58_44.match(transfer["id"])


def test_the_writer_streams_one_block_at_a_time(tmp_path: Path) -> None:
    path = tmp_path / "dump.jsonl"
    with BlockDumpWriter(path, transactions_per_block=2) as writer:
        for text in LINES[:3]:
            writer.add(export_line_to_dump_tx(CONTRACT, text))
        assert writer.written.blocks == 1  # the first block is written out, the second one being filled
    assert not (tmp_path / "dump.jsonl.part").exists()
    assert [len(b["transactions"]) for b in blocks_of(path)] == [2, 1]


def test_a_sample_folder_gives_one_transaction_per_standing_transaction(tmp_path: Path) -> None:
    summary = generate_sample(tmp_path / "input", tmp_path / "input")  # reference files in the same folder
    result = dump_from_sample_folder(
        tmp_path / "input", tmp_path / "out" / "sample.jsonl.gz", transactions_per_block=25
    )
    standing = sum(t.transaction_count for t in summary.totals.values())
    assert result.transactions == result.dump.transactions == standing
    assert result.rollback_lines == result.cancelled == summary.rollback_lines
    assert result.duplicates == summary.duplicated_lines
    assert len(result.skipped) == summary.malformed_lines
    assert result.lines_read == summary.line_count
    assert not result.skipped_files
    blocks = blocks_of(tmp_path / "out" / "sample.jsonl.gz")
    assert [b["height"] for b in blocks] == list(range(1, len(blocks) + 1)) == list(result.dump.heights)
    per_contract: dict[str, int] = {}
    keys = []
    for block in blocks:
        for tx in inner_of(block):
            contract = tx["id"] if tx["type"] == 103 else tx["contractId"]
            per_contract[contract] = per_contract.get(contract, 0) + 1
            keys.append((tx["timestamp"], tx["id"]))
    assert keys == sorted(keys) and len(set(keys)) == standing
    assert per_contract == {cid: t.transaction_count for cid, t in summary.totals.items()}
    # the zipped contract's hours (a nested archive included) are in the dump
    assert summary.zipped_contract_id and any("::" in name for name in _zip_sources(tmp_path / "input"))


def _zip_sources(folder: Path) -> list[str]:
    """The members of the archives of a sample folder, ``archive.zip::member``."""
    out = []
    for archive_path in sorted(folder.glob("*.zip")):
        with zipfile.ZipFile(archive_path) as archive:
            out += [f"{archive_path.name}::{name}" for name in archive.namelist()]
    return out
