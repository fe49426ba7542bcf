"""National-scale benchmark: a generated election in the official export format, replayed
through the pipeline's stages on SQLite and on PostgreSQL.

    .venv/bin/python benchmarks/scale.py --transactions 10000000 --workdir /var/tmp/election-bench
    .venv/bin/python benchmarks/scale.py --transactions 10000000 --ballot-chars 300   # ~600-byte lines

What it does, and prints (per stage: rows, seconds, rows/s, peak resident memory of this
process and its children, sampled every 50 ms):

1. checks the free disk space, then generates ``--transactions`` transaction lines
   (``--constituencies`` contracts x ``--hours`` hourly files; vote lines carry
   ``--ballot-chars`` characters of base64 ballot data, 5,000 as the real export) with
   revotes, rejected transactions, rollbacks, duplicates across files and a few malformed
   lines, and prints the average bytes per line;
2. (a) the floor: DuckDB alone, ``read_csv`` of the same files and the hourly GROUP BY;
3. for each engine, the stages of one Dagster run of ``election_pipeline_job``, in its order:
   ``reference_data``; ``raw_transactions`` (``ingest_folder`` into DuckDB, then
   ``publish_file_records``); ``hourly_stats`` with its two blocking checks (evaluated in
   that step); ``constituency_metrics``; ``alerts``; ``operational_transactions``
   (``publish_transactions``) and its blocking check ``no_transaction_counted_twice``; the
   non-blocking checks; ``election_metrics`` and ``election_report``. Two totals: files to
   alerts (up to and including ``alerts``, with the blocking checks that gate it) and files
   to everything published (the whole run). The hourly figures the pipeline published are
   compared row by row with DuckDB alone's: any difference is printed and the command exits
   with status 1 (as it does when a blocking check fails or a stage raises);
4. per engine: files-to-alerts seconds / DuckDB-alone seconds, and the ingest's lines/s;
5. one new hourly file of 5,000 lines on top of the full history, and on top of a
   ``--small-history`` history, through every stage (``--increment-only``: on the stores a
   ``--keep`` run left);
6. deletes everything it generated (``--keep`` keeps it).

The PostgreSQL server's own memory is not in "peak memory" (another process). Not a test:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import multiprocessing
import os
import random
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
START = datetime(2024, 9, 6, 5)  # 08:00 Moscow time, in UTC
BALLOT_CHARS = 5_000
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"


# --------------------------------------------------------------------------------------
# Measuring
# --------------------------------------------------------------------------------------


def _rss_of(pid: int | str) -> int:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def _children(pid: int | str) -> list[str]:
    kids: list[str] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children", encoding="ascii") as fh:
                kids.extend(fh.read().split())
    except OSError:
        pass
    return kids


def rss_bytes() -> int:
    """Resident memory of this process and all its descendants."""
    total, todo = 0, [str(os.getpid())]
    while todo:
        pid = todo.pop()
        total += _rss_of(pid)
        todo.extend(_children(pid))
    return total


@dataclass
class Measure:
    name: str
    rows: int = 0
    seconds: float = 0.0
    peak_bytes: int = 0
    note: str = ""

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0

    def line(self) -> str:
        return (
            f"  {self.name:<42} {self.rows:>12,} rows {self.seconds:>9.1f} s {self.rate:>12,.0f} rows/s "
            f"{self.peak_bytes / 2**20:>8,.0f} MiB  {self.note}"
        )


@contextmanager
def measured(results: list[Measure], name: str, rows: int | Callable[[], int] = 0) -> Iterator[Measure]:
    """Time a block and sample this process's RSS every 50 ms; print the figures."""
    m = Measure(name)
    stop = threading.Event()
    peak = [rss_bytes()]

    def sample() -> None:
        while not stop.is_set():
            peak[0] = max(peak[0], rss_bytes())
            stop.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.perf_counter()
    try:
        yield m
    finally:
        m.seconds = time.perf_counter() - started
        stop.set()
        sampler.join()
        m.peak_bytes = max(peak[0], rss_bytes())
        if not m.rows:
            m.rows = rows() if callable(rows) else rows
        results.append(m)
        print(m.line(), flush=True)


# --------------------------------------------------------------------------------------
# Generating an election
# --------------------------------------------------------------------------------------


def b58(n: int, width: int = 44, salt: int = 0) -> str:
    rnd = random.Random(n * 1_000_003 + salt)
    return "".join(rnd.choice(BASE58) for _ in range(width))


def ms(moment: datetime) -> int:
    return int((moment - datetime(1970, 1, 1)).total_seconds() * 1000)


@dataclass
class Plan:
    constituencies: int
    hours: int
    transactions: int
    ballot_chars: int = BALLOT_CHARS
    seed: int = 42

    @property
    def voters_per_constituency(self) -> int:
        # ~2.06 transactions per voter (a bulletin, a vote, some revotes and rejections)
        per_c = self.transactions / self.constituencies
        return max(10, int((per_c - 6) / 2.06))


