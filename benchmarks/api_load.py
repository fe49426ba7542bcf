"""Load benchmark of the HTTP API: requests per second and p50/p99 latency of the dashboard
summary, an election's metrics, a constituency's hourly stats and the alert list, at 1, 8
and 32 concurrent clients.

The command starts ``election-pipeline serve`` (the real server, uvicorn, one process) on a
free port of 127.0.0.1 against an existing operational database (``--database-url``, default
``ELECTION_DATABASE_URL``: point it at the stores of a run, e.g. the 1 M-transaction run of
``benchmarks/scale.py --keep``), creates an observer token for the run (revoked at the end),
picks the election and the constituency with the most transactions, and then, per endpoint
and per number of clients, lets that many threads (one ``httpx.Client`` each) send requests
back to back for ``--seconds`` seconds after a short warm-up. Each request reads the figures
(no ``If-None-Match``), unless ``--etag`` is given: then each client sends back the ETag it
got, measuring the 304 path.

Run it from the repository root once ``.venv`` exists::

    .venv/bin/python benchmarks/api_load.py --database-url sqlite:////path/to/ops.db
    .venv/bin/python benchmarks/api_load.py --clients 1 8 --seconds 5 --etag

The server process is stopped when the command ends, also on Ctrl-C or an error.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
from sqlalchemy import func, select
from sqlalchemy.orm import Session

ROOT = Path(__file__).resolve().parents[1]
BIN = ROOT / ".venv" / "bin" / "election-pipeline"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _server(url: str, port: int) -> Iterator[str]:
    env = os.environ | {"ELECTION_DATABASE_URL": url, "ELECTION_API_PORT": str(port), "ELECTION_API_HOST": "127.0.0.1"}
    process = subprocess.Popen(
        [str(BIN), "serve", "--log-level", "warning"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{base}/api/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None:
                raise SystemExit(f"the server stopped: {process.stderr.read().decode() if process.stderr else ''}")
            if time.monotonic() > deadline:
                raise SystemExit("the server did not answer within 60 s")
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()


def _targets(url: str) -> tuple[str, str]:
    """The election and the constituency with the most transactions."""
    from election_pipeline.db.models import Constituency
    from election_pipeline.db.session import get_engine

    with Session(get_engine(url)) as db:
        row = db.execute(
            select(Constituency.id, Constituency.election_id)
            .where(Constituency.election_id.is_not(None))
            .order_by(Constituency.transaction_count.desc(), Constituency.id)
            .limit(1)
        ).first()
        if row is None:
            raise SystemExit("the database holds no constituency of an election: run the pipeline on it first")
        count = db.scalar(select(func.count()).select_from(Constituency))
    print(f"database: {count} constituencies; election {row.election_id}, constituency {row.id}")
    return str(row.election_id), str(row.id)


def _load(base: str, path: str, headers: dict[str, str], clients: int, seconds: float, etag: bool) -> dict:
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors = [0] * clients
    stop = threading.Event()
    measuring = threading.Event()

    def client(i: int) -> None:
        with httpx.Client(base_url=base, headers=headers, timeout=30) as http:
            tag: str | None = None
            while not stop.is_set():
                sent = {"If-None-Match": tag} if etag and tag else {}
                start = time.perf_counter()
                response = http.get(path, headers=sent)
                elapsed = time.perf_counter() - start
                if response.status_code not in (200, 304):
                    errors[i] += 1
                tag = response.headers.get("etag", tag)
                if measuring.is_set():
                    latencies[i].append(elapsed)

    threads = [threading.Thread(target=client, args=(i,), daemon=True) for i in range(clients)]
    for t in threads:
        t.start()
    time.sleep(min(2.0, seconds / 3))  # warm-up
    measuring.set()
    began = time.perf_counter()
    time.sleep(seconds)
    measuring.clear()
    took = time.perf_counter() - began
    stop.set()
    for t in threads:
        t.join()
    flat = sorted(x for part in latencies for x in part)
    if not flat:
        return {"requests": 0, "rps": 0.0, "p50_ms": None, "p99_ms": None, "errors": sum(errors)}
    p99 = flat[min(len(flat) - 1, round(0.99 * (len(flat) - 1)))]
    return {
        "requests": len(flat),
        "rps": len(flat) / took,
        "p50_ms": statistics.median(flat) * 1000,
        "p99_ms": p99 * 1000,
        "errors": sum(errors),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--database-url", default=os.environ.get("ELECTION_DATABASE_URL"))
    parser.add_argument("--clients", type=int, nargs="+", default=[1, 8, 32])
    parser.add_argument("--seconds", type=float, default=10.0, help="measured seconds per endpoint and client count")
    parser.add_argument("--etag", action="store_true", help="send If-None-Match (measure the 304 path)")
    args = parser.parse_args(argv)
    if not args.database_url:
        parser.error("give --database-url or set ELECTION_DATABASE_URL")

    from election_pipeline.api.tokens import create_token, revoke_tokens
    from election_pipeline.db.session import get_engine, upgrade_database

    engine = get_engine(args.database_url)
    upgrade_database(engine)
    election, constituency = _targets(args.database_url)
    with Session(engine) as db:
        row, token = create_token(db, name=f"api-load-benchmark-{os.getpid()}", role="observer")
    headers = {"Authorization": f"Bearer {token}"}
    endpoints = {
        "dashboard summary": "/api/metrics/dashboard/summary",
        "election metrics": f"/api/metrics/election/{election}",
        "hourly stats (constituency)": f"/api/hourly-stats/constituency/{constituency}",
        "alert list": "/api/alerts?limit=100",
    }
    try:
        with _server(args.database_url, _free_port()) as base:
            for name, path in endpoints.items():
                first = httpx.get(base + path, headers=headers, timeout=60)
                if first.status_code != 200:
                    raise SystemExit(f"{name}: {first.status_code} {first.text[:200]}")
            print(
                f"{'endpoint':<28} {'clients':>7} {'requests':>9} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'errors':>6}"
            )
            for name, path in endpoints.items():
                for clients in args.clients:
                    r = _load(base, path, headers, clients, args.seconds, args.etag)
                    p50 = "-" if r["p50_ms"] is None else f"{r['p50_ms']:.1f}"
                    p99 = "-" if r["p99_ms"] is None else f"{r['p99_ms']:.1f}"
                    print(
                        f"{name:<28} {clients:>7} {r['requests']:>9} {r['rps']:>9.1f} {p50:>8} {p99:>8} {r['errors']:>6}",
                        flush=True,
                    )
    finally:
        with Session(engine) as db:
            revoke_tokens(db, row.id)
    return 0


if __name__ == "__main__":
    sys.exit(main())
