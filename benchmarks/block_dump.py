"""Block-dump benchmark: a synthetic election written straight into the node's block dump, then
read by DuckDB alone and by the pipeline, side by side on the same file.

    .venv/bin/python benchmarks/block_dump.py                         # 1,000,000 transactions, ~5 KB votes
    .venv/bin/python benchmarks/block_dump.py --transactions 20000 --format gz --keep --out /var/tmp/dump

What it does, and prints:

1. generates ``--transactions`` transactions over ``--constituencies`` contracts into one block
   dump (``block_dump.jsonl`` or ``block_dump.jsonl.gz``; 50 transactions a block), streamed
   in time order, never through export files: per contract ``createContract`` (type 103) and
   ``addVotersList`` before the window, ``startVoting`` at 08:00 Moscow time, then
   ``blindSigIssue``/``vote`` pairs over 12 hours (1% of the votes rejected with a ``FAIL_``
   key, 2% of the voters voting again one to three hours later), and ``finishVoting`` at
   the close. The entries have the shapes of ``election_pipeline/sample/generator.py``; a
   vote transaction is about ``--vote-bytes`` bytes of JSON (its base64 ballot sized to
   that). It also writes the reference files (``elections.csv``, ``constituencies.csv``);
2. (a) DuckDB alone, in a subprocess: ``read_json(format='newline_delimited')`` of the dump,
   the transactions unnested, and per contract and UTC hour the transactions, the bulletins
   (items of the accepted ``blindSigIssue`` data arrays, counted exactly) and the distinct
   voters by their first accepted vote;
3. (b) the pipeline, in a subprocess: ``election-pipeline run`` on a drop folder holding only
   the dump, every store (operational SQLite database, DuckDB raw store, Dagster home,
   processed and quarantine folders) in a temporary folder. A pipeline that does not read
   block dumps refuses the file by its type ("... is not a .csv or .zip file"): the script
   says so and still prints (a);
4. per part: seconds, blocks/s and transactions/s, peak resident memory of the subprocess
   (``ru_maxrss`` of that child, read with ``os.wait4``), and the figures; then a table of
   both and the git commit;
5. deletes what it generated unless ``--keep`` (with ``--out``, the dump is written there).

A dump of ten million transactions takes about 25 minutes to generate: ``--generate-only
--out DIR`` writes it (with the generator's count and the reference files) and stops, and
``--out DIR`` later finds it there and reads it again instead of generating it anew (same
``--transactions``, ``--format`` and ``--seed``). The pipeline's drop folder gets a hard link
to the dump when it is on the same file system (a copy otherwise).

The figures of (a) and (b) should agree: the script prints the generator's own count too.
Not a test: timings depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import csv
import hashlib
import heapq
import itertools
import json
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from election_pipeline.sample.block_dump import BlockDumpWriter, DumpWritten, wrap_contract_tx  # noqa: E402

B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
START = datetime(2024, 9, 6, 5)  # 08:00 Moscow time, in UTC
HOURS = 12
HOUR_MS = 3_600_000
EPOCH = datetime(1970, 1, 1)
ELECTION_ID = "block-dump-benchmark"
TRANSACTIONS_PER_BLOCK = 50
LIFECYCLE_PER_CONTRACT = 4  # createContract, addVotersList, startVoting, finishVoting
IMAGE = "registry.example.org/evoting/blockchain-voting-contract:1.4.2"
PIPELINE = ROOT / ".venv" / "bin" / "election-pipeline"
#: How the pipeline refuses a file by its type ("... is not a .csv or .zip file" before it read block dumps).
NOT_READ_YET = re.compile(r"is not a \.csv\b[^:]*\bfile")


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def _ms(moment: datetime) -> int:
    delta = moment - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1000 + delta.microseconds // 1000


# --------------------------------------------------------------------------------------
# Generating the dump
# --------------------------------------------------------------------------------------


@dataclass
class Contract:
    id: str
    service_key: str
    registered: int
    next_voter: int = 0
    voters: list[str] = field(default_factory=list)  # keys of voters who cast an accepted vote


@dataclass
class Truth:
    """What the generator wrote, counted as the pipeline's counting rules count it."""

    transactions: int = 0
    bulletins: int = 0
    voters: int = 0
    revotes: int = 0
    rejected: int = 0