@dataclass
class GenStats:
    lines: int = 0
    bytes: int = 0
    files: int = 0
    malformed: int = 0


def _line(
    tx_id: str,
    ts: int,
    sender: str,
    params: str,
    diff: str,
    rollback: str = "",
    tx_type: int = 104,
    extra: str = '{"contractVersion":1}',
) -> str:
    return f"{tx_id};{tx_type};{tx_id[::-1]}{tx_id[:44]};4;{ts};{sender};0;;{params};{diff};{extra};{rollback}\n"


def _params(operation: str, *extra: str) -> str:
    return "[" + ",".join([f'{{"key":"operation","stringValue":"{operation}"}}', *extra]) + "]"


def generate_constituency(args: tuple[int, Plan, str]) -> GenStats:
    """Write one constituency's hourly files; deterministic per constituency."""
    index, plan, out_dir = args
    rnd = random.Random(plan.seed * 7919 + index)
    contract = b58(index, salt=1)
    org = b58(index, salt=2)
    ballot = plan.ballot_chars
    pool = base64.b64encode(rnd.randbytes(ballot + 4096)).decode()
    stats = GenStats()
    by_hour: dict[int, list[str]] = {h: [] for h in range(plan.hours)}
    serial = [0]

    def tx() -> str:
        serial[0] += 1
        return b58(index * 10_000_000 + serial[0], salt=3)

    def at(hour: int) -> int:
        return ms(START + timedelta(hours=hour, seconds=rnd.randrange(3600)))

    first = by_hour[0]
    first.append(
        _line(
            tx(),
            at(0),
            org,
            "[]",
            "[]",
            tx_type=103,
            extra='{"image":"registry/election-contract:1","imageHash":"abc"}',
        )
    )
    first.append(_line(tx(), at(0), org, _params("addMainKey", '{"key":"mainKey","stringValue":"k"}'), "[]"))
    voters = plan.voters_per_constituency
    hashes = json.dumps(json.dumps([f"h{i}" for i in range(3)]))
    first.append(
        _line(
            tx(),
            at(0),
            org,
            _params(
                "addVotersList",
                f'{{"key":"userIdHashes","stringValue":{hashes}}}',
                f'{{"key":"votersCount","intValue":{int(voters * 1.6)}}}',
            ),
            "[]",
        )
    )
    first.append(_line(tx(), at(0), org, _params("startVoting"), "[]"))
    for v in range(voters):
        h_issue = min(plan.hours - 1, int(rnd.triangular(0, plan.hours, plan.hours * 0.3)))
        h_vote = min(plan.hours - 1, h_issue + (0 if rnd.random() < 0.8 else 1))
        user = f"{index:05d}{v:08d}"
        data = json.dumps(json.dumps([{"userId": user, "maskedSig": pool[v % 4000 : v % 4000 + 128]}]))
        by_hour[h_issue].append(
            _line(
                tx(),
                at(h_issue),
                org,
                _params("blindSigIssue", f'{{"key":"data","stringValue":{data}}}'),
                f'[{{"key":"BLINDSIG_{user}","boolValue":true}}]',
            )
        )
        key = b58(index * 10_000_000 + v, salt=4)
        n_votes = 2 if rnd.random() < 0.03 else 1
        for k in range(n_votes):
            vote_id = tx()
            off = rnd.randrange(4096)
            rejected = rnd.random() < 0.004
            diff = (
                f'[{{"key":"FAIL_{key[:10]}_{vote_id}_vote","stringValue":"verification failed"}}]'
                if rejected
                else f'[{{"key":"VOTE_{key[:20]}","stringValue":"{vote_id}"}}]'
            )
            line = _line(
                vote_id,
                at(min(plan.hours - 1, h_vote + k)),
                key,
                _params(
                    "vote",
                    f'{{"key":"vote","binaryValue":"{pool[off : off + ballot]}"}}',
                    f'{{"key":"blindSig","binaryValue":"{pool[off + 7 : off + 351]}"}}',
                ),
                diff,
            )
            by_hour[min(plan.hours - 1, h_vote + k)].append(line)
            if rnd.random() < 0.0005:  # rolled back in the next hour's file
                by_hour[min(plan.hours - 1, h_vote + k + 1)].append(line[:-1] + "-1\n")
            if rnd.random() < 0.001:  # exported again in the next hour's file (overlap)
                by_hour[min(plan.hours - 1, h_vote + k + 1)].append(line)
        if rnd.random() < 0.0002:
            by_hour[h_vote].append("broken;line;without;enough;fields\n")
            stats.malformed += 1
    by_hour[plan.hours - 1].append(
        _line(tx(), ms(START + timedelta(hours=plan.hours) - timedelta(seconds=1)), org, _params("finishVoting"), "[]")
    )
    for hour, lines in by_hour.items():
        if not lines:
            continue
        moment = START + timedelta(hours=hour)
        name = f"{contract}_{moment:%Y-%m-%d}_{moment:%H}00-{(moment + timedelta(hours=1)):%H}00.csv"
        text = "".join(lines)
        Path(out_dir, name + ".part").write_text(text, encoding="utf-8")
        os.replace(Path(out_dir, name + ".part"), Path(out_dir, name))
        stats.files += 1
        stats.lines += len(lines)
        stats.bytes += len(text)
    return stats


