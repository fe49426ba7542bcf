"""Latency benchmark: from an export file landing in the drop folder to its alert in the
operational database, under the UI and daemon that ``make dev`` starts.

In a fresh temporary work folder (its own ``DAGSTER_HOME`` with the project's
``election_pipeline/dagster.yaml`` copied in, as the Makefile does, and its own ``ELECTION_*``
folders, SQLite operational database and DuckDB file), the command

1. writes reference data (one election, three constituencies);
2. starts ``dg dev -h 127.0.0.1 -p <free port>`` from the repository root, the command of
   ``make dev`` (``dagster dev -w workspace.yaml`` only when ``dg`` cannot be used), in its own
   process group, with the environment pointing at the work folder;
3. waits until the daemon's ``input_folder_sensor`` is ticking;
4. per repeat, delivers one hourly export of a contract that is in no reference file (so the
   pipeline raises ``unknown_constituency`` for it), written under ``<name>.part`` and renamed
   into place (``--copy rename``, the default) or copied straight under its name
   (``--copy plain``), and polls the operational database every 0.1 s (SQLAlchemy, the same
   URL) until the alert row is there;
5. reads from the Dagster instance (the sensor's ticks, the run record and the run's event
   log) where the seconds went, and prints them per repeat, with the median of each phase.

A first file (the warm-up, not in the medians) goes through the same path before the
measured repeats: on a new work folder its run also creates the databases. Between two
repeats the command waits until the previous run has finished and then a random 0 to 5 s,
so the file lands at a random point of the sensor daemon's 5 s loop.

Nothing else differs from ``make dev``: the sensor interval and settle time are the
defaults of ``election_pipeline/settings.py`` unless ``--sensor-interval-seconds`` /
``--file-settle-seconds`` are given. The two schedules are pointed at 1 January 00:00, so
that no scheduled run overlaps the measurement. ``--dequeue-interval-seconds`` adds
``run_queue: dequeue_interval_seconds`` to the copied ``dagster.yaml`` (to try that change).

Run it from the repository root once ``.venv`` exists (``make run`` or ``make test``)::

    .venv/bin/python benchmarks/latency.py                 # 3 repeats
    .venv/bin/python benchmarks/latency.py --repeat 10 --keep

Every process started is stopped (its whole process group) when the command ends, also on
Ctrl-C or an error; the work folder is deleted unless ``--keep`` is given.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BIN = Path(sys.executable).parent
SENSOR_NAME = "input_folder_sensor"
ALERT_RULE = "unknown_constituency"
ELECTION_ID = "latency-election"
KNOWN_CONTRACTS = ("LatKnown1", "LatKnown2", "LatKnown3")
#: The sensor daemon evaluates sensors in a loop of 5 s (dagster/_daemon/sensor.py).
DAEMON_LOOP_SECONDS = 5.0
NEVER = "0 0 1 1 *"
TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}


# --------------------------------------------------------------------------------------
# The work folder and the export files
# --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkFolder:
    root: Path

    @property
    def home(self) -> Path:
        return self.root / "dagster_home"

    @property
    def input(self) -> Path:
        return self.root / "input"

    @property
    def outbox(self) -> Path:
        """Where the files are prepared before they are copied into the drop folder."""
        return self.root / "outbox"

    @property
    def database_url(self) -> str:
        return f"sqlite:///{self.root / 'election_monitoring.db'}"

    def env(self, args: argparse.Namespace) -> dict[str, str]:
        """The environment of ``dg dev``: this process's, without any ``ELECTION_*`` of the
        caller, pointing at the work folder."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("ELECTION_")}
        env.update(
            {
                "DAGSTER_HOME": str(self.home),
                "ELECTION_INPUT_DIR": str(self.input),
                "ELECTION_REFERENCE_DIR": str(self.root / "reference"),
                "ELECTION_PROCESSED_DIR": str(self.root / "processed"),
                "ELECTION_QUARANTINE_DIR": str(self.root / "quarantine"),
                "ELECTION_DATABASE_URL": self.database_url,
                "ELECTION_DUCKDB_PATH": str(self.root / "warehouse.duckdb"),
                "ELECTION_REPORTS_DIR": str(self.root / "reports"),
                "ELECTION_SCHEDULE_CRON": NEVER,
                "ELECTION_RETENTION_CRON": NEVER,
            }
        )
        if args.sensor_interval_seconds is not None:
            env["ELECTION_SENSOR_INTERVAL_SECONDS"] = str(args.sensor_interval_seconds)
        if args.file_settle_seconds is not None:
            env["ELECTION_FILE_SETTLE_SECONDS"] = str(args.file_settle_seconds)
        return env


