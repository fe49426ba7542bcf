"""Whole-voting archive benchmark: one contract's whole voting as the official observer format
(``<contractId>.zip`` holding 12-field lines, ``;`` inside JSON written ``\\u003b``), read by
the pipeline and, on the extracted lines, by DuckDB alone.

    .venv/bin/python benchmarks/whole_voting_archive.py                      # 2,000,000 lines
    .venv/bin/python benchmarks/whole_voting_archive.py --transactions 1000000 --vote-bytes 1500

What it does, and prints:

1. generates ``--transactions`` transactions of ``--constituencies`` contracts (the synthetic
   election of ``benchmarks/block_dump.py``: lifecycle, ``blindSigIssue``/``vote`` pairs over
   12 hours, 1% rejected votes, 2% revotes) and writes each contract's lines, in time order,
   straight into its archive ``<contractId>.zip`` (one member ``<contractId>.csv``, deflated);
   each line is the export line the pipeline's own block-dump converter makes of the
   transaction;
2. (a) DuckDB alone, in a subprocess, on the archives' lines extracted to ``.csv`` files
   (DuckDB does not read zip archives; the extraction is not timed): ``read_csv`` with ``;``
   as the only separator (which the official format makes safe), then per contract and UTC
   hour the transactions, the bulletins and the voters by their first accepted vote;
3. (b) the pipeline, in a subprocess: ``election-pipeline run`` on a drop folder holding only
   the archives (``ELECTION_ZIP_MAX_TOTAL_BYTES`` raised to 64 GiB so that a national archive
   fits), every store in a temporary folder;
4. seconds, lines/s and peak resident memory of each, and the figures, side by side with the
   generator's own count, and the git commit.

Run it at two sizes to see whether memory grows with the archive. Not a test: timings depend on
the machine.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(0, str(HERE.parent))

import block_dump as bench  # noqa: E402

from election_pipeline.ingest.block_dump import export_line  # noqa: E402

DUCKDB_SQL = """
WITH lines AS (
    SELECT * FROM read_csv(?, delim = ';', quote = '', escape = '', header = false, filename = true,
        max_line_size = 268435456, null_padding = false,
        columns = {'id': 'VARCHAR', 'type': 'INTEGER', 'signature': 'VARCHAR', 'version': 'VARCHAR',
                   'ts': 'BIGINT', 'sender': 'VARCHAR', 'fee': 'VARCHAR', 'fee_asset': 'VARCHAR',
                   'params': 'VARCHAR', 'diff': 'VARCHAR', 'extra': 'VARCHAR', 'rollback': 'VARCHAR'})
),
tx AS (
    SELECT parse_filename(filename, true) AS contract, id, ts, sender,
           lower(list_filter(from_json(params, '[{"key": "VARCHAR", "stringValue": "VARCHAR"}]'),
                             lambda p: p.key = 'operation')[1].stringValue) AS op,
           list_filter(from_json(params, '[{"key": "VARCHAR", "stringValue": "VARCHAR"}]'),
                       lambda p: p.key = 'data')[1].stringValue AS data,
           len(list_filter(from_json(diff, '[{"key": "VARCHAR"}]'), lambda d: starts_with(d.key, 'FAIL'))) > 0
               AS rejected
    FROM lines
),
counted AS (
    SELECT contract, id, ts, sender, op, rejected, date_trunc('hour', epoch_ms(ts)) AS hour,
           CASE WHEN op = 'blindsigissue' AND NOT rejected THEN json_array_length(data) ELSE 0 END AS bulletins
    FROM tx
),
first_votes AS (
    SELECT contract, arg_min(hour, (ts, id)) AS hour FROM counted
    WHERE op = 'vote' AND NOT rejected GROUP BY contract, sender
),
hourly AS (SELECT contract, hour, count(*) AS transactions, sum(bulletins) AS bulletins
           FROM counted GROUP BY contract, hour),