def write_reference(plan: Plan, ref_dir: Path) -> None:
    ref_dir.mkdir(parents=True, exist_ok=True)
    (ref_dir / "elections.csv").write_text(
        "id,name,country,type,start_date,end_date,timezone,status,description\n"
        f"bench,National benchmark election,Exampleland,parliamentary,2024-09-06T08:00:00,"
        f"{(START + timedelta(hours=plan.hours + 3)):%Y-%m-%dT%H:%M:%S},Europe/Moscow,active,generated\n"
    )
    rows = "".join(
        f"{b58(i, salt=1)},bench,Constituency {i},Region {i % 85},urban,{int(plan.voters_per_constituency * 1.6)},active\n"
        for i in range(plan.constituencies)
    )
    (ref_dir / "constituencies.csv").write_text("id,election_id,name,region,type,registered_voters,status\n" + rows)


def generate(plan: Plan, input_dir: Path, ref_dir: Path, workers: int = 2) -> GenStats:
    input_dir.mkdir(parents=True, exist_ok=True)
    write_reference(plan, ref_dir)
    total = GenStats()
    with multiprocessing.get_context("fork").Pool(workers) as pool:
        for s in pool.imap_unordered(
            generate_constituency, [(i, plan, str(input_dir)) for i in range(plan.constituencies)], chunksize=4
        ):
            total.lines += s.lines
            total.bytes += s.bytes
            total.files += s.files
            total.malformed += s.malformed
    return total


