"""How fast ``election_pipeline.analytics.line_sql`` stages and classifies export lines,
next to DuckDB alone reading the same files.

    .venv/bin/python benchmarks/line_sql_speed.py [--files 50] [--lines 4000] [--repeat 3] [--workdir DIR]

Writes ``--files`` export files of ``--lines`` lines each: ``vote`` lines (as the stage tests'
``vote`` builder, with a 5,000-character base64 ballot in the ``vote`` binaryValue) and 10 %
``blindSigIssue`` lines of 1-3 bulletins. Then, on a fresh in-memory DuckDB connection each:

1. ``line_sql``: ``create_stage`` + ``stage_text_files`` ("stage"), ``classify``
   ("classify"), and the count of accepted lines (every line must be accepted);
2. the floor: DuckDB alone, ``read_csv`` of the same files into 12 VARCHAR columns
   (``delim=';'``, no quoting) and a ``count(DISTINCT column05)``.

Prints seconds per step (the best of ``--repeat`` runs) and the peak resident memory of this
process. The files go to a temporary folder, deleted at the end; with ``--workdir`` they are
kept there and reused by the next run with the same ``--files`` and ``--lines``. Not a test:
timings depend on the machine.
"""

from __future__ import annotations

import argparse
import base64
import json
import random
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import duckdb  # noqa: E402

from election_pipeline.analytics import line_sql  # noqa: E402

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
BALLOT_CHARS = 5_000
TS0 = 1_725_602_400_000  # 2024-09-06T06:00:00Z
SERVICE_KEY = "ServiceKey1111111111111111111111111111111111"


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _line(tx_id: str, ts: int, sender: str, params: list[dict[str, Any]], diff: list[dict[str, Any]]) -> str:
    fields = [
        tx_id,
        "104",
        "SigSigSig",
        "4",
        str(ts),
        sender,
        "0",
        "",
        _j(params),
        _j(diff),
        '{"contractVersion":1}',
        "",
    ]
    return ";".join(fields)


def write_files(folder: Path, files: int, lines: int, seed: int = 1) -> list[Path]:
    rng = random.Random(seed)
    ballots = [base64.b64encode(rng.randbytes(BALLOT_CHARS * 3 // 4)).decode() for _ in range(64)]
    paths = []
    for f in range(files):
        out = []
        for i in range(lines):
            tx_id = "".join(rng.choices(BASE58, k=44))
            ts = TS0 + f * 3_600_000 + i * 900
            if rng.random() < 0.1:
                data = [{"userId": f"user-{f}-{i}-{k}", "maskedSig": "ab12cd34" * 8} for k in range(rng.randint(1, 3))]
                params = [
                    {"key": "operation", "stringValue": "blindSigIssue"},
                    {"key": "data", "stringValue": _j(data)},
                ]
                diff = [{"key": f"BLINDSIG_{d['userId']}", "boolValue": True} for d in data]
                out.append(_line(tx_id, ts, SERVICE_KEY, params, diff))
            else:
                voter = "".join(rng.choices(BASE58, k=44))
                params = [
                    {"key": "operation", "stringValue": "vote"},
                    {"key": "vote", "binaryValue": rng.choice(ballots)},
                    {"key": "blindSig", "binaryValue": "U0lHTkFUVVJF"},
                ]
                out.append(_line(tx_id, ts, voter, params, [{"key": f"VOTE_addr{voter}", "stringValue": tx_id}]))
        path = folder / f"Ctr{f}_2024-09-06_{f % 24:02d}00.csv"
        path.write_text("\n".join(out) + "\n", encoding="utf-8")
        paths.append(path)
    return paths


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_line_sql(paths: list[Path]) -> dict[str, float]:
    duck = duckdb.connect()
    try:
        t0 = time.perf_counter()
        line_sql.create_stage(duck)
        line_sql.stage_text_files(duck, [(i, str(p)) for i, p in enumerate(paths, start=1)])
        t1 = time.perf_counter()
        line_sql.classify(duck)
        t2 = time.perf_counter()
        row = duck.execute("SELECT count(*) FROM _classified").fetchone()
        accepted = row[0] if row else 0
        left = len(line_sql.unclassified(duck))
        t3 = time.perf_counter()
    finally:
        duck.close()
    return {"stage": t1 - t0, "classify": t2 - t1, "leftover": t3 - t2, "accepted": accepted, "left": left}


def run_floor(paths: list[Path]) -> dict[str, float]:
    duck = duckdb.connect()
    listed = ", ".join(f"'{p}'" for p in paths)
    columns = ", ".join(f"'column{i:02d}': 'VARCHAR'" for i in range(12))
    try:
        t0 = time.perf_counter()
        row = duck.execute(
            f"SELECT count(*), count(DISTINCT column05) FROM read_csv([{listed}], delim=';', quote='', escape='', "
            f"header=false, auto_detect=false, columns={{{columns}}}, ignore_errors=true)"
        ).fetchone()
        t1 = time.perf_counter()
    finally:
        duck.close()
    return {"read_csv": t1 - t0, "rows": row[0] if row else 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=50)
    parser.add_argument("--lines", type=int, default=4000)
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement (the best is printed)")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the files here and reuse them")
    args = parser.parse_args()
    if args.workdir is None:
        workdir = Path(tempfile.mkdtemp(prefix="line_sql_speed_"))
    else:
        workdir = args.workdir / f"{args.files}x{args.lines}"
        workdir.mkdir(parents=True, exist_ok=True)
    marker = workdir / "complete"
    try:
        t0 = time.perf_counter()
        if marker.exists():
            paths = sorted(workdir.glob("*.csv"))
        else:
            paths = write_files(workdir, args.files, args.lines)
            marker.touch()
        size = sum(p.stat().st_size for p in paths)
        print(
            f"{len(paths)} files x {args.lines} lines, {size / 1e6:.0f} MB, ready in {time.perf_counter() - t0:.1f} s"
        )
        runs = [run_line_sql(paths) for _ in range(args.repeat)]
        best = min(runs, key=lambda r: r["stage"] + r["classify"])
        print(
            f"line_sql: stage {best['stage']:.2f} s, classify {best['classify']:.2f} s, "
            f"total {best['stage'] + best['classify']:.2f} s; accepted {best['accepted']:,}, "
            f"left for Python {best['left']:,} (listed in {best['leftover']:.2f} s)"
        )
        floor = min((run_floor(paths) for _ in range(args.repeat)), key=lambda r: r["read_csv"])
        print(f"DuckDB alone: read_csv + count(distinct) {floor['read_csv']:.2f} s ({floor['rows']:,} rows)")
        print(f"peak resident memory {peak_mb():.0f} MB")
        if best["left"]:
            sys.exit("line_sql left generated lines for the Python parser: every one should be accepted")
    finally:
        if args.workdir is None:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