class Election:
    """A synthetic election, one transaction at a time, in time order (strictly increasing
    timestamps, so that the dump is ordered whatever the ids)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.rng = random.Random(f"block-dump-benchmark:{args.seed}")
        self.seed = args.seed
        self.voting = args.transactions - LIFECYCLE_PER_CONTRACT * args.constituencies
        pairs = max(1, self.voting // 2)
        per_contract = pairs / args.constituencies
        self.contracts = [
            Contract(self.b58(44), self.b58(44), int(per_contract * 1.4) + 20) for _ in range(args.constituencies)
        ]
        self.start = _ms(START)
        self.end = self.start + HOURS * HOUR_MS
        self.pairs = pairs
        self.truth = Truth()
        self.last_ts = 0
        self.blind_sigs = [base64.b64encode(self.rng.randbytes(128)).decode() for _ in range(64)]
        self.ballots = [self.b64_text(self.ballot_chars(args.vote_bytes)) for _ in range(256)]

    # ---- ids ----------------------------------------------------------------------

    def b58(self, length: int) -> str:
        return "".join(self.rng.choices(B58, k=length))

    def b64_text(self, chars: int) -> str:
        raw = base64.b64encode(self.rng.randbytes(chars * 3 // 4 + 3)).decode()
        return raw[: max(4, chars - chars % 4)]

    def ballot_chars(self, vote_bytes: int) -> int:
        """The ballot length (base64 characters) that makes a vote transaction, its type-105
        wrapper included, about ``vote_bytes`` bytes of JSON."""
        probe = self.vote_tx(self.contracts[0], self.start, "k" * 44, "3N" + "a" * 33, "", rejected=False)
        overhead = len(_j(wrap_contract_tx(probe["tx"], probe["results"], seed=self.seed)).encode())
        return max(4, vote_bytes - overhead)

    def user_id(self, contract: int, n: int) -> str:
        return hashlib.sha256(f"{self.seed}:{contract}:{n}".encode()).hexdigest()

    # ---- transactions --------------------------------------------------------------

    def _ts(self, ts: int) -> int:
        ts = max(ts, self.last_ts + 1)
        self.last_ts = ts
        return ts

    def inner(
        self,
        contract: Contract,
        operation: str | None,
        ts: int,
        sender: str,
        params: list[dict[str, Any]],
        tx_id: str | None = None,
    ) -> dict[str, Any]:
        entries = [{"key": "operation", "type": "string", "value": operation}] if operation else []
        tx: dict[str, Any] = {
            "type": 104 if operation else 103,
            "id": tx_id or self.b58(44),
            "version": 4,
            "timestamp": ts,
            "senderPublicKey": sender,
            "fee": 0,
            "feeAssetId": None,
            "params": entries + params,
            "proofs": [self.b58(88)],
        }
        if operation:
            tx["contractId"] = contract.id
            tx["contractVersion"] = 1
        else:
            tx |= {"image": IMAGE, "imageHash": "3f" * 32, "contractName": "voting"}
        return tx

    def wrap(self, inner: dict[str, Any], results: list[dict[str, Any]]) -> dict[str, Any]:
        self.truth.transactions += 1
        return wrap_contract_tx(inner, results, seed=self.seed)

    def create(self, contract: Contract, ts: int) -> dict[str, Any]:
        params: list[dict[str, Any]] = [
            {"key": "pollId", "type": "string", "value": contract.id[:12]},
            {"key": "title", "type": "string", "value": f"Benchmark election: {contract.id[:8]}"},
            {"key": "dateStart", "type": "integer", "value": self.start // 1000},
            {"key": "dateEnd", "type": "integer", "value": self.end // 1000},
        ]
        inner = self.inner(contract, None, self._ts(ts), contract.service_key, params, tx_id=contract.id)
        return self.wrap(inner, [{"key": "VOTING_BASE", "type": "string", "value": _j({"status": "created"})}])

    def voters_list(self, index: int, contract: Contract, ts: int) -> dict[str, Any]:
        hashes = [self.user_id(index, n) for n in range(contract.registered)]
        params: list[dict[str, Any]] = [
            {"key": "userIdHashes", "type": "string", "value": _j(hashes)},
            {"key": "votersCount", "type": "integer", "value": len(hashes)},
        ]
        inner = self.inner(contract, "addVotersList", self._ts(ts), contract.service_key, params)
        return self.wrap(inner, [{"key": "VOTERS_LIST_SIZE", "type": "integer", "value": len(hashes)}])

    def status(self, contract: Contract, operation: str, ts: int, status: str) -> dict[str, Any]:
        inner = self.inner(contract, operation, self._ts(ts), contract.service_key, [])
        return self.wrap(inner, [{"key": "STATUS", "type": "string", "value": status}])

    def blind_sig_issue(self, index: int, contract: Contract, ts: int, n: int) -> dict[str, Any]:
        user = self.user_id(index, n)
        data = [{"userId": user, "maskedSig": self.rng.randbytes(64).hex()}]
        params = [{"key": "data", "type": "string", "value": _j(data)}]
        inner = self.inner(contract, "blindSigIssue", self._ts(ts), contract.service_key, params)
        self.truth.bulletins += 1
        return self.wrap(inner, [{"key": f"BLINDSIG_{user}", "type": "boolean", "value": True}])

    def vote_tx(
        self, contract: Contract, ts: int, key: str, address: str, ballot: str, *, rejected: bool
    ) -> dict[str, Any]:
        tx_id = self.b58(44)
        params = [
            {"key": "vote", "type": "binary", "value": "base64:" + ballot},
            {"key": "blindSig", "type": "binary", "value": "base64:" + self.rng.choice(self.blind_sigs)},
        ]
        inner = self.inner(contract, "vote", ts, key, params, tx_id=tx_id)
        if rejected:
            reason = "blind signature verification failed"
            results = [{"key": f"FAIL_{address}_{tx_id}_vote", "type": "string", "value": reason}]
        else:
            results = [{"key": f"VOTE_{address}", "type": "string", "value": tx_id}]
        return {"tx": inner, "results": results}

    def vote(self, contract: Contract, ts: int, key: str, address: str, *, rejected: bool) -> dict[str, Any]:
        made = self.vote_tx(contract, self._ts(ts), key, address, self.rng.choice(self.ballots), rejected=rejected)
        return self.wrap(made["tx"], made["results"])

    # ---- the election --------------------------------------------------------------

    def transactions(self) -> Iterator[dict[str, Any]]:
        """Every transaction, in time order."""
        for i, c in enumerate(self.contracts):
            yield self.create(c, self.start - 3 * HOUR_MS + i * 1000)
        for i, c in enumerate(self.contracts):
            yield self.voters_list(i, c, self.start - 2 * HOUR_MS + i * 1000)
        for c in self.contracts:
            yield self.status(c, "startVoting", self.start, "active")
        yield from itertools.islice(self.voting_transactions(), self.voting)
        for c in self.contracts:
            yield self.status(c, "finishVoting", self.end, "finished")

    def voting_transactions(self) -> Iterator[dict[str, Any]]:
        """Bulletin and vote pairs over the 12 hours; votes and revotes wait in a heap until
        their time comes (a few thousand at the most)."""
        rng = self.rng
        pending: list[tuple[int, int, int, str, str, bool]] = []  # ts, seq, contract, key, address, revote
        seq = 0
        span = self.end - self.start - 20 * 60_000
        voted: set[str] = set()
        for k in range(self.pairs):
            ts = self.start + 60_000 + int((k + rng.random()) * span / self.pairs)
            while pending and pending[0][0] <= ts:
                yield self._cast(heapq.heappop(pending), voted)
            index = self._pick_contract()
            contract = self.contracts[index]
            n = contract.next_voter
            contract.next_voter += 1
            yield self.blind_sig_issue(index, contract, ts, n)
            key, address = self.b58(44), "3N" + self.b58(33)
            seq += 1
            heapq.heappush(pending, (ts + rng.randrange(10_000, 180_000), seq, index, key, address, False))
            if rng.random() < 0.02:
                later = ts + rng.randrange(HOUR_MS, 3 * HOUR_MS)
                if later < self.end - 60_000:
                    seq += 1
                    heapq.heappush(pending, (later, seq, index, key, address, True))
        while pending:
            yield self._cast(heapq.heappop(pending), voted)

    def _cast(self, event: tuple[int, int, int, str, str, bool], voted: set[str]) -> dict[str, Any]:
        ts, _seq, index, key, address, revote = event
        rejected = not revote and self.rng.random() < 0.01
        if rejected:
            self.truth.rejected += 1
        elif key in voted:
            self.truth.revotes += 1
        else:
            voted.add(key)
            self.truth.voters += 1
        return self.vote(self.contracts[index], ts, key, address, rejected=rejected)

    def _pick_contract(self) -> int:
        index = self.rng.randrange(len(self.contracts))
        while self.contracts[index].next_voter >= self.contracts[index].registered:
            index = (index + 1) % len(self.contracts)
        return index


def write_reference(folder: Path, election: Election) -> None:
    """``elections.csv`` and ``constituencies.csv`` for the generated contracts."""
    folder.mkdir(parents=True, exist_ok=True)
    start = START.replace(tzinfo=UTC).isoformat()
    end = (START + timedelta(hours=HOURS)).replace(tzinfo=UTC).isoformat()
    with open(folder / "elections.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "name", "country", "type", "start_date", "end_date", "timezone", "status", "description"])
        w.writerow([ELECTION_ID, "Block dump benchmark", "Exampleland", "local", start, end, "Europe/Moscow", "", ""])
    with open(folder / "constituencies.csv", "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh, lineterminator="\n")
        w.writerow(["id", "election_id", "name", "region", "type", "registered_voters", "status"])
        for i, c in enumerate(election.contracts):
            w.writerow([c.id, ELECTION_ID, f"District {i + 1}", f"Region {i % 5 + 1}", "urban", c.registered, ""])


def generate(args: argparse.Namespace, path: Path) -> tuple[DumpWritten, Election, float]:
    election = Election(args)
    began = time.perf_counter()
    with BlockDumpWriter(path, transactions_per_block=TRANSACTIONS_PER_BLOCK, seed=args.seed) as writer:
        for tx in election.transactions():
            writer.add(tx)
    return writer.written, election, time.perf_counter() - began


# --------------------------------------------------------------------------------------
# (a) DuckDB alone
# --------------------------------------------------------------------------------------

_ENTRY = "STRUCT(key VARCHAR, type VARCHAR, value VARCHAR)[]"
_TX = (
    f"STRUCT(type INTEGER, id VARCHAR, timestamp BIGINT, senderPublicKey VARCHAR, contractId VARCHAR, params {_ENTRY})"
)
_COLUMNS = f"{{'height': 'BIGINT', 'transactions': 'STRUCT(type INTEGER, tx {_TX}, results {_ENTRY})[]'}}"

DUCKDB_SQL = f"""
WITH blocks AS (
    SELECT height, unnest(transactions) AS t
    FROM read_json(?, format = 'newline_delimited', columns = {_COLUMNS}, maximum_object_size = 1073741824)
),
tx AS (
    SELECT
        CASE WHEN t.tx.type = 103 THEN t.tx.id ELSE t.tx.contractId END AS contract,
        t.tx.id AS tx_id,
        t.tx.timestamp AS ts,
        t.tx.senderPublicKey AS sender,
        lower(list_filter(t.tx.params, lambda p: p.key = 'operation')[1].value) AS op,
        list_filter(t.tx.params, lambda p: p.key = 'data')[1].value AS data,
        len(list_filter(t.results, lambda r: starts_with(r.key, 'FAIL'))) > 0 AS rejected
    FROM blocks
    WHERE t.type = 105 AND t.tx.type IN (103, 104)
),
counted AS (
    SELECT contract, tx_id, ts, sender, op, rejected,
           date_trunc('hour', epoch_ms(ts)) AS hour,
           CASE WHEN op = 'blindsigissue' AND NOT rejected THEN json_array_length(data) ELSE 0 END AS bulletins
    FROM tx
),
first_votes AS (
    SELECT contract, arg_min(hour, (ts, tx_id)) AS hour
    FROM counted WHERE op = 'vote' AND NOT rejected
    GROUP BY contract, sender
),
hourly AS (
    SELECT contract, hour, count(*) AS transactions, sum(bulletins) AS bulletins
    FROM counted GROUP BY contract, hour
),
voters AS (SELECT contract, hour, count(*) AS voters FROM first_votes GROUP BY contract, hour)
SELECT h.contract, h.hour, h.transactions, h.bulletins, coalesce(v.voters, 0) AS voters
FROM hourly h LEFT JOIN voters v USING (contract, hour)
ORDER BY h.contract, h.hour
"""


def duckdb_alone(path: Path, out: Path) -> None:
    """The subprocess of (a): the hourly figures of the dump, by DuckDB alone, into ``out``."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    rows = con.execute(DUCKDB_SQL, [str(path)]).fetchall()
    blocks = con.execute(
        "SELECT count(*) FROM read_json(?, format = 'newline_delimited', columns = {'height': 'BIGINT'}, "
        "maximum_object_size = 1073741824)",
        [str(path)],
    ).fetchone()
    figures = {
        "blocks": int(blocks[0]) if blocks else 0,
        "hourly_rows": len(rows),
        "contracts": len({r[0] for r in rows}),
        "transactions": sum(int(r[2]) for r in rows),
        "bulletins": sum(int(r[3]) for r in rows),
        "voters": sum(int(r[4]) for r in rows),
    }
    out.write_text(json.dumps(figures), encoding="utf-8")


