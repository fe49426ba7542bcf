"""Shared fixtures for the stage tests: a real workspace in tmp_path, a real SQLite file
(or a PostgreSQL schema: ``db_url``) for the operational database, a real DuckDB file for the raw store, and helpers that build
official 12-field export lines by hand (docs/input-format.md#export-line).

Nothing of ``election_pipeline`` is mocked: every test writes real files into ``input/``
and runs the real stages (``ingest_folder`` -> ``publish_hourly_stats`` -> ``publish_metrics``).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from election_pipeline.analytics.raw_store import open_warehouse
from election_pipeline.db.models import (
    Constituency,
    FileLedgerEntry,
    FileProcessingJob,
    HourlyStats,
    RejectedRow,
    Transaction,
)
from election_pipeline.db.session import create_tables, get_engine
from election_pipeline.stages.hourly import HourlySummary, publish_hourly_stats
from election_pipeline.stages.ingest_files import DropFolders, IngestSummary, ingest_folder, ready_files
from election_pipeline.stages.metrics import MetricsSummary, publish_metrics
from election_pipeline.stages.publish import publish_all
from election_pipeline.stages.reference import load_reference
from election_pipeline_tests.builders import INGEST_LIMITS, THRESHOLDS

# --------------------------------------------------------------------------------------
# Export lines, built by hand
# --------------------------------------------------------------------------------------

EPOCH = datetime(1970, 1, 1)
CALL_EXTRA = {"contractVersion": 1}
SERVICE_KEY = "ServiceKey1111111111111111111111111111111111"

#: Contract ids (letters and digits only, as the file-name rule requires).
C1 = "CtrNorth1"
C2 = "CtrSouth2"
C3 = "CtrEast3"
C4 = "CtrWest4"
CX = "CtrUnknownX"


def hour(h: int, day: int = 6) -> datetime:
    """The start of UTC hour ``h`` on 2024-09-``day`` (naive UTC, as the databases store it)."""
    return datetime(2024, 9, day, h)


def ms(moment: datetime) -> int:
    """Naive-UTC datetime -> epoch milliseconds, by exact integer arithmetic."""
    return (moment - EPOCH) // timedelta(milliseconds=1)


def at(h: int, minute: int = 0, second: int = 0, millis: int = 0, day: int = 6) -> int:
    """Epoch ms of 2024-09-``day`` ``h``:``minute``:``second``.``millis`` UTC."""
    return ms(datetime(2024, 9, day, h, minute, second) + timedelta(milliseconds=millis))


def _j(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def export_line(
    tx_id: str,
    operation: str | None,
    ts: int | str,
    sender: str = SERVICE_KEY,
    *,
    tx_type: int | str = 104,
    params: Iterable[dict[str, Any]] = (),
    diff: Iterable[dict[str, Any]] = (),
    extra: Any = None,
    rollback: str = "",
    version: str = "4",
    signature: str = "SigSigSig",
    fee: str = "0",
    fee_asset: str = "",
) -> str:
    """One official export line:
    nestedTxId;type;signature;version;ts;senderPublicKey;fee;feeAssetId;params;diff;extra;rollback.

    ``operation`` None leaves the ``operation`` param out (a 103 createContract has none).
    """
    entries = ([{"key": "operation", "stringValue": operation}] if operation is not None else []) + list(params)
    if extra is None:
        extra = CALL_EXTRA if str(tx_type) == "104" else {"image": "registry/contract:1", "imageHash": "abc"}
    fields = [
        tx_id,
        str(tx_type),
        signature,
        version,
        str(ts),
        sender,
        fee,
        fee_asset,
        _j(entries),
        _j(list(diff)),
        _j(extra),
        rollback,
    ]
    return ";".join(fields)


def bsi(
    tx_id: str,
    ts: int,
    bulletins: int,
    *,
    rejected: bool = False,
    spelled: str = "blindSigIssue",
    semicolon: bool = False,
) -> str:
    """A blindSigIssue issuing ``bulletins`` bulletins (elements of the ``data`` JSON string)."""
    data = [
        {"userId": f"user-{tx_id}-{i}", "maskedSig": ("ab12;cd34" if semicolon else "ab12cd34") + str(i)}
        for i in range(bulletins)
    ]
    diff: list[dict[str, Any]]
    if rejected:
        diff = [{"key": f"FAIL_{tx_id}_blindSig", "stringValue": "bulletin already issued"}]
    else:
        diff = [{"key": f"BLINDSIG_user-{tx_id}-{i}", "boolValue": True} for i in range(bulletins)]
    return export_line(tx_id, spelled, ts, params=[{"key": "data", "stringValue": _j(data)}], diff=diff)


BALLOT = "QkFMTE9U" * 100  # 800 base64 characters standing in for an encrypted ballot


def vote(tx_id: str, ts: int, voter_key: str, *, rejected: bool = False, spelled: str = "vote") -> str:
    """An encrypted ``vote`` from ``voter_key`` (binary ``vote`` and ``blindSig`` params)."""
    params = [
        {"key": "vote", "binaryValue": BALLOT},
        {"key": "blindSig", "binaryValue": "U0lHTkFUVVJF"},
    ]
    if rejected:
        diff = [{"key": f"FAIL_addr{voter_key}_{tx_id}_vote", "stringValue": "blind signature verification failed"}]
    else:
        diff = [{"key": f"VOTE_addr{voter_key}", "stringValue": tx_id}]
    return export_line(tx_id, spelled, ts, voter_key, params=params, diff=diff)


def add_voters(tx_id: str, ts: int, *, count: int | None = None, hashes: int = 0, rejected: bool = False) -> str:
    """An addVotersList with ``hashes`` userIdHashes and, when given, a ``votersCount``."""
    params: list[dict[str, Any]] = [
        {"key": "userIdHashes", "stringValue": _j([f"hash{tx_id}{i}" for i in range(hashes)])}
    ]
    if count is not None:
        params.append({"key": "votersCount", "intValue": count})
    diff = (
        [{"key": f"FAIL_{tx_id}_voters", "stringValue": "not allowed"}]
        if rejected
        else [{"key": "VOTERS", "intValue": hashes}]
    )
    return export_line(tx_id, "addVotersList", ts, params=params, diff=diff)


def simple(tx_id: str, ts: int, operation: str) -> str:
    """A lifecycle call (startVoting, finishVoting, addMainKey, ...) with no other param."""
    return export_line(tx_id, operation, ts)


def rollback_of(line: str) -> str:
    """The rollback line of ``line``: the same line with ``-1`` in the last field."""
    assert line.endswith(";"), "the rollback field of the original must be empty"
    return line + "-1"


def file_name(contract: str, h: int, day: int = 6, tag: str = "") -> str:
    """``<contract>_<date>_<HH00>-<HH+1 00>[tag].csv`` (docs/input-format.md#file-names)."""
    return f"{contract}_2024-09-{day:02d}_{h:02d}00-{h + 1:02d}00{tag}.csv"


# --------------------------------------------------------------------------------------
# The workspace
# --------------------------------------------------------------------------------------


@dataclass
class Workspace:
    """One isolated pipeline: folders, operational SQLite file and DuckDB file."""

    root: Path
    engine: Engine
    duck_path: Path
    _stack: contextlib.ExitStack = field(default_factory=contextlib.ExitStack)
    duck: Any = None

    @property
    def input_dir(self) -> Path:
        return self.root / "input"

    @property
    def processed_dir(self) -> Path:
        return self.root / "processed"

    @property
    def quarantine_dir(self) -> Path:
        return self.root / "quarantine"

    @property
    def reference_dir(self) -> Path:
        return self.root / "reference"

    @property
    def folders(self) -> DropFolders:
        return DropFolders(self.input_dir, self.processed_dir, self.quarantine_dir)

    # ---- DuckDB --------------------------------------------------------------------

    def open_duck(self) -> None:
        self.duck = self._stack.enter_context(open_warehouse(self.duck_path))

    def reopen_duck(self) -> None:
        """Close the DuckDB connection (what a killed process does: uncommitted work is
        discarded) and open the file again."""
        self.duck.close()
        self.open_duck()

    def close(self) -> None:
        self._stack.close()

    # ---- files -------------------------------------------------------------------------

    def drop(self, name: str, content: Iterable[str] | bytes, *, newline: str = "\n") -> Path:
        """Write a file into ``input/`` (lines joined with ``newline``, trailing newline)."""
        path = self.input_dir / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            text = "".join(line + newline for line in content)
            path.write_bytes(text.encode("utf-8"))
        return path

    def write_reference(self, elections: list[str], constituencies: list[str]) -> None:
        (self.reference_dir / "elections.csv").write_text(
            "id,name,country,type,start_date,end_date,timezone,status,description\n"
            + "".join(r + "\n" for r in elections),
            encoding="utf-8",
        )
        (self.reference_dir / "constituencies.csv").write_text(
            "id,election_id,name,region,type,registered_voters,status\n" + "".join(r + "\n" for r in constituencies),
            encoding="utf-8",
        )
        load_reference(self.reference_dir, self.engine)

    # ---- stages ------------------------------------------------------------------------

    def ingest(self, **kwargs: Any) -> IngestSummary:
        """``ready_files`` (settled: ``now`` one minute ahead) + ``ingest_folder``, then both
        publish steps (what a whole run does before and after the figures)."""
        files = ready_files(self.input_dir, settle_seconds=1, now=time.time() + 60)
        summary = ingest_folder(files, duck=self.duck, folders=self.folders, **{**INGEST_LIMITS, **kwargs})
        publish_all(self.duck, self.engine)
        return summary

    def publish(self) -> tuple[HourlySummary, MetricsSummary]:
        return publish_hourly_stats(self.duck, self.engine), publish_metrics(self.duck, self.engine, THRESHOLDS)

    def run(self, **kwargs: Any) -> IngestSummary:
        summary = self.ingest(**kwargs)
        self.publish()
        return summary

    # ---- reading the operational database ---------------------------------------------

    def hourly(self, constituency_id: str) -> dict[datetime, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(HourlyStats.__table__).where(HourlyStats.constituency_id == constituency_id))
                .mappings()
                .all()
            )
        return {r["hour"]: dict(r) for r in rows}

    def hourly_figures(self, constituency_id: str, *columns: str) -> dict[datetime, tuple]:
        cols = columns or ("transaction_count", "bulletins_issued", "votes_cast", "revote_count", "rejected_count")
        return {h: tuple(r[c] for c in cols) for h, r in self.hourly(constituency_id).items()}

    def constituency(self, constituency_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = (
                conn.execute(select(Constituency.__table__).where(Constituency.id == constituency_id)).mappings().one()
            )
        return dict(row)

    def transactions(self) -> dict[str, dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(Transaction.__table__)).mappings().all()
        return {r["tx_id"]: dict(r) for r in rows}

    def jobs(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(FileProcessingJob.__table__).order_by(FileProcessingJob.started_at))
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def ledger(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            return [dict(r) for r in conn.execute(select(FileLedgerEntry.__table__)).mappings().all()]

    def rejected_rows(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = (
                conn.execute(select(RejectedRow.__table__).order_by(RejectedRow.source, RejectedRow.line_number))
                .mappings()
                .all()
            )
        return [dict(r) for r in rows]

    def count(self, model: Any) -> int:
        with self.engine.connect() as conn:
            return int(conn.execute(select(func.count()).select_from(model)).scalar_one())

    def duck_count(self, table: str) -> int:
        return int(self.duck.execute(f"SELECT count(*) FROM {table}").fetchall()[0][0])

    def snapshot(self) -> dict[str, Any]:
        """Every figure the pipeline publishes, without ids and bookkeeping times."""
        skip = {"id", "created_at", "updated_at"}

        def rows(table: Any) -> list[tuple]:
            with self.engine.connect() as conn:
                found = conn.execute(select(table)).mappings().all()
            return sorted((tuple((k, v) for k, v in sorted(r.items()) if k not in skip) for r in found), key=repr)

        rejected = sorted(
            (r["filename"], r["source"], r["line_number"], r["reason"], r["raw_line"]) for r in self.rejected_rows()
        )
        return {
            "hourly": rows(HourlyStats.__table__),
            "constituencies": rows(Constituency.__table__),
            "transactions": rows(Transaction.__table__),
            "rejected": rejected,
        }


def make_workspace(root: Path, db_url: str | None = None) -> Workspace:
    """A workspace in ``root``; the operational database is ``db_url`` (default: ``root/ops.db``)."""
    for name in ("input", "processed", "quarantine", "reference"):
        (root / name).mkdir(parents=True, exist_ok=True)
    engine = get_engine(db_url or f"sqlite:///{root / 'ops.db'}")
    create_tables(engine)
    ws = Workspace(root=root, engine=engine, duck_path=root / "warehouse.duckdb")
    ws.open_duck()
    return ws


@pytest.fixture()
def ws(tmp_path: Path, db_url: str) -> Iterator[Workspace]:
    """A fresh workspace under ``tmp_path/ws`` (operational database on SQLite, then on PostgreSQL)."""
    workspace = make_workspace(tmp_path / "ws", db_url)
    try:
        yield workspace
    finally:
        workspace.close()


@pytest.fixture()
def workspace_factory(tmp_path: Path, db_url_factory: Any) -> Iterator[Any]:
    """Make more independent workspaces (``factory("clean")``) in one test, on the same engine as ``ws``."""
    made: list[Workspace] = []

    def factory(name: str) -> Workspace:
        workspace = make_workspace(tmp_path / name, db_url_factory(name))
        made.append(workspace)
        return workspace

    try:
        yield factory
    finally:
        for workspace in made:
            workspace.close()
