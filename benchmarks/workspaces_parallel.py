"""Several elections' hourly bursts through the whole pipeline: in parallel (one run per
election workspace, each in a process of its own, all started at once) against one after the
other (the same runs in turn), and against the layout without workspaces (every election in
the shared store, one run), for N = 1, 2, 4 elections.

    .venv/bin/python benchmarks/workspaces_parallel.py                    # N = 1, 2, 4
    .venv/bin/python benchmarks/workspaces_parallel.py --elections 1 2 --constituencies 4
    .venv/bin/python benchmarks/workspaces_parallel.py --staggered        # a small election behind a large one

Each election is a sample election (``election_pipeline.sample``, 6 constituencies by default:
about 290 hourly files and 5,000 transactions), its own seed. Per N and layout, a fresh
folder: the operational database in a new schema of the PostgreSQL server
(``--postgres``, default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``; SQLite takes
one writer at a time, so parallel runs would queue on it), the reference data loaded, a
workspace per election (``workspace add``), the files copied into the workspaces' drop
folders. A run is ``election_pipeline_job`` executed in a child process with the tag
``election/workspace`` (what the daemon launches for the sensor), on an ephemeral Dagster
instance. Printed per N: wall time of each layout, the CPU seconds of its processes (user +
system, from ``os.wait4``) and the CPU use (CPU seconds / wall seconds, at most the cores),
and whether every layout published the same hourly figures. Not a test: timings depend on the
machine.

``--staggered`` measures what the layouts change when bursts do not land together: a large
election's burst (``--large`` constituencies) lands first, a small election's
(``--constituencies``) ``--after`` seconds later, while the first run is busy. With one
shared store the small election's run waits for the large one's to end (the run queue runs
one run per workspace; before workspaces, the DuckDB pool of one slot did the same); with a
workspace each it starts at once. Printed: for each layout, the seconds from each burst's
landing to the end of its run.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import select, text  # noqa: E402

from election_pipeline.db.models import HourlyStats  # noqa: E402
from election_pipeline.db.session import get_engine, upgrade_database  # noqa: E402
from election_pipeline.sample import generate_sample  # noqa: E402
from election_pipeline.stages.reference import load_reference  # noqa: E402
from election_pipeline.workspaces import SHARED, create_workspace, planned_workspace  # noqa: E402

DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
CHILD = (
    "import sys, dagster as dg\n"
    "from election_pipeline.definitions import build_definitions\n"
    "from election_pipeline.defs.automation import JOB_NAME\n"
    "from election_pipeline.workspaces import WORKSPACE_TAG\n"
    "job = build_definitions().resolve_job_def(JOB_NAME)\n"
    "with dg.DagsterInstance.ephemeral() as instance:\n"
    "    r = job.execute_in_process(instance=instance, raise_on_error=False, tags={WORKSPACE_TAG: sys.argv[1]},\n"
    "        run_config={'loggers': {'console': {'config': {'log_level': 'WARNING'}}}})\n"
    "sys.exit(0 if r.success else 1)\n"
)


@dataclass
class Timing:
    wall: float
    cpu: float

    @property
    def use(self) -> float:
        return self.cpu / self.wall if self.wall else 0.0


def _env(root: Path, url: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTION_")}
    env.update(
        {
            "ELECTION_INPUT_DIR": str(root / "input"),
            "ELECTION_REFERENCE_DIR": str(root / "reference"),
            "ELECTION_PROCESSED_DIR": str(root / "processed"),
            "ELECTION_QUARANTINE_DIR": str(root / "quarantine"),
            "ELECTION_REPORTS_DIR": str(root / "reports"),
            "ELECTION_DUCKDB_PATH": str(root / "warehouse.duckdb"),
            "ELECTION_ELECTIONS_DIR": str(root / "elections"),
            "ELECTION_DATABASE_URL": url,
            "ELECTION_FILE_SETTLE_SECONDS": "0",
        }
    )
    return env


def _run_all(tags: list[str], env: dict[str, str], parallel: bool, log: Path) -> Timing:
    """The job for each workspace tag, in child processes (all at once, or in turn)."""
    started = time.perf_counter()
    cpu = 0.0
    with open(log, "ab") as out:

        def launch(tag: str) -> subprocess.Popen:
            return subprocess.Popen(
                [sys.executable, "-c", CHILD, tag], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
            )

        def reap(proc: subprocess.Popen) -> None:
            nonlocal cpu
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            cpu += usage.ru_utime + usage.ru_stime
            if proc.returncode != 0:
                raise SystemExit(f"a run failed (exit {proc.returncode}); see {log}")

        if parallel:
            procs = [launch(t) for t in tags]
            for p in procs:
                reap(p)
        else:
            for t in tags:
                reap(launch(t))
    return Timing(time.perf_counter() - started, cpu)


def _schema_url(base: str) -> tuple[str, str]:
    schema = f"bench_{uuid.uuid4().hex[:12]}"
    with get_engine(base).begin() as conn:
        conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    sep = "&" if "?" in base else "?"
    return f"{base}{sep}options=-csearch_path%3D{schema}", schema


def _drop_schema(base: str, schema: str) -> None:
    with get_engine(base).begin() as conn:
        conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))


def _hourly(url: str) -> list[tuple]:
    with get_engine(url).connect() as conn:
        return sorted(
            tuple(r)
            for r in conn.execute(
                select(
                    HourlyStats.constituency_id, HourlyStats.hour, HourlyStats.votes_cast, HourlyStats.bulletins_issued
                )
            )
        )


def _prepare(root: Path, url: str, samples: list[tuple[Path, Path, str]], workspaces: bool) -> list[str]:
    """A fresh folder for one layout; returns the workspace tags to run."""
    for sub in ("input", "processed", "quarantine", "reference"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    for name in ("elections.csv", "constituencies.csv"):
        lines: list[str] = []
        for _, ref, _ in samples:
            part = (ref / name).read_text().splitlines()
            lines += part if not lines else part[1:]
        (root / "reference" / name).write_text("\n".join(lines) + "\n")
    engine = get_engine(url)
    upgrade_database(engine)
    load_reference(str(root / "reference"), engine)
    tags = []
    for files, _, election in samples:
        target = root / "input"
        if workspaces:
            target = create_workspace(planned_workspace(root / "elections", election, engine)).input_dir
            tags.append(election)
        for path in sorted(files.iterdir()):
            shutil.copy(path, target / path.name)
    return tags or [SHARED]


def _staggered(args: argparse.Namespace, work: Path) -> None:
    """A small election's burst landing while a large election's run is busy (module docstring)."""
    big_files, big_ref = work / "big" / "input", work / "big" / "reference"
    big = generate_sample(big_files, big_ref, seed=200, constituencies=args.large)
    small_files, small_ref = work / "small" / "input", work / "small" / "reference"
    small = generate_sample(small_files, small_ref, seed=201, constituencies=args.constituencies)
    samples = [(big_files, big_ref, big.election_id), (small_files, small_ref, small.election_id)]
    print(
        f"large election: {len(list(big_files.iterdir()))} files; small election: "
        f"{len(list(small_files.iterdir()))} files, landing {args.after:g} s later"
    )
    print("\n| layout | large burst: landing to figures, s | small burst: landing to figures, s |")
    print("|---|---:|---:|")
    for layout in ("one shared store", "a workspace each"):
        url, schema = _schema_url(args.postgres)
        root = work / f"staggered-{layout.replace(' ', '-')}"
        try:
            tags = _prepare(root, url, samples, workspaces=layout != "one shared store")
            env = _env(root, url)
            log = root / "runs.log"
            with open(log, "ab") as out:
                t0 = time.perf_counter()
                first = subprocess.Popen(
                    [sys.executable, "-c", CHILD, tags[0]], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
                )
                time.sleep(args.after)
                if len(tags) == 1:  # one workspace: the second run starts when the first has ended
                    first.wait()
                    done_first = time.perf_counter() - t0
                second = subprocess.Popen(
                    [sys.executable, "-c", CHILD, tags[-1]], env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT
                )
                if len(tags) > 1:
                    first.wait()
                    done_first = time.perf_counter() - t0
                second.wait()
                done_second = time.perf_counter() - t0 - args.after
            if first.returncode or second.returncode:
                raise SystemExit(f"a run failed; see {log}")
            print(f"| {layout} | {done_first:.1f} | {done_second:.1f} |")
        finally:
            get_engine(url).dispose()
            _drop_schema(args.postgres, schema)
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--elections", type=int, nargs="+", default=[1, 2, 4], help="values of N (default 1 2 4)")
    parser.add_argument("--constituencies", type=int, default=6, help="constituencies per election (default 6)")
    parser.add_argument("--postgres", default=DEFAULT_PG, help="PostgreSQL server for the operational database")
    parser.add_argument("--staggered", action="store_true", help="a small election's burst behind a large one's")
    parser.add_argument("--large", type=int, default=60, help="--staggered: constituencies of the large election")
    parser.add_argument("--after", type=float, default=2.0, help="--staggered: seconds between the two bursts")
    args = parser.parse_args(argv)
    print(f"{os.cpu_count()} cores; commit {_commit()}")
    work = Path(tempfile.mkdtemp(prefix="workspaces-bench-"))
    if args.staggered:
        try:
            _staggered(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        return 0
    rows = []
    try:
        most = max(args.elections)
        samples = []
        for i in range(most):
            files, ref = work / f"sample{i}" / "input", work / f"sample{i}" / "reference"
            truth = generate_sample(files, ref, seed=100 + i, constituencies=args.constituencies)
            samples.append((files, ref, truth.election_id))
        per_election = len(list(samples[0][0].iterdir()))
        print(f"each election: {per_election} files, {args.constituencies} constituencies")
        for n in args.elections:
            results: dict[str, Timing] = {}
            figures = {}
            for layout in ("one shared store", "workspaces in turn", "workspaces in parallel"):
                url, schema = _schema_url(args.postgres)
                root = work / f"n{n}-{layout.replace(' ', '-')}"
                try:
                    tags = _prepare(root, url, samples[:n], workspaces=layout != "one shared store")
                    results[layout] = _run_all(tags, _env(root, url), layout.endswith("parallel"), root / "runs.log")
                    figures[layout] = _hourly(url)
                finally:
                    get_engine(url).dispose()
                    _drop_schema(args.postgres, schema)
                    shutil.rmtree(root, ignore_errors=True)
            same = len({tuple(f) for f in figures.values()}) == 1
            for layout, t in results.items():
                rows.append((n, layout, t, same))
                print(
                    f"N={n} {layout:<24} {t.wall:7.1f} s wall {t.cpu:7.1f} s CPU  use {t.use:4.2f}  same figures: {same}"
                )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("\n| N | layout | wall s | CPU s | CPU use | same figures |")
    print("|---:|---|---:|---:|---:|---|")
    for n, layout, t, same in rows:
        print(f"| {n} | {layout} | {t.wall:.1f} | {t.cpu:.1f} | {t.use:.2f} | {'yes' if same else 'NO'} |")
    return 0


def _commit() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        ).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    raise SystemExit(main())