def incremental_file(
    input_dir: Path, contract_index: int, lines: int, hour: int, ballot_chars: int = BALLOT_CHARS
) -> Path:
    """One new hourly export of ``lines`` votes and bulletins for an existing contract."""
    rnd = random.Random(99)
    contract, org = b58(contract_index, salt=1), b58(contract_index, salt=2)
    pool = base64.b64encode(rnd.randbytes(ballot_chars + 4096)).decode()
    moment = START + timedelta(hours=hour)
    out = []
    for n in range(lines // 2):
        t = ms(moment + timedelta(seconds=n % 3600))
        user = f"late{n:08d}"
        data = json.dumps(json.dumps([{"userId": user, "maskedSig": pool[:128]}]))
        out.append(
            _line(
                f"late-b-{n:08d}-{uuid.uuid4().hex[:20]}",
                t,
                org,
                _params("blindSigIssue", f'{{"key":"data","stringValue":{data}}}'),
                "[]",
            )
        )
        off = rnd.randrange(4096)
        out.append(
            _line(
                f"late-v-{n:08d}-{uuid.uuid4().hex[:20]}",
                t + 500,
                f"latekey{n:08d}",
                _params("vote", f'{{"key":"vote","binaryValue":"{pool[off : off + ballot_chars]}"}}'),
                "[]",
            )
        )
    path = input_dir / f"{contract}_{moment:%Y-%m-%d}_{moment:%H}00-late.csv"
    path.write_text("".join(out), encoding="utf-8")
    return path


# --------------------------------------------------------------------------------------
# The pipeline, stage by stage
# --------------------------------------------------------------------------------------


@dataclass
class Workspace:
    root: Path
    db_url: str
    input_dir: Path = field(init=False)
    processed_dir: Path = field(init=False)
    quarantine_dir: Path = field(init=False)
    reference_dir: Path = field(init=False)
    duckdb_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.input_dir = self.root / "input"
        self.processed_dir = self.root / "processed"
        self.quarantine_dir = self.root / "quarantine"
        self.reference_dir = self.root / "reference"
        self.duckdb_path = self.root / "warehouse.duckdb"
        for d in (self.input_dir, self.processed_dir, self.quarantine_dir, self.reference_dir):
            d.mkdir(parents=True, exist_ok=True)


def run_chain(
    ws: Workspace, results: list[Measure], label: str, settings: Any, duckdb_memory_limit: str | None = None
) -> dict[str, Any] | None:
    """One Dagster run's stages, each measured (see :func:`_chain`). A stage that raises is a
    result too: it is recorded as FAILED and None is returned."""
    try:
        return _chain(ws, results, label, settings, duckdb_memory_limit)
    except Exception as exc:
        reason = " ".join(str(exc).split())[:160]
        results.append(Measure(f"{label}: FAILED", note=f"{type(exc).__name__}: {reason}"))
        print(results[-1].line(), flush=True)
        return None


def _verdicts(m: Measure, verdicts: list[tuple[str, Any]], *, blocking: bool = True) -> bool:
    """Note the checks' outcome on ``m`` (with the figures of a failed blocking check)."""
    passed = all(v.passed for _, v in verdicts)
    failed = [f"{name}: {v.summary}" + (f" {v.figures}" if blocking else "") for name, v in verdicts if not v.passed]
    m.note = "passed" if passed else ("FAILED: " if blocking else "reported (not blocking): ") + "; ".join(failed)
    return passed


def _total(results: list[Measure], since: int, name: str, rows: int, seconds: float) -> Measure:
    total = Measure(name, rows, seconds, max((m.peak_bytes for m in results[since:]), default=0))
    results.append(total)
    print(total.line(), flush=True)
    return total


def _chain(
    ws: Workspace, results: list[Measure], label: str, settings: Any, duckdb_memory_limit: str | None
) -> dict[str, Any]:
    """The assets of ``election_pipeline_job`` in the order one run executes them
    (``definitions.py``, ``defs/assets.py``, ``defs/checks.py``, ``defs/report_assets.py``),
    with the same calls and settings."""
    from election_pipeline.analytics.raw_store import open_warehouse
    from election_pipeline.db.models import utcnow
    from election_pipeline.db.session import get_engine, upgrade_database
    from election_pipeline.stages import quality
    from election_pipeline.stages.alerts import publish_alerts
    from election_pipeline.stages.election_metrics import publish_election_metrics
    from election_pipeline.stages.hourly import publish_hourly_stats
    from election_pipeline.stages.ingest_files import DropFolders, ingest_folder, ready_files
    from election_pipeline.stages.metrics import publish_metrics
    from election_pipeline.stages.publish import publish_file_records, publish_transactions
    from election_pipeline.stages.reference import load_reference
    from election_pipeline.stages.report import write_reports

    engine = get_engine(ws.db_url)
    every = settings.full_check_every_minutes
    thresholds = settings.thresholds()
    figures: dict[str, Any] = {"checks_passed": True}
    first = len(results)
    started = time.perf_counter()
    try:
        # reference_data (the resource upgrades the schema on first use)
        with measured(results, f"{label}: reference_data (schema + reference)") as m:
            upgrade_database(engine)
            ref = load_reference(ws.reference_dir, engine)
            m.rows = ref.constituencies
        files = ready_files(ws.input_dir, 0, now=time.time() + 60)
        with open_warehouse(ws.duckdb_path, memory_limit=duckdb_memory_limit) as duck:
            # raw_transactions: ingest_folder (DuckDB only), then publish_file_records
            raw_first = len(results)
            raw_started = time.perf_counter()
            with measured(results, f"{label}: raw_transactions: ingest_folder ({len(files)} files)") as m:
                summary = ingest_folder(
                    files,
                    duck=duck,
                    folders=DropFolders(ws.input_dir, ws.processed_dir, ws.quarantine_dir),
                    batch_size=settings.batch_size,
                    zip_max_total_bytes=settings.zip_max_total_bytes,
                    zip_max_ratio=settings.zip_max_ratio,
                )
                m.rows = summary.transactions + summary.rejected_lines
                m.note = (
                    f"{summary.new_transactions:,} new, {summary.rejected_lines} rejected lines, "
                    f"{summary.count('failed')} files failed"
                )
            figures["ingest"] = summary
            figures["ingest_seconds"] = m.seconds
            with measured(results, f"{label}: raw_transactions: publish_file_records") as m:
                records = publish_file_records(duck, engine)
                m.rows = records.jobs + records.rejected_rows
                m.note = f"{records.jobs:,} jobs, {records.rejected_rows:,} rejected lines"
            raw = _total(
                results,
                raw_first,
                f"{label}: raw_transactions (both)",
                summary.transactions + summary.rejected_lines,
                time.perf_counter() - raw_started,
            )
            figures["raw_seconds"] = raw.seconds
            # hourly_stats, and its two blocking checks, in the same step
            with measured(results, f"{label}: hourly_stats") as m:
                hourly = publish_hourly_stats(duck, engine)
                m.rows = hourly.rows
                m.note = f"{hourly.inserted:,} inserted, {hourly.updated:,} updated, {hourly.deleted:,} removed"
            with measured(results, f"{label}: hourly_stats checks (2 blocking)") as m:
                hourly_checks = [
                    (
                        "hourly_totals_reconcile",
                        quality.hourly_totals_reconcile(duck, engine, full_every_minutes=every),
                    ),
                    (
                        "every_transaction_in_a_known_hour",
                        quality.every_transaction_in_a_known_hour(duck, engine, full_every_minutes=every),
                    ),
                ]
                m.rows = int(hourly_checks[0][1].figures.get("raw_standing_transactions", 0))
                figures["checks_passed"] &= _verdicts(m, hourly_checks)
            with measured(results, f"{label}: constituency_metrics") as m:
                metrics = publish_metrics(duck, engine, thresholds, now=utcnow())
                m.rows = len(metrics.frame)
                m.note = f"{len(metrics.findings)} findings"
        with measured(results, f"{label}: alerts") as m:
            alerts = publish_alerts(engine, metrics.findings)
            m.rows = len(metrics.findings)
            m.note = f"{alerts.created} created, {alerts.updated} updated"
        figures["to_alerts"] = _total(
            results, first, f"{label}: FILES TO ALERTS, total", summary.transactions, time.perf_counter() - started
        )
        with open_warehouse(ws.duckdb_path, memory_limit=duckdb_memory_limit) as duck:
            with measured(results, f"{label}: operational_transactions (publish_transactions)") as m:
                published = publish_transactions(duck, engine)
                m.rows = published.transactions
                m.note = f"{published.rolled_back:,} newly rolled back, {published.in_conflict:,} newly in conflict"
            with measured(results, f"{label}: operational_transactions check (1 blocking)") as m:
                twice = quality.no_transaction_counted_twice(duck, engine, full_every_minutes=every)
                m.rows = int(twice.figures.get("standing_duckdb", 0))
                figures["checks_passed"] &= _verdicts(m, [("no_transaction_counted_twice", twice)])
        with measured(results, f"{label}: non-blocking checks (2)") as m:
            warnings = [
                ("participation_at_most_100_percent", quality.participation_at_most_100(engine)),
                ("timestamps_within_voting_window", quality.timestamps_within_voting_window(engine)),
            ]
            _verdicts(m, warnings, blocking=False)
        with measured(results, f"{label}: election_metrics") as m:
            election = publish_election_metrics(engine, thresholds.offline_after_hours)
            m.rows = len(election.rows)
        with measured(results, f"{label}: election_report") as m:
            written = write_reports(engine, ws.root / "reports", thresholds.offline_after_hours)
            m.rows = len(written)
        figures["to_everything"] = _total(
            results,
            first,
            f"{label}: FILES TO EVERYTHING PUBLISHED, total",
            summary.transactions,
            time.perf_counter() - started,
        )
        figures["hourly_frame"] = published_hourly(engine)
    finally:
        engine.dispose()
    return figures


def published_hourly(engine: Any) -> Any:
    """The operational ``hourly_stats`` table, in the floor's columns and order."""
    import pandas as pd
    from sqlalchemy import select

    from election_pipeline.db.models import HourlyStats

    cols = [HourlyStats.bulletins_issued, HourlyStats.votes_cast, HourlyStats.transaction_count]
    with engine.connect() as conn:
        rows = conn.execute(select(HourlyStats.constituency_id, HourlyStats.hour, *cols)).all()
    frame = pd.DataFrame(
        rows, columns=["constituency_id", "hour", "bulletins_issued", "votes_cast", "transaction_count"]
    )
    return frame


def compare_hourly(ours: Any, floor: Any) -> Any:
    """The rows where the pipeline's hourly figures and DuckDB alone's differ (empty: equal)."""
    import pandas as pd

    keys = ["constituency_id", "hour"]
    values = ["bulletins_issued", "votes_cast", "transaction_count"]

    def norm(frame: Any) -> Any:
        f = frame[keys + values].copy()
        f["hour"] = pd.to_datetime(f["hour"], utc=True).dt.tz_localize(None)
        for v in values:
            f[v] = f[v].astype("int64")
        return f

    both = norm(ours).merge(norm(floor), on=keys, how="outer", suffixes=("_pipeline", "_duckdb"), indicator=True)
    differs = both["_merge"] != "both"
    for v in values:
        differs |= both[f"{v}_pipeline"] != both[f"{v}_duckdb"]
    return both[differs].sort_values(keys)


# --------------------------------------------------------------------------------------
# (a) DuckDB alone
# --------------------------------------------------------------------------------------

FLOOR_SQL = r"""
WITH raw AS (
    SELECT column00 AS tx_id, regexp_extract(filename, '([A-Za-z0-9]+)_[^/]*$', 1) AS constituency_id,
           make_timestamp(CAST(column04 AS BIGINT) * 1000) AS ts, column05 AS sender,
           lower(regexp_extract(column08, '"key":"operation","stringValue":"([^"]*)"', 1)) AS op,
           coalesce(column09 LIKE '%"key":"FAIL%', false) AS rejected, coalesce(column11, '') = '-1' AS is_rollback,
           CASE WHEN column08 LIKE '%"stringValue":"blindSigIssue"%' AND NOT coalesce(column09 LIKE '%"key":"FAIL%', false)
                THEN json_array_length(CAST(json_extract_string(column08, '$[1].stringValue') AS JSON)) ELSE 0 END
               AS bulletins,
           column01 AS tx_type, filename
    FROM read_csv('{files}', delim=';', quote='', escape='', header=false, auto_detect=false,
                  columns={cols}, filename=true, ignore_errors=true, null_padding=false)
),
tx AS (
    SELECT * FROM raw WHERE NOT is_rollback AND (op <> '' OR tx_type = '103')
    QUALIFY row_number() OVER (PARTITION BY tx_id ORDER BY filename) = 1
),
standing AS (
    SELECT *, date_trunc('hour', ts) AS hour FROM tx
    WHERE tx_id NOT IN (SELECT tx_id FROM raw WHERE is_rollback)
),
firsts AS (
    SELECT constituency_id, hour,
           row_number() OVER (PARTITION BY constituency_id, sender ORDER BY ts, tx_id) AS nth
    FROM standing WHERE op = 'vote' AND NOT rejected
)
SELECT s.constituency_id, s.hour, sum(s.bulletins) AS bulletins_issued,
       coalesce(max(f.votes), 0) AS votes_cast, count(*) AS transaction_count
FROM standing s
LEFT JOIN (SELECT constituency_id, hour, count(*) FILTER (WHERE nth = 1) AS votes FROM firsts GROUP BY ALL) f
       USING (constituency_id, hour)
GROUP BY ALL ORDER BY 1, 2
"""


def duckdb_floor(input_glob: str, results: list[Measure]) -> Any:
    import duckdb

    cols = "{" + ", ".join(f"'column{i:02d}': 'VARCHAR'" for i in range(12)) + "}"
    with measured(results, "(a) DuckDB alone: read_csv + hourly GROUP BY") as m:
        conn = duckdb.connect(config={"memory_limit": "4GB", "preserve_insertion_order": False})
        frame = conn.execute(FLOOR_SQL.format(files=input_glob, cols=cols)).df()
        conn.close()
        m.rows = int(frame["transaction_count"].sum())
        m.note = f"{len(frame):,} constituency-hours"
    return frame


# --------------------------------------------------------------------------------------
# Databases
# --------------------------------------------------------------------------------------


def pg_database(admin_url: str, name: str, drop: bool = False) -> str:
    import psycopg
    from sqlalchemy.engine import make_url

    url = make_url(admin_url)
    with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False), autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if not drop:
            c.execute(f'CREATE DATABASE "{name}"')
    return url.set(database=name).render_as_string(hide_password=False)


