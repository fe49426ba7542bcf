"""Storage past one writer: several elections' hourly bursts written at once, three layouts
side by side on the same files (docs/PERFORMANCE.md, "Several elections at once").

Today the whole raw store is one DuckDB file, and DuckDB lets one process write a file at a
time, so every election's ingest waits for the others. This benchmark measures what the two
ways past that limit give on this machine, with the ingest's own way of reading text (each
export line read whole by ``read_csv``, one ``INSERT`` and commit per file, then the hourly
figures of the election computed from the lines):

* ``one-store``: one DuckDB file for every election, the elections written one after the
  other (one writer at a time: today's layout);
* ``store-per-election``: one DuckDB file per election, one process per election, all at
  once (each election's own steps still one at a time);
* ``ducklake``: one DuckLake (a PostgreSQL catalog and Parquet data files), one process per
  election appending to the same tables at once. DuckLake needs a DuckDB build that carries
  the extension: the pinned DuckDB 2.0.0 cannot load it offline, so this layout runs in a
  virtual environment of its own with DuckDB 1.5.5 and the extension packages of the
  package registry (:data:`DUCKLAKE_PACKAGES`), created with the project's uv on first use
  (``--ducklake-venv``).

Each election is the sample election (``election_pipeline.sample``, five constituencies,
600-900 voters each, no anomaly, a different seed per election: about 283 hourly ``.csv``
files, 4 MB). Every layout must end with the same figures per election (lines, and the
votes per constituency and hour); the benchmark checks them and prints, for N = 1, 2, 4
elections (``--elections``), the wall time, the CPU time of the writer processes, files per
second, and for DuckLake the Parquet files it left.

Run it from the repository root, with PostgreSQL on 127.0.0.1:5432 (``--postgres``)::

    .venv/bin/python benchmarks/store_layouts.py
    .venv/bin/python benchmarks/store_layouts.py --elections 1 2 4 8 --layouts store-per-election ducklake

Timings are printed for information; nothing here is asserted.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LAYOUTS = ("one-store", "store-per-election", "ducklake")
#: What the DuckLake layout's virtual environment holds (pinned).
DUCKLAKE_PACKAGES = (
    "duckdb==1.5.5",
    "duckdb-extension-ducklake==1.5.5",
    "duckdb-extension-postgres-scanner==1.5.5",
)
UNIT_SEPARATOR = "\x1f"  # a byte no export line holds: each line is read whole
#: DuckLake's retries of a commit that lost the race for the next snapshot.
DUCKLAKE_RETRIES = 100

# --------------------------------------------------------------------------------------
# the writer: one process per election (and layout); imports only duckdb and the stdlib,
# so that it runs under DuckDB 2.0.0 (the project's) and 1.5.5 (DuckLake's) alike
# --------------------------------------------------------------------------------------

SCHEMA = """
CREATE TABLE IF NOT EXISTS {p}raw_lines (election_id VARCHAR, file VARCHAR, line VARCHAR);
CREATE TABLE IF NOT EXISTS {p}hourly (
    election_id VARCHAR, constituency VARCHAR, hour TIMESTAMP, lines BIGINT, votes BIGINT
);
"""

HOURLY = """
INSERT INTO {p}hourly
SELECT election_id, split_part(parse_filename(file), '_', 1) AS constituency,
       date_trunc('hour', make_timestamp(TRY_CAST(split_part(line, ';', 5) AS BIGINT) * 1000)) AS hour,
       count(*) AS lines,
       count(*) FILTER (WHERE line LIKE '%"stringValue":"vote"%') AS votes