def prepare(work: WorkFolder, dequeue_interval: int | None) -> None:
    for name in ("dagster_home", "input", "processed", "quarantine", "reference", "reports", "outbox"):
        (work.root / name).mkdir(parents=True, exist_ok=True)
    shutil.copyfile(ROOT / "election_pipeline" / "dagster.yaml", work.home / "dagster.yaml")
    if dequeue_interval is not None:
        with (work.home / "dagster.yaml").open("a", encoding="utf-8") as fh:
            fh.write(f"run_queue:\n  dequeue_interval_seconds: {dequeue_interval}\n")
    (work.root / "reference" / "elections.csv").write_text(
        "id,name,country,type,start_date,end_date,timezone,status,description\n"
        f"{ELECTION_ID},Latency benchmark,Exampleland,local,2024-09-06T08:00:00+03:00,"
        "2024-09-08T20:00:00+03:00,Europe/Moscow,active,benchmarks/latency.py\n",
        encoding="utf-8",
    )
    (work.root / "reference" / "constituencies.csv").write_text(
        "id,election_id,name,region,type,registered_voters,status\n"
        + "".join(f"{c},{ELECTION_ID},District {i},North,urban,1000,active\n" for i, c in enumerate(KNOWN_CONTRACTS)),
        encoding="utf-8",
    )


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


def _line(tx_id: str, operation: str, ts: int, sender: str, params: list[dict], diff: list[dict]) -> str:
    """One line of the official 12-field export (docs/input-format.md#export-line)."""
    entries = [{"key": "operation", "stringValue": operation}, *params]
    fields = [tx_id, "104", "Sig" + tx_id, "4", str(ts), sender, "0", "", _j(entries), _j(diff)]
    return ";".join([*fields, _j({"contractVersion": 1}), ""])


def export_file(work: WorkFolder, voters: int) -> tuple[str, str, Path]:
    """An hourly export of a new contract that no reference file knows: one blindSigIssue
    per voter followed by the voter's vote. Returns (contract, file name, prepared path)."""
    tag = uuid.uuid4().hex[:12]
    contract = f"LatUnknown{tag}"
    start = 1_725_609_600_000 + 8 * 3_600_000  # 2024-09-06 08:00 UTC, inside the voting window
    ballot = "QkFMTE9U" * 100
    lines = []
    for i in range(voters):
        ts = start + i * (3_600_000 // max(voters, 1))
        user = f"user{tag}{i}"
        lines.append(
            _line(
                f"B{tag}{i}",
                "blindSigIssue",
                ts,
                "ServiceKey1111111111111111111111111111111111",
                [{"key": "data", "stringValue": _j([{"userId": user, "maskedSig": f"ab12cd34{i}"}])}],
                [{"key": f"BLINDSIG_{user}", "boolValue": True}],
            )
        )
        lines.append(
            _line(
                f"V{tag}{i}",
                "vote",
                ts + 1_000,
                f"Voter{tag}{i}",
                [{"key": "vote", "binaryValue": ballot}, {"key": "blindSig", "binaryValue": "U0lHTkFUVVJF"}],
                [{"key": f"VOTE_addrVoter{tag}{i}", "stringValue": f"V{tag}{i}"}],
            )
        )
    name = f"{contract}_2024-09-06_0800-0900.csv"
    path = work.outbox / name
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return contract, name, path


def deliver(source: Path, input_dir: Path, how: str) -> float:
    """Copy ``source`` into the drop folder; returns the moment the file appeared under its
    own name (the rename, or the start of a plain copy)."""
    target = input_dir / source.name
    if how == "rename":
        part = input_dir / (source.name + ".part")
        shutil.copyfile(source, part)
        landed = time.time()
        os.rename(part, target)
        return landed
    landed = time.time()
    shutil.copyfile(source, target)
    return landed


# --------------------------------------------------------------------------------------
# dg dev, in its own process group
# --------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def dev_command(port: int) -> list[str]:
    """``make dev``'s command (``dg dev``), or ``dagster dev`` when dg cannot be run."""
    dg = BIN / "dg"
    if dg.exists():
        probe = subprocess.run(
            [str(dg), "--version"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
        )
        if probe.returncode == 0:
            return [str(dg), "dev", "-h", "127.0.0.1", "-p", str(port)]
        print(f"dg is not usable ({probe.stderr.strip()[:200]}); falling back to dagster dev")
    return [str(BIN / "dagster"), "dev", "-h", "127.0.0.1", "-p", str(port), "-w", str(ROOT / "workspace.yaml")]


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of the process group ``pgid``."""
    alive = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != "Z":
            alive.append(int(entry.name))
    return alive


@contextlib.contextmanager
def running(command: list[str], env: dict[str, str], log_path: Path) -> Iterator[subprocess.Popen]:
    """Start ``command`` as the leader of a new session; on exit stop its whole process group
    (SIGTERM, then SIGKILL after 20 s)."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    try:
        yield process
    finally:
        pgid = process.pid
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGTERM)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and (process.poll() is None or _group_members(pgid)):
            time.sleep(0.2)
        if _group_members(pgid) or process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, signal.SIGKILL)
            print(f"dg dev did not stop on SIGTERM within 20 s: killed its process group {pgid}")
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=10)