def use_store(ws: Workspace, engine_name: str, pg_admin: str, tag: str, *, reset: bool = True) -> None:
    """Point ``ws`` at this engine's stores (each engine has its own DuckDB file, so with
    ``--keep`` both survive the run); ``reset`` empties them first."""
    ws.duckdb_path = ws.root / f"warehouse-{engine_name}.duckdb"
    if reset:
        for p in ws.root.glob(f"warehouse-{engine_name}.duckdb*"):
            p.unlink()
        if engine_name == "sqlite":
            for p in ws.root.glob("ops.db*"):
                p.unlink()
    if engine_name == "postgresql":
        if reset:
            ws.db_url = pg_database(pg_admin, f"election_bench_{tag}")
        else:
            from sqlalchemy.engine import make_url

            ws.db_url = make_url(pg_admin).set(database=f"election_bench_{tag}").render_as_string(hide_password=False)
    else:
        ws.db_url = f"sqlite:///{ws.root / 'ops.db'}"


def increment_on_kept(
    work: Path, engines: list[str], pg_admin: str, plan: Plan, results: list[Measure], settings: Any, memory: str | None
) -> bool:
    """The +5,000-line hourly file on the stores an earlier ``--keep`` run left in ``work``."""
    ws = Workspace(work / "big", "")
    ws.input_dir = ws.root / "late-input"
    ws.input_dir.mkdir(exist_ok=True)
    ok = True
    for engine_name in engines:
        use_store(ws, engine_name, pg_admin, "big", reset=False)
        if not ws.duckdb_path.exists():
            raise SystemExit(f"{ws.duckdb_path} not found: run with --keep first (same --workdir)")
        incremental_file(ws.input_dir, 0, 5_000, plan.hours - 1, plan.ballot_chars)
        figures = run_chain(ws, results, f"{engine_name}: +5,000 lines on the kept history", settings, memory)
        ok &= figures is not None and figures["checks_passed"]
    return ok