FROM {p}raw_lines WHERE election_id = ?
GROUP BY ALL
"""


def _load_ducklake_extensions(con) -> None:  # a duckdb connection of either version
    """LOAD the extensions from their packages (DuckDB would try to download them)."""
    import importlib.util

    for package, name in (
        ("duckdb_extension_postgres_scanner", "postgres_scanner"),
        ("duckdb_extension_ducklake", "ducklake"),
    ):
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            raise SystemExit(f"the package {package} is not installed in {sys.executable}")
        root = Path(next(iter(spec.submodule_search_locations)))
        path = next(root.rglob(f"{name}.duckdb_extension"))
        con.execute(f"LOAD '{path}'")


def run_writer(args: argparse.Namespace) -> int:
    """Write one election's files into the layout's store, then its hourly figures."""
    import duckdb

    files = json.loads(Path(args.files).read_text())
    if args.layout == "ducklake":
        con = duckdb.connect(config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
        _load_ducklake_extensions(con)
        # Writers committing at once race for the next snapshot; DuckLake retries the loser
        # itself when the changes do not conflict (appends never do). Its default, 10 tries,
        # runs out with several writers committing a file each: allow more.
        con.execute(f"SET ducklake_max_retry_count = {DUCKLAKE_RETRIES}")
        con.execute("SET ducklake_retry_wait_ms = 20")
        con.execute("SET ducklake_retry_backoff = 1.2")
        con.execute(f"ATTACH 'ducklake:postgres:{args.catalog}' AS lake (DATA_PATH '{args.data_path}/')")
        prefix = "lake."
    else:
        con = duckdb.connect(args.store)
        prefix = ""
    for statement in SCHEMA.format(p=prefix).split(";"):
        if statement.strip():
            con.execute(statement)
    for path in files:
        con.execute(
            f"INSERT INTO {prefix}raw_lines SELECT ?, filename, line FROM read_csv(?, columns = {{'line': 'VARCHAR'}}, "
            f"delim = '{UNIT_SEPARATOR}', quote = '', escape = '', header = false, filename = true)",
            [args.election, path],
        )
    con.execute(HOURLY.format(p=prefix), [args.election])
    con.close()
    return 0


# --------------------------------------------------------------------------------------
# the benchmark
# --------------------------------------------------------------------------------------


def _elections(work: Path, count: int) -> dict[str, list[str]]:
    """``count`` sample elections' ``.csv`` files (written once per work folder)."""
    sys.path.insert(0, str(ROOT))
    from election_pipeline.sample.generator import generate_sample

    out = {}
    for k in range(count):
        folder = work / "elections" / f"e{k}"
        if not folder.exists():
            generate_sample(
                folder / "input",
                folder / "reference",
                seed=100 + k,
                constituencies=5,
                voters_per_constituency=(600, 900),
                anomalies=[],
            )
        out[f"e{k}"] = sorted(str(p) for p in (folder / "input").rglob("*.csv"))
    return out


def _ducklake_python(venv: Path) -> str:
    python = venv / "bin" / "python"
    if not python.exists():
        uv = ROOT / ".tools" / "uv" / "bin" / "uv"
        uv_cmd = str(uv) if uv.exists() else (shutil.which("uv") or "")
        if not uv_cmd:
            raise SystemExit(
                "uv is needed to create the DuckLake environment (make .venv/bin/election-pipeline fetches it)"
            )
        # --no-config: the project's own uv settings pin DuckDB 2.0.0
        subprocess.run([uv_cmd, "venv", "-q", "--no-config", "--python", "python3.11", str(venv)], check=True)
        subprocess.run(
            [uv_cmd, "pip", "install", "-q", "--no-config", "--python", str(python), *DUCKLAKE_PACKAGES], check=True
        )
    return str(python)


def _psql(postgres: str, sql: str) -> None:
    subprocess.run(["psql", postgres, "-qc", sql], check=True, capture_output=True)


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _figures(layout: str, run_dir: Path, python: str, catalog: str) -> dict[str, list]:
    """Every election's hourly figures as the layout stored them (read back with the
    layout's own DuckDB)."""
    if layout == "ducklake":
        attach = f"ATTACH 'ducklake:postgres:{catalog}' AS lake (DATA_PATH '{run_dir / 'lake'}/')"
        script = (
            f"import duckdb, json, sys; sys.path.insert(0, {str(ROOT / 'benchmarks')!r});"
            "from store_layouts import _load_ducklake_extensions;"
            "con = duckdb.connect(config={'autoinstall_known_extensions': False, 'autoload_known_extensions': False});"
            f"_load_ducklake_extensions(con); con.execute({attach!r});"
            "rows = con.execute('SELECT election_id, constituency, CAST(hour AS VARCHAR), lines, votes FROM lake.hourly "
            "ORDER BY ALL').fetchall(); print(json.dumps(rows))"
        )
        out = subprocess.run([python, "-c", script], check=True, capture_output=True, text=True).stdout
        rows = json.loads(out)
    else:
        import duckdb

        rows = []
        for store in sorted(run_dir.glob("*.duckdb")):
            with duckdb.connect(str(store), read_only=True) as con:
                rows += [
                    list(r)
                    for r in con.execute(
                        "SELECT election_id, constituency, CAST(hour AS VARCHAR), lines, votes FROM hourly ORDER BY ALL"
                    ).fetchall()
                ]
    by_election: dict[str, list] = {}
    for r in sorted(rows, key=lambda r: [str(v) for v in r]):  # a NULL hour: the sample's bad lines
        by_election.setdefault(r[0], []).append(r[1:])
    return by_election