def log_tail(path: Path, lines: int = 40) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_webserver(process: subprocess.Popen, port: int, log_path: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dg dev exited with {process.returncode}:\n{log_tail(log_path)}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError):
            pass
        time.sleep(0.5)
    raise TimeoutError(f"the webserver did not answer within {timeout:.0f} s:\n{log_tail(log_path)}")


# --------------------------------------------------------------------------------------
# What the Dagster instance recorded
# --------------------------------------------------------------------------------------


class Instance:
    """Reads of the work folder's Dagster instance (``DagsterInstance.get()``)."""

    def __init__(self) -> None:
        import dagster as dg

        self.dg = dg
        self.instance = dg.DagsterInstance.get()

    def sensor_state(self) -> Any | None:
        from dagster._core.scheduler.instigation import InstigatorType

        for state in self.instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
            if state.instigator_name == SENSOR_NAME:
                return state
        return None

    def ticks(self, after: float | None = None) -> list[Any]:
        """The sensor's ticks (oldest first), started after ``after``."""
        state = self.sensor_state()
        if state is None:
            return []
        ticks = self.instance.get_ticks(state.instigator_origin_id, state.selector_id, after=after)
        return sorted(ticks, key=lambda t: t.timestamp)

    def run_status(self, run_id: str) -> str:
        run = self.instance.get_run_by_id(run_id)
        return run.status.value if run is not None else "UNKNOWN"

    def unfinished_runs(self) -> list[str]:
        runs = self.instance.get_runs(limit=50)
        return [r.run_id for r in runs if r.status.value not in TERMINAL]

    def run_record(self, run_id: str) -> Any:
        return self.instance.get_run_record_by_id(run_id)

    def events(self, run_id: str) -> list[Any]:
        return list(self.instance.all_logs(run_id))


def wait_for_sensor_ticks(instance: Instance, process: subprocess.Popen, log_path: Path, timeout: float) -> float:
    """Wait for two sensor ticks after now; returns the seconds between them."""
    since = time.time()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"dg dev exited with {process.returncode}:\n{log_tail(log_path)}")
        ticks = [t for t in instance.ticks(after=since) if t.status.value != "STARTED"]
        if len(ticks) >= 2:
            return ticks[-1].timestamp - ticks[-2].timestamp
        time.sleep(0.5)
    raise TimeoutError(f"the sensor did not tick twice within {timeout:.0f} s:\n{log_tail(log_path)}")


# --------------------------------------------------------------------------------------
# One measurement
# --------------------------------------------------------------------------------------


@dataclass
class Measurement:
    file: str
    lines: int
    landed: float
    alert_seen: float
    run_id: str | None = None
    run_status: str = ""
    marks: list[tuple[str, float]] = field(default_factory=list)
    phases: dict[str, float] = field(default_factory=dict)

    @property
    def total(self) -> float:
        return self.alert_seen - self.landed


def poll_alert(database_url: str, contract: str, timeout: float) -> float:
    """Poll the operational database every 0.1 s until the file's alert row exists; returns
    the time of the query that first saw it."""
    from sqlalchemy import select
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from election_pipeline.db.models import Alert
    from election_pipeline.db.session import get_engine

    engine = get_engine(database_url)
    query = select(Alert.id).where(Alert.type == ALERT_RULE, Alert.constituency_id == contract).limit(1)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with engine.connect() as conn:
                found = conn.execute(query).first()
            seen = time.time()
            if found is not None:
                return seen
        except (OperationalError, ProgrammingError):
            pass  # the schema is created by the first run
        time.sleep(0.1)
    raise TimeoutError(f"no {ALERT_RULE} alert for {contract} within {timeout:.0f} s")