def move_back(ws: Workspace) -> None:
    for p in ws.processed_dir.iterdir():
        os.replace(p, ws.input_dir / p.name)
    for p in ws.quarantine_dir.iterdir():
        os.replace(p, ws.input_dir / p.name)


def disk_check(path: Path, needed: int) -> None:
    usage = shutil.disk_usage(path)
    print(
        f"Disk at {path}: {usage.free / 2**30:,.1f} GiB free of {usage.total / 2**30:,.1f} GiB; "
        f"this run needs about {needed / 2**30:,.1f} GiB",
        flush=True,
    )
    if usage.free < needed * 1.15:
        raise SystemExit(
            f"Not enough free disk space in {path}: {usage.free / 2**30:.1f} GiB free, "
            f"about {needed * 1.15 / 2**30:.1f} GiB needed. Use --workdir elsewhere or fewer --transactions."
        )


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------

#: ``--skip`` names of earlier versions, accepted and ignored (the stages they named are gone).
OLD_SKIPS = {"orm", "parse", "workers"}
#: Average bytes per generated line ~ LINE_BASE_BYTES + ballot_chars / 2 (about half the lines are votes).
LINE_BASE_BYTES = 660


def print_ratios(results: list[Measure], per_engine: dict[str, dict[str, Any]], floor_seconds: float | None) -> None:
    print("\nSide by side (files to alerts / DuckDB alone; ingest throughput)", flush=True)
    for name, figures in per_engine.items():
        lines = figures["ingest"].transactions + figures["ingest"].rejected_lines
        to_alerts = figures["to_alerts"].seconds
        ratio = f"{to_alerts / floor_seconds:6.1f}x DuckDB alone" if floor_seconds else "(floor skipped)"
        print(
            f"  {name:<12} files to alerts {to_alerts:8.1f} s = {ratio}; "
            f"everything published {figures['to_everything'].seconds:8.1f} s; "
            f"ingest_folder {lines / max(figures['ingest_seconds'], 1e-9):>10,.0f} lines/s, "
            f"raw_transactions {lines / max(figures['raw_seconds'], 1e-9):>10,.0f} lines/s",
            flush=True,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=10_000_000, help="transaction lines to generate")
    parser.add_argument("--constituencies", type=int, default=500, help="contracts, one file per contract and hour")
    parser.add_argument("--hours", type=int, default=60, help="voting hours (hourly files per contract)")
    parser.add_argument(
        "--ballot-chars",
        type=int,
        default=BALLOT_CHARS,
        help=f"base64 characters of ballot in each vote line (default {BALLOT_CHARS:,}, as the real export: "
        f"~3,200 bytes a line on average). A line averages about {LINE_BASE_BYTES} + N/2 bytes (the "
        "blind signature and the JSON around it stay), so 300 gives ~810 bytes and 0 the shortest, ~660; "
        "~600 bytes a line is not reachable without shortening the other fields",
    )
    parser.add_argument("--engines", default="sqlite,postgresql", help="operational databases to replay on, in order")
    parser.add_argument(
        "--workdir",
        type=Path,
        default=Path("/var/tmp/election-bench"),
        help="where the files and databases are generated",
    )
    parser.add_argument(
        "--postgres-admin-url",
        default=os.environ.get("ELECTION_BENCH_POSTGRES_URL", DEFAULT_PG),
        help="a PostgreSQL URL allowed to create and drop the benchmark databases",
    )
    parser.add_argument("--batch-size", type=int, default=20_000, help="lines per committed group (as the pipeline)")
    parser.add_argument("--duckdb-memory-limit", default="1GB", help="as ELECTION_DUCKDB_MEMORY_LIMIT")
    parser.add_argument("--orm-sample", type=int, default=0, help=argparse.SUPPRESS)  # gone; old command lines
    parser.add_argument(
        "--small-history",
        type=int,
        default=100_000,
        help="transactions of the small history (same constituencies and hours) the 5,000-line "
        "increment is also timed on",
    )
    parser.add_argument(
        "--skip", default="", help="comma-separated: floor,incremental,small (older names such as orm are ignored)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the generated files and databases")
    parser.add_argument(
        "--increment-only",
        action="store_true",
        help="generate nothing: time the +5,000-line file on the history a --keep run left in --workdir"
        " (same --transactions/--constituencies/--hours/--ballot-chars)",
    )
    parser.add_argument("--json", type=Path, help="also write the figures as JSON here")
    args = parser.parse_args(argv)
    skip = set(filter(None, args.skip.split(",")))
    ignored = skip & OLD_SKIPS
    if ignored:
        print(f"--skip {','.join(sorted(ignored))}: no such stage any more, ignored", flush=True)
    unknown = skip - OLD_SKIPS - {"floor", "incremental", "small"}
    if unknown:
        parser.error(f"--skip: unknown {','.join(sorted(unknown))}")
    if args.ballot_chars < 0:
        parser.error("--ballot-chars must be 0 or more")
    engines = [e.strip() for e in args.engines.split(",") if e.strip()]
    results: list[Measure] = []

    from election_pipeline.settings import load_settings

    # The documented defaults of every other setting (thresholds, zip limits, checks).
    settings = load_settings(batch_size=args.batch_size)
    memory = args.duckdb_memory_limit
    plan = Plan(args.constituencies, args.hours, args.transactions, args.ballot_chars)
    work = args.workdir.absolute()
    work.mkdir(parents=True, exist_ok=True)
    if args.increment_only:
        ok = increment_on_kept(work, engines, args.postgres_admin_url, plan, results, settings, memory)
        print("\nSummary")
        for m in results:
            print(m.line())
        if args.json:
            args.json.write_text(json.dumps([m.__dict__ | {"rate": m.rate} for m in results], indent=2, default=str))
        return 0 if ok else 1
    # The export files once (they are moved, never copied), plus DuckDB and the operational
    # database (~1.4 KB a transaction together). With --keep every engine's stores stay until the end.
    line_bytes = LINE_BASE_BYTES + args.ballot_chars // 2
    disk_check(work, int(args.transactions * (line_bytes + 1_400 * (len(engines) if args.keep else 1))))
    print(
        f"Machine: {os.cpu_count()} CPU cores. Plan: {plan.transactions:,} transactions, "
        f"{plan.constituencies} constituencies x {plan.hours} hours, "
        f"{plan.voters_per_constituency:,} voters per constituency, {plan.ballot_chars:,} ballot characters a vote.",
        flush=True,
    )
    ws = Workspace(work / "big", "")
    failures: list[str] = []
    per_engine: dict[str, dict[str, Any]] = {}
    floor_seconds: float | None = None
    try:
        with measured(results, "generate the election (2 processes)") as m:
            gen = generate(plan, ws.input_dir, ws.reference_dir)
            m.rows = gen.lines
            m.note = (
                f"{gen.files:,} files, {gen.bytes / 2**30:.2f} GiB, {gen.bytes / max(gen.lines, 1):,.0f} bytes a line, "
                f"{gen.malformed} malformed lines"
            )
        print(f"  average line: {gen.bytes / max(gen.lines, 1):,.0f} bytes ({gen.lines:,} lines)", flush=True)

        if "floor" not in skip:
            floor = duckdb_floor(str(ws.input_dir / "*.csv"), results)
            floor_seconds = results[-1].seconds
        for engine_name in engines:
            use_store(ws, engine_name, args.postgres_admin_url, "big")
            label = f"{engine_name}, {plan.transactions / 1e6:g}M"
            figures = run_chain(ws, results, label, settings, memory)
            if figures is None:  # recorded as FAILED; the next engine still runs
                failures.append(f"{label}: a stage failed")
                move_back(ws)
                continue
            per_engine[engine_name] = figures
            if not figures["checks_passed"]:
                failures.append(f"{label}: a blocking check failed")
            if "floor" not in skip:
                differ = compare_hourly(figures["hourly_frame"], floor)
                if differ.empty:
                    print(f"  the pipeline's hourly figures equal DuckDB alone's ({len(floor):,} rows)", flush=True)
                else:
                    failures.append(f"{label}: {len(differ):,} hourly rows differ from DuckDB alone's")
                    print(f"  the pipeline's hourly figures DIFFER FROM DuckDB alone's in {len(differ):,} rows:")
                    print(differ.head(50).to_string(index=False), flush=True)
            if "incremental" not in skip:
                incremental_file(ws.input_dir, 0, 5_000, plan.hours - 1, plan.ballot_chars)
                label = f"{engine_name}: +5,000 lines on {plan.transactions / 1e6:g}M"
                late = run_chain(ws, results, label, settings, memory)
                if late is None or not late["checks_passed"]:
                    failures.append(f"{label}: a stage or blocking check failed")
            move_back(ws)
            for p in ws.input_dir.glob("*-late*"):
                p.unlink()

        if "small" not in skip:
            # The same constituencies and hours with fewer transactions: only the history's
            # size differs from the large run.
            small_plan = Plan(args.constituencies, args.hours, args.small_history, args.ballot_chars)
            small = Workspace(work / "small", "")
            generate(small_plan, small.input_dir, small.reference_dir)
            for engine_name in engines:
                use_store(small, engine_name, args.postgres_admin_url, "small")
                label = f"{engine_name}, {args.small_history:,} history"
                history = run_chain(small, results, label, settings, memory)
                if history is None or not history["checks_passed"]:
                    failures.append(f"{label}: a stage or blocking check failed")
                else:
                    incremental_file(small.input_dir, 0, 5_000, small_plan.hours - 1, plan.ballot_chars)
                    label = f"{engine_name}: +5,000 lines on {args.small_history:,}"
                    late = run_chain(small, results, label, settings, memory)
                    if late is None or not late["checks_passed"]:
                        failures.append(f"{label}: a stage or blocking check failed")
                move_back(small)
                for p in small.input_dir.glob("*-late*"):
                    p.unlink()
    finally:
        if not args.keep:
            shutil.rmtree(work / "big", ignore_errors=True)
            shutil.rmtree(work / "small", ignore_errors=True)
            if "postgresql" in engines:
                for tag in ("big", "small"):
                    try:
                        pg_database(args.postgres_admin_url, f"election_bench_{tag}", drop=True)
                    except Exception as exc:
                        print(f"could not drop election_bench_{tag}: {exc}")
            print(f"Generated data removed from {work}.")

    print("\nSummary")
    for m in results:
        print(m.line())
    print_ratios(results, per_engine, floor_seconds)
    if args.json:
        args.json.write_text(json.dumps([m.__dict__ | {"rate": m.rate} for m in results], indent=2, default=str))
    if failures:
        print("\nFAILED:\n  " + "\n  ".join(failures), flush=True)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