voters AS (SELECT contract, hour, count(*) AS voters FROM first_votes GROUP BY contract, hour)
SELECT h.contract, h.hour, h.transactions, h.bulletins, coalesce(v.voters, 0)
FROM hourly h LEFT JOIN voters v USING (contract, hour)
"""


def official(line: str) -> str:
    """The line with every ``;`` inside its JSON fields written ``\\u003b``."""
    head = line.split(";", 8)
    middle, _, rollback = head[8].rpartition(";")
    if middle.count(";") == 2:  # no ';' inside the JSON: nothing to write differently
        return line
    decoder = json.JSONDecoder()
    pieces, at = [], 0
    for _ in range(3):
        value, end = decoder.raw_decode(middle, at)
        pieces.append(json.dumps(value, separators=(",", ":"), ensure_ascii=False).replace(";", "\\u003b"))
        at = end + 1
    return ";".join([*head[:8], *pieces, rollback])


def generate(args: argparse.Namespace, folder: Path) -> tuple[list[Path], bench.Truth, float, int]:
    election = bench.Election(args)
    began = time.perf_counter()
    folder.mkdir(parents=True, exist_ok=True)
    archives: dict[str, tuple[zipfile.ZipFile, Any]] = {}
    lines = 0
    try:
        for wrapper in election.transactions():
            converted = export_line(wrapper)
            assert isinstance(converted, tuple), converted
            contract, text = converted
            if contract not in archives:
                zf = zipfile.ZipFile(folder / f"{contract}.zip", "w", zipfile.ZIP_DEFLATED, compresslevel=1)
                archives[contract] = (zf, zf.open(f"{contract}.csv", "w", force_zip64=True))
            archives[contract][1].write((official(text) + "\n").encode("utf-8"))
            lines += 1
    finally:
        for zf, member in archives.values():
            member.close()
            zf.close()
    bench.write_reference(folder.parent / "reference", election)
    return sorted(folder.glob("*.zip")), election.truth, time.perf_counter() - began, lines


def duckdb_alone(csv_paths: list[str], out: Path) -> None:
    import duckdb

    con = duckdb.connect()
    con.execute("SET preserve_insertion_order = false")
    rows = con.execute(DUCKDB_SQL, [csv_paths]).fetchall()
    figures = {
        "hourly_rows": len(rows),
        "transactions": sum(int(r[2]) for r in rows),
        "bulletins": sum(int(r[3]) for r in rows),
        "voters": sum(int(r[4]) for r in rows),
    }
    out.write_text(json.dumps(figures), encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--transactions", type=int, default=2_000_000, help="lines in all the archives")
    parser.add_argument("--constituencies", type=int, default=1, help="contracts (one archive each)")
    parser.add_argument("--vote-bytes", type=int, default=1500, help="bytes of JSON of one vote transaction")
    parser.add_argument("--seed", type=int, default=7, help="random seed")
    parser.add_argument("--keep", action="store_true", help="keep the archives and the stores of the run")
    parser.add_argument("--duckdb-only", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--figures-to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.duckdb_only:
        duckdb_alone(args.duckdb_only, args.figures_to)
        return 0
    root = Path(tempfile.mkdtemp(prefix="archive-bench-", dir=os.environ.get("TMPDIR", "/var/tmp")))
    try:
        return run(args, root)
    finally:
        if args.keep:
            print(f"\nKept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def run(args: argparse.Namespace, root: Path) -> int:
    print(f"Generating {args.transactions:,} lines ({args.constituencies} archive(s), ~{args.vote_bytes:,}-byte votes)")
    archives, truth, gen_seconds, lines = generate(args, root / "archives")
    size = sum(p.stat().st_size for p in archives)
    print(f"  {len(archives)} archive(s), {lines:,} lines, {size / 1e6:,.1f} MB zipped, {gen_seconds:.1f} s")
    print(
        f"  generator's count: {truth.transactions:,} transactions, {truth.bulletins:,} bulletins, "
        f"{truth.voters:,} voters, {truth.revotes:,} revotes, {truth.rejected:,} rejected votes"
    )

    extracted = root / "extracted"
    for path in archives:
        with zipfile.ZipFile(path) as zf:
            zf.extractall(extracted)
    csvs = sorted(str(p) for p in extracted.glob("*.csv"))
    text_mb = sum(Path(p).stat().st_size for p in csvs) / 1e6
    print(f"\n(a) DuckDB alone: read_csv of the extracted lines ({text_mb:,.1f} MB), hourly figures per contract")
    out = root / "duckdb_figures.json"
    duck = bench.measured([sys.executable, __file__, "--duckdb-only", *csvs, "--figures-to", str(out)])
    duck_figures = json.loads(out.read_text(encoding="utf-8")) if duck.exit_code == 0 and out.exists() else {}
    shutil.rmtree(extracted)
    print(
        f"  {duck.seconds:.2f} s (exit {duck.exit_code}), {bench.rate(lines, duck.seconds)} lines/s, "
        f"peak RSS {duck.peak_rss_mb:,.0f} MB"
    )
    if duck.exit_code:
        print(duck.output[-3000:])

    print("\n(b) the pipeline: election-pipeline run on a drop folder holding only the archive(s)")
    work = root / "run"
    drop = work / "input"
    drop.mkdir(parents=True)
    for path in archives:
        os.link(path, drop / path.name)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTION_")}
    env |= {
        "DAGSTER_HOME": str(work / "dagster_home"),
        "ELECTION_INPUT_DIR": str(drop),
        "ELECTION_REFERENCE_DIR": str(root / "reference"),
        "ELECTION_PROCESSED_DIR": str(work / "processed"),
        "ELECTION_QUARANTINE_DIR": str(work / "quarantine"),
        "ELECTION_DATABASE_URL": f"sqlite:///{work / 'election_monitoring.db'}",
        "ELECTION_DUCKDB_PATH": str(work / "warehouse.duckdb"),
        "ELECTION_REPORTS_DIR": str(work / "reports"),
        "ELECTION_ZIP_MAX_TOTAL_BYTES": str(64 * 1024**3),
    }
    pipe = bench.measured([str(bench.PIPELINE), "run", "--log-level", "WARNING"], env=env, cwd=work)
    figures = bench.summary_figures(pipe.output)
    refused = bench.refusal(work / "election_monitoring.db")
    print(
        f"  {pipe.seconds:.2f} s (exit {pipe.exit_code}), {bench.rate(lines, pipe.seconds)} lines/s, "
        f"peak RSS {pipe.peak_rss_mb:,.0f} MB"
    )
    if refused or pipe.exit_code:
        print(f"  refused or failed: {refused}\n{pipe.output[-3000:]}")
    print(f"  figures: {figures}")

    print(f"\nSummary ({lines:,} lines, {len(archives)} archive(s), commit {bench.git_commit()})")
    bench.print_summary(duck, pipe, gen_seconds, [("lines/s", lines)], duck_figures, figures, truth)
    return 0 if duck.exit_code == 0 and pipe.exit_code == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