def _look_times(ticks: list[Any], name: str) -> tuple[float | None, Any | None]:
    """The first look of the sensor at ``name`` (from the cursor of the first tick that lists
    it: the time the sensor recorded), and the tick that handed it to a run."""
    first: float | None = None
    requesting = None
    for tick in ticks:
        try:
            cursor = json.loads(tick.cursor or "{}")
        except ValueError:
            continue
        pending = cursor.get("pending", {})
        if first is None and name in pending:
            first = float(pending[name][2])
        if name in cursor.get("requested", {}) and tick.run_ids:
            if first is None:
                first = tick.timestamp
            requesting = tick
            break
    return first, requesting


def explain(instance: Instance, m: Measurement, timeout: float) -> None:
    """Fill ``m`` with where the seconds went, once the file's run has finished."""
    ticks = instance.ticks(after=m.landed - DAEMON_LOOP_SECONDS * 3)
    first_look, requesting = _look_times(ticks, m.file)
    deadline = time.monotonic() + timeout
    while requesting is None and time.monotonic() < deadline:
        time.sleep(0.5)
        first_look, requesting = _look_times(instance.ticks(after=m.landed - DAEMON_LOOP_SECONDS * 3), m.file)
    marks: list[tuple[str, float]] = [("file landed in the drop folder", m.landed)]
    if first_look is not None:
        marks.append(("first sensor look at the file", first_look))
    if requesting is None:
        m.marks = marks + [("alert visible in the operational database", m.alert_seen)]
        return
    marks.append(("sensor tick that requested the run: started", requesting.timestamp))
    if requesting.end_timestamp:
        marks.append(("sensor tick that requested the run: ended", requesting.end_timestamp))
    m.run_id = requesting.run_ids[0]
    while instance.run_status(m.run_id) not in TERMINAL and time.monotonic() < deadline:
        time.sleep(0.5)
    m.run_status = instance.run_status(m.run_id)
    record = instance.run_record(m.run_id)
    marks.append(("run created", record.create_timestamp.timestamp()))
    steps: dict[str, list[float]] = {}
    step_order: list[str] = []
    names = {
        "PIPELINE_ENQUEUED": "run enqueued",
        "PIPELINE_DEQUEUED": "run dequeued",
        "PIPELINE_STARTING": "run launching (RUN_STARTING)",
        "PIPELINE_START": "run started (code loaded, execution begins)",
        "PIPELINE_SUCCESS": "run finished (SUCCESS)",
        "PIPELINE_FAILURE": "run finished (FAILURE)",
    }
    for entry in instance.events(m.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in names:
            marks.append((names[kind], entry.timestamp))
        elif kind == "ENGINE_EVENT" and entry.message and entry.message.startswith("Started process for run"):
            marks.append(("run process up (dagster imported)", entry.timestamp))
        elif kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE") and event.step_key:
            if event.step_key not in steps:
                steps[event.step_key] = []
                step_order.append(event.step_key)
            steps[event.step_key].append(entry.timestamp)
    for key in step_order:
        times = steps[key]
        marks.append((f"step {key}: start", times[0]))
        if len(times) > 1:
            marks.append((f"step {key}: end", times[-1]))
    marks.append(("alert visible in the operational database", m.alert_seen))
    m.marks = sorted(marks, key=lambda mark: mark[1])

    at = dict(marks)
    requested = at.get("sensor tick that requested the run: ended", requesting.timestamp)
    launching = at.get("run launching (RUN_STARTING)")
    started = at.get("run started (code loaded, execution begins)")
    alerts_end = max((steps[k][-1] for k in step_order if k == "alerts"), default=None)
    m.phases = {"sensor looks + settle (landed -> run requested)": requested - m.landed}
    if launching is not None:
        m.phases["run created + queued (-> RUN_STARTING)"] = launching - requested
        if started is not None:
            m.phases["run start: process + code load (-> RUN_START)"] = started - launching
    if started is not None and alerts_end is not None:
        m.phases["work (RUN_START -> alerts step done)"] = alerts_end - started
        m.phases["alerts step end -> alert seen by the poll"] = m.alert_seen - alerts_end
    m.phases["total (landed -> alert visible)"] = m.total


def measure_one(work: WorkFolder, instance: Instance, args: argparse.Namespace) -> Measurement:
    contract, name, source = export_file(work, args.voters)
    lines = 2 * args.voters
    landed = deliver(source, work.input, args.copy)
    seen = poll_alert(work.database_url, contract, args.timeout)
    m = Measurement(file=name, lines=lines, landed=landed, alert_seen=seen)
    explain(instance, m, args.timeout)
    return m


def wait_idle(instance: Instance, timeout: float) -> None:
    """Until no run is queued or in progress (the previous file's run runs on after its alert)."""
    deadline = time.monotonic() + timeout
    while instance.unfinished_runs() and time.monotonic() < deadline:
        time.sleep(0.5)


def show(label: str, m: Measurement) -> None:
    print(f"\n{label}: {m.file} ({m.lines} lines), run {m.run_id or '?'} {m.run_status}")
    previous = m.landed
    for what, moment in m.marks:
        print(f"  {moment - m.landed:+8.2f} s  (+{moment - previous:5.2f})  {what}")
        previous = moment
    print(f"  => {m.total:.2f} s from the file landing to its alert row")


def summarise(measured: list[Measurement]) -> None:
    print(f"\nMedian of {len(measured)} repeat(s):")
    phases = list(measured[0].phases)
    for phase in phases:
        values = [m.phases[phase] for m in measured if phase in m.phases]
        listed = ", ".join(f"{v:.2f}" for v in values)
        print(f"  {statistics.median(values):7.2f} s  {phase}   [{listed}]")


# --------------------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--repeat", type=int, default=3, help="measured files, each a new one (default 3)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="files sent through first, not in the medians (default 1)"
    )
    parser.add_argument(
        "--copy",
        choices=("rename", "plain"),
        default="rename",
        help="rename: write <name>.part, then rename it (default); plain: copy straight under the name",
    )
    parser.add_argument("--voters", type=int, default=1000, help="voters in each file: 2 lines each (default 1000)")
    parser.add_argument("--sensor-interval-seconds", type=int, default=None, help="ELECTION_SENSOR_INTERVAL_SECONDS")
    parser.add_argument("--file-settle-seconds", type=float, default=None, help="ELECTION_FILE_SETTLE_SECONDS")
    parser.add_argument(
        "--dequeue-interval-seconds",
        type=int,
        default=None,
        help="add run_queue.dequeue_interval_seconds to the copied dagster.yaml (Dagster's default: 5)",
    )
    parser.add_argument("--port", type=int, default=None, help="webserver port (default: a free one)")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds to wait for each step (default 300)")
    parser.add_argument("--workdir", type=Path, default=None, help="work folder (default: a new temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (and dg dev's log in it)")
    parser.add_argument("--json", type=Path, default=None, help="also write the measurements to this JSON file")
    args = parser.parse_args(argv)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def _terminate(signum: int, _frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _terminate)
    if args.workdir:
        args.workdir.mkdir(parents=True, exist_ok=True)
        root = Path(tempfile.mkdtemp(prefix="latency-", dir=args.workdir))
    else:
        root = Path(tempfile.mkdtemp(prefix="election-latency-"))
    work = WorkFolder(root)
    try:
        prepare(work, args.dequeue_interval_seconds)
        env = work.env(args)
        os.environ["DAGSTER_HOME"] = str(work.home)  # for DagsterInstance.get() in this process
        port = args.port or free_port()
        command = dev_command(port)
        log_path = root / "dg_dev.log"
        print(f"work folder: {root}")
        print(f"command: (cd {ROOT} && {' '.join(command)})  [log: {log_path}]")
        started = time.monotonic()
        with running(command, env, log_path) as process:
            wait_for_webserver(process, port, log_path, args.timeout)
            instance = Instance()
            cadence = wait_for_sensor_ticks(instance, process, log_path, args.timeout)
            print(
                f"UI up and sensor ticking after {time.monotonic() - started:.1f} s "
                f"(last two ticks {cadence:.1f} s apart); delivering files ({args.copy})"
            )
            results: list[Measurement] = []
            for i in range(args.warmup + args.repeat):
                wait_idle(instance, args.timeout)
                time.sleep(random.uniform(0, DAEMON_LOOP_SECONDS))
                m = measure_one(work, instance, args)
                label = f"warm-up {i + 1}" if i < args.warmup else f"repeat {i - args.warmup + 1}"
                show(label, m)
                if i >= args.warmup:
                    results.append(m)
            wait_idle(instance, args.timeout)
        summarise(results)
        if args.json:
            args.json.write_text(
                json.dumps(
                    [
                        {"file": m.file, "run_id": m.run_id, "total": m.total, "phases": m.phases, "marks": m.marks}
                        for m in results
                    ],
                    indent=2,
                ),
                encoding="utf-8",
            )
        return 0
    finally:
        if args.keep:
            print(f"work folder kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("interrupted: dg dev stopped, work folder removed (unless --keep)", file=sys.stderr)
        sys.exit(130)