def run_layout(layout: str, elections: dict[str, list[str]], work: Path, python: str, postgres: str) -> dict:
    run_dir = work / "runs" / f"{layout}-{len(elections)}"
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    catalog_db = f"store_layouts_{len(elections)}"
    catalog = f"dbname={catalog_db} host=127.0.0.1 user=postgres"
    if layout == "ducklake":
        _psql(postgres, f"DROP DATABASE IF EXISTS {catalog_db}")
        _psql(postgres, f"CREATE DATABASE {catalog_db}")
        (run_dir / "lake").mkdir()
    commands = []
    for eid, files in elections.items():
        listing = run_dir / f"{eid}.files.json"
        listing.write_text(json.dumps(files))
        store = run_dir / ("all.duckdb" if layout == "one-store" else f"{eid}.duckdb")
        commands.append(
            [
                python,
                __file__,
                "writer",
                "--layout",
                layout,
                "--election",
                eid,
                "--files",
                str(listing),
                "--store",
                str(store),
                "--catalog",
                catalog,
                "--data-path",
                str(run_dir / "lake"),
            ]
        )
    if layout == "ducklake":  # the catalog's tables, made once (two writers making them at once collide)
        empty = run_dir / "init.files.json"
        empty.write_text("[]")
        init = [*commands[0][:6], "init", "--files", str(empty), *commands[0][9:]]
        subprocess.run(init, check=True)
    cpu0, t0 = _children_cpu(), time.perf_counter()
    if layout == "one-store":  # one writer at a time
        for cmd in commands:
            subprocess.run(cmd, check=True)
    else:
        procs = [subprocess.Popen(cmd) for cmd in commands]
        for p in procs:
            p.wait()
        failed = [p.returncode for p in procs if p.returncode]
        if failed:
            raise SystemExit(f"{len(failed)} {layout} writer(s) failed (exit {failed[0]})")
    wall, cpu = time.perf_counter() - t0, _children_cpu() - cpu0
    figures = _figures(layout, run_dir, python, catalog)
    parquet = len(list((run_dir / "lake").rglob("*.parquet"))) if layout == "ducklake" else None
    size = sum(p.stat().st_size for p in run_dir.rglob("*") if p.is_file() and not p.name.endswith(".json"))
    return {"wall": wall, "cpu": cpu, "figures": figures, "parquet": parquet, "bytes": size}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    writer = sub.add_parser("writer", help="(internal) one election's writer process")
    for name in ("--layout", "--election", "--files", "--store", "--catalog", "--data-path"):
        writer.add_argument(name, required=True)
    parser.add_argument(
        "--elections", type=int, nargs="+", default=[1, 2, 4], help="N elections at once (default 1 2 4)"
    )
    parser.add_argument("--layouts", nargs="+", choices=LAYOUTS, default=list(LAYOUTS))
    parser.add_argument("--workdir", type=Path, help="keep the files and stores here (default: a temporary folder)")
    parser.add_argument(
        "--ducklake-venv",
        type=Path,
        default=Path(tempfile.gettempdir()) / "election-ducklake-venv",
        help="virtual environment for the DuckLake layout (created when missing)",
    )
    parser.add_argument(
        "--postgres",
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        help="PostgreSQL server for DuckLake's catalog (a database per run is created there)",
    )
    args = parser.parse_args()
    if args.command == "writer":
        return run_writer(args)

    work = args.workdir or Path(tempfile.mkdtemp(prefix="store-layouts-"))
    work.mkdir(parents=True, exist_ok=True)
    pythons = dict.fromkeys(args.layouts, sys.executable)
    if "ducklake" in args.layouts:
        pythons["ducklake"] = _ducklake_python(args.ducklake_venv)
    print(f"work folder: {work}; {os.cpu_count()} CPU cores")
    print(
        f"{'N':>2} {'layout':<20} {'files':>6} {'wall s':>7} {'CPU s':>7} {'files/s':>8} {'MB':>6} {'parquet':>7} figures"
    )
    for n in args.elections:
        elections = _elections(work, n)
        files = sum(len(f) for f in elections.values())
        reference = None
        for layout in args.layouts:
            r = run_layout(layout, elections, work, pythons[layout], args.postgres)
            same = "same" if reference is None or r["figures"] == reference else "DIFFER"
            reference = reference or r["figures"]
            complete = all(r["figures"].get(e) for e in elections)
            print(
                f"{n:>2} {layout:<20} {files:>6} {r['wall']:>7.1f} {r['cpu']:>7.1f} {files / r['wall']:>8.0f} "
                f"{r['bytes'] / 1e6:>6.1f} {r['parquet'] if r['parquet'] is not None else '':>7} "
                f"{same if complete else 'MISSING'}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