# --------------------------------------------------------------------------------------
# Subprocesses, measured
# --------------------------------------------------------------------------------------


@dataclass
class Measured:
    seconds: float
    peak_rss_mb: float
    exit_code: int
    output: str


def measured(command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run ``command``; its wall time, its own peak resident memory (``ru_maxrss`` of that
    child and the children it waited for) and its output."""
    with tempfile.TemporaryFile("w+", encoding="utf-8") as log:
        began = time.perf_counter()
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=cwd)
        _pid, status, usage = os.wait4(process.pid, 0)
        seconds = time.perf_counter() - began
        process.returncode = os.waitstatus_to_exitcode(status)
        log.seek(0)
        output = log.read()
    return Measured(seconds, usage.ru_maxrss / 1024, process.returncode, output)


def run_duckdb(path: Path, work: Path) -> tuple[Measured, dict[str, Any]]:
    out = work / "duckdb_figures.json"
    result = measured([sys.executable, __file__, "--duckdb-only", str(path), "--figures-to", str(out)])
    figures = json.loads(out.read_text(encoding="utf-8")) if result.exit_code == 0 and out.exists() else {}
    return result, figures


def run_pipeline(path: Path, work: Path, reference: Path) -> tuple[Measured, dict[str, Any], str]:
    """(b): ``election-pipeline run`` on a drop folder holding only the dump; returns the run,
    the figures of its summary and, when the file was refused, the reason."""
    drop = work / "input"
    drop.mkdir(parents=True)
    try:
        os.link(path, drop / path.name)  # the run moves it away: the dump itself stays
    except OSError:
        shutil.copyfile(path, drop / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTION_")}
    env |= {
        "DAGSTER_HOME": str(work / "dagster_home"),
        "ELECTION_INPUT_DIR": str(drop),
        "ELECTION_REFERENCE_DIR": str(reference),
        "ELECTION_PROCESSED_DIR": str(work / "processed"),
        "ELECTION_QUARANTINE_DIR": str(work / "quarantine"),
        "ELECTION_DATABASE_URL": f"sqlite:///{work / 'election_monitoring.db'}",
        "ELECTION_DUCKDB_PATH": str(work / "warehouse.duckdb"),
        "ELECTION_REPORTS_DIR": str(work / "reports"),
    }
    result = measured([str(PIPELINE), "run", "--log-level", "WARNING"], env=env, cwd=work)
    return result, summary_figures(result.output), refusal(work / "election_monitoring.db")


def summary_figures(output: str) -> dict[str, Any]:
    """The figures of the summary ``election-pipeline run`` prints."""
    figures: dict[str, Any] = {}
    for text in output.splitlines():
        name, _, value = text.strip().partition(":")
        words = value.split()
        if not words:
            continue
        if name == "files processed" and len(words) >= 3:
            figures["files_completed"], figures["files_failed"] = int(words[0]), int(words[2])
        elif name == "transactions" and len(words) >= 3:
            figures["transactions"], figures["rolled_back"] = int(words[0]), int(words[2])
        elif name in ("bulletins issued", "votes cast", "rejected lines", "hourly rows") and words[0].isdigit():
            figures[name.replace(" ", "_")] = int(words[0])
        elif name == "alerts" and len(words) >= 5:
            figures["alerts"] = f"{words[0]} critical, {words[2]} warning, {words[4]} info"
    return figures


def refusal(database: Path) -> str:
    """The reason of the first failed file job of the run's database ("" when none failed)."""
    if not database.exists():
        return ""
    import sqlite3

    with sqlite3.connect(database) as con:
        row = con.execute(
            "SELECT filename, details FROM file_processing_jobs WHERE status = 'failed' ORDER BY started_at LIMIT 1"
        ).fetchone()
    return f"{row[0]}: {row[1]}" if row else ""


# --------------------------------------------------------------------------------------
# Report
# --------------------------------------------------------------------------------------


def rate(count: float, seconds: float) -> str:
    return f"{count / seconds:,.0f}" if seconds > 0 else "-"


def git_commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return "unknown"
    commit = done.stdout.strip() or "unknown"
    changed = subprocess.run(["git", "diff", "--quiet", "HEAD"], cwd=ROOT, capture_output=True, check=False)
    return commit + (" + uncommitted changes in the working tree" if changed.returncode == 1 else "")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=1_000_000, help="transactions in the dump")
    parser.add_argument(
        "--vote-bytes", type=int, default=5000, help="bytes of JSON of one vote transaction (base64 ballot included)"
    )
    parser.add_argument("--constituencies", type=int, default=200, help="contracts (constituencies)")
    parser.add_argument("--format", choices=["jsonl", "gz"], default="jsonl", help="plain JSON Lines or gzip")
    parser.add_argument("--out", type=Path, default=None, help="folder for the dump (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the dump and the stores of the run")
    parser.add_argument("--seed", type=int, default=7, help="random seed (same seed, same dump)")
    parser.add_argument(
        "--generate-only", action="store_true", help="write the dump into --out (kept) and stop; a later run reuses it"
    )
    parser.add_argument("--duckdb-only", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--figures-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duckdb_only is not None:
        duckdb_alone(args.duckdb_only, args.figures_to)
        return 0
    if not 1 <= args.constituencies <= 3000:
        parser.error("--constituencies must be between 1 and 3000")
    least = (LIFECYCLE_PER_CONTRACT + 2) * args.constituencies
    if args.transactions < least:
        parser.error(f"--transactions must be at least {least:,} for {args.constituencies} constituencies")
    if args.vote_bytes < 1000:
        parser.error("--vote-bytes must be at least 1000 (a vote without its ballot is about 900 bytes)")

    if args.generate_only and args.out is None:
        parser.error("--generate-only needs --out (the folder the dump is kept in)")

    root = Path(tempfile.mkdtemp(prefix="block-dump-bench-"))
    out_dir = args.out.absolute() if args.out else root / "dump"
    name = "block_dump.jsonl" + (".gz" if args.format == "gz" else "")
    path = out_dir / name
    reused = _kept(args, path) is not None
    try:
        return bench(args, root, path)
    finally:
        if args.generate_only:
            shutil.rmtree(root, ignore_errors=True)
            print(f"\nKept: the dump {path}; run again without --generate-only to read it")
        elif args.keep:
            print(f"\nKept: the dump {path} and the stores of the run in {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
            if args.out and not reused:
                path.unlink(missing_ok=True)


def _kept_name(path: Path) -> Path:
    return path.with_name(path.name + ".generated.json")


def _kept(args: argparse.Namespace, path: Path) -> dict[str, Any] | None:
    """What an earlier ``--generate-only`` (or ``--keep --out``) run wrote at ``path`` with the
    same arguments, or None."""
    sidecar = _kept_name(path)
    if not (path.exists() and sidecar.exists()):
        return None
    kept = json.loads(sidecar.read_text(encoding="utf-8"))
    same = {"transactions": args.transactions, "vote_bytes": args.vote_bytes, "constituencies": args.constituencies}
    same |= {"seed": args.seed, "size": path.stat().st_size}
    return kept if all(kept["arguments"].get(k) == v for k, v in same.items()) else None


def _keep(args: argparse.Namespace, path: Path, written: DumpWritten, truth: Truth, seconds: float) -> None:
    arguments = {"transactions": args.transactions, "vote_bytes": args.vote_bytes}
    arguments |= {"constituencies": args.constituencies, "seed": args.seed, "size": path.stat().st_size}
    payload = {
        "arguments": arguments,
        "written": {
            "blocks": written.blocks,
            "transactions": written.transactions,
            "first_height": written.first_height,
            "last_height": written.last_height,
        },
        "truth": truth.__dict__,
        "seconds": seconds,
    }
    _kept_name(path).write_text(json.dumps(payload, indent=1), encoding="utf-8")


def bench(args: argparse.Namespace, root: Path, path: Path) -> int:
    print(
        f"Generating {args.transactions:,} transactions ({args.constituencies} constituencies, "
        f"~{args.vote_bytes:,}-byte votes) into {path}"
    )
    kept = _kept(args, path)
    reference = path.parent / "reference"
    if kept is None:
        written, election, gen_seconds = generate(args, path)
        write_reference(reference, election)
        truth = election.truth
        _keep(args, path, written, truth, gen_seconds)
    else:
        print("  (reusing the dump an earlier run generated with the same arguments)")
        written = DumpWritten(path, **kept["written"])
        truth, gen_seconds = Truth(**kept["truth"]), float(kept["seconds"])
    size = path.stat().st_size
    print(
        f"  {written.blocks:,} blocks (heights {written.first_height}-{written.last_height}), "
        f"{written.transactions:,} transactions, {size / 1e6:,.1f} MB, {gen_seconds:.1f} s "
        f"({rate(written.transactions, gen_seconds)} transactions/s)"
    )
    print(
        f"  generator's count: {truth.transactions:,} transactions, {truth.bulletins:,} bulletins, "
        f"{truth.voters:,} voters, {truth.revotes:,} revotes, {truth.rejected:,} rejected votes"
    )
    if args.generate_only:
        return 0

    print("\n(a) DuckDB alone: read_json(format='newline_delimited'), hourly figures per contract")
    duck, duck_figures = run_duckdb(path, root)
    if duck.exit_code != 0:
        print(f"  FAILED (exit {duck.exit_code}):\n{duck.output[-3000:]}")
    else:
        print(
            f"  {duck.seconds:.2f} s, {rate(written.blocks, duck.seconds)} blocks/s, "
            f"{rate(written.transactions, duck.seconds)} transactions/s, peak RSS {duck.peak_rss_mb:,.0f} MB"
        )
        print(f"  figures: {duck_figures}")

    print("\n(b) the pipeline: election-pipeline run on a drop folder holding only the dump")
    run_dir = root / "run"
    run_dir.mkdir()
    pipe, pipe_figures, refused = run_pipeline(path, run_dir, reference)
    not_read = bool(NOT_READ_YET.search(refused) or NOT_READ_YET.search(pipe.output))
    print(
        f"  {pipe.seconds:.2f} s (exit {pipe.exit_code}), {rate(written.transactions, pipe.seconds)} transactions/s, "
        f"peak RSS {pipe.peak_rss_mb:,.0f} MB"
    )
    if not_read:
        print(
            f"  THE PIPELINE DOES NOT READ THIS BLOCK DUMP (not yet, or not under this name): it refused the file "
            f"by its type ({refused or 'see its output'}); its figures below are those of a run without it"
        )
    elif refused:
        print(f"  the pipeline refused the file: {refused}")
    elif pipe.exit_code != 0:
        print(f"  the run failed:\n{pipe.output[-3000:]}")
    print(f"  figures: {pipe_figures}")

    print(f"\nSummary ({args.transactions:,} transactions, format {args.format}, commit {git_commit()})")
    rates = [("blocks/s", written.blocks), ("transactions/s", written.transactions)]
    status = ("status", "ok" if duck.exit_code == 0 else "failed", pipeline_status(pipe, not_read, refused), "-")
    print_summary(duck, pipe, gen_seconds, rates, duck_figures, pipe_figures, truth, (status,))
    return 0 if duck.exit_code == 0 else 1


def print_summary(
    duck: Measured,
    pipe: Measured,
    gen_seconds: float,
    rates: list[tuple[str, int]],
    duck_figures: dict[str, Any],
    pipe_figures: dict[str, Any],
    truth: Truth,
    more: tuple[tuple[str, str, str, str], ...] = (),
) -> None:
    """The side-by-side table: DuckDB alone, the pipeline, the generator."""
    rows = [
        ("", "DuckDB alone", "pipeline", "generator"),
        ("seconds", f"{duck.seconds:.2f}", f"{pipe.seconds:.2f}", f"{gen_seconds:.2f}"),
        *[(name, rate(n, duck.seconds), rate(n, pipe.seconds), rate(n, gen_seconds)) for name, n in rates],
        ("peak RSS MB", f"{duck.peak_rss_mb:,.0f}", f"{pipe.peak_rss_mb:,.0f}", "-"),
    ]
    for name, duck_key, pipe_key in (
        ("transactions", "transactions", "transactions"),
        ("bulletins", "bulletins", "bulletins_issued"),
        ("voters", "voters", "votes_cast"),
    ):
        rows.append(
            (
                name,
                str(duck_figures.get(duck_key, "-")),
                str(pipe_figures.get(pipe_key, "-")),
                str(getattr(truth, name)),
            )
        )
    rows.append(("alerts", "-", str(pipe_figures.get("alerts", "-")), "-"))
    for row in [*rows, *more]:
        print(f"  {row[0]:<16}{row[1]:>16}  {row[2]:>32}  {row[3]:>12}")


def pipeline_status(pipe: Measured, not_read: bool, refused: str) -> str:
    if not_read:
        return "dump not read yet"
    if refused:
        return "file refused"
    return "ok" if pipe.exit_code == 0 else f"exit {pipe.exit_code}"


if __name__ == "__main__":
    raise SystemExit(main())
