"""Builders of official 12-field export lines and of a test workspace, for tests."""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypedDict

from election_pipeline.detection.thresholds import DetectionThresholds
from election_pipeline.settings import Settings

#: The documented default thresholds, for tests that call the detection stages directly.
THRESHOLDS = DetectionThresholds()


class IngestLimits(TypedDict):
    """The ingest limits, as keyword arguments of ``ingest_file`` / ``ingest_folder``."""

    batch_size: int
    zip_max_total_bytes: int
    zip_max_ratio: int


#: The documented defaults of the ingest limits, for tests that call the ingest directly.
INGEST_LIMITS = IngestLimits(
    batch_size=Settings.model_fields["batch_size"].default,
    zip_max_total_bytes=Settings.model_fields["zip_max_total_bytes"].default,
    zip_max_ratio=Settings.model_fields["zip_max_ratio"].default,
)
#: Minutes between the quality checks' full passes (the documented default).
FULL_CHECK_EVERY_MINUTES: float = Settings.model_fields["full_check_every_minutes"].default

CONTRACT_A = "AsrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHpM"
CONTRACT_B = "BtrxMqfGWsXEgTmvdw95omtQ4Gv1Vi4mGAvLYy23DHpN"
ELECTION_ID = "test-election"


def ms(text: str) -> int:
    """'2024-09-06 07:15:00' (UTC) -> epoch milliseconds."""
    return int(datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp() * 1000)


def export_line(
    tx_id: str,
    operation: str | None,
    ts: int,
    sender: str = "sender",
    params: list[dict] | None = None,
    diff: list[dict] | None = None,
    rollback: bool = False,
    tx_type: int = 104,
) -> str:
    entries = ([{"key": "operation", "stringValue": operation}] if operation else []) + (params or [])
    return ";".join(
        [
            tx_id,
            str(tx_type),
            "sig" + tx_id,
            "4",
            str(ts),
            sender,
            "0",
            "",
            json.dumps(entries),
            json.dumps(diff or []),
            json.dumps({"contractVersion": 1}),
            "-1" if rollback else "",
        ]
    )


def issue(tx_id: str, ts: int, bulletins: int, rejected: bool = False) -> str:
    data = json.dumps([{"userId": f"u{tx_id}{i}", "maskedSig": f"s;{i}"} for i in range(bulletins)])
    diff = [{"key": f"FAIL_{tx_id}_blindSig", "stringValue": "bad"}] if rejected else []
    return export_line(tx_id, "blindSigIssue", ts, "org", [{"key": "data", "stringValue": data}], diff)


def vote(tx_id: str, ts: int, voter: str, rejected: bool = False) -> str:
    diff = (
        [{"key": f"FAIL_addr_{tx_id}_vote", "stringValue": "bad"}]
        if rejected
        else [{"key": f"VOTE_{voter}", "binaryValue": "QkFMTE9U" * 50}]
    )
    return export_line(tx_id, "vote", ts, voter, [{"key": "vote", "binaryValue": "QkFMTE9U" * 50}], diff)


@dataclass
class Workspace:
    root: Path

    @property
    def input(self) -> Path:
        return self.root / "input"

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "input_dir": str(self.root / "input"),
            "reference_dir": str(self.root / "reference"),
            "processed_dir": str(self.root / "processed"),
            "quarantine_dir": str(self.root / "quarantine"),
            "database_url": f"sqlite:///{self.root / 'ops.db'}",
            "duckdb_path": str(self.root / "warehouse.duckdb"),
            "elections_dir": str(self.root / "elections"),
            "file_settle_seconds": 0.0,
            "sensor_interval_seconds": 1,
            "schedule_cron": "*/15 * * * *",
            "batch_size": 1000,
            "zip_max_total_bytes": 10 * 1024**2,
            "zip_max_ratio": 200,
            "reports_dir": str(self.root / "reports"),
        }
        values.update(overrides)
        return Settings(**values)

    def environment(self, dagster_home: Path, **overrides: Any) -> dict[str, str]:
        """The ``ELECTION_*`` variables (and ``DAGSTER_HOME``) of :meth:`settings`, for the
        command line run in this workspace."""
        s = self.settings(**overrides)
        names = ("input_dir", "reference_dir", "processed_dir", "quarantine_dir", "database_url", "duckdb_path")
        env = {Settings.env_name(name): str(getattr(s, name)) for name in (*names, "elections_dir")}
        env[Settings.env_name("file_settle_seconds")] = str(s.file_settle_seconds)
        env["DAGSTER_HOME"] = str(dagster_home)
        return env

    def drop(self, name: str, lines: list[str]) -> Path:
        self.input.mkdir(parents=True, exist_ok=True)
        path = self.input / name
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        return path

    def write_reference(self, registered: dict[str, int]) -> None:
        ref = self.root / "reference"
        ref.mkdir(parents=True, exist_ok=True)
        (ref / "elections.csv").write_text(
            "id,name,country,type,start_date,end_date,timezone,status,description\n"
            f"{ELECTION_ID},Test election,Exampleland,local,2024-09-06T08:00:00+03:00,"
            "2024-09-08T20:00:00+03:00,Europe/Moscow,active,for tests\n"
        )
        rows = "".join(
            f"{cid},{ELECTION_ID},District {i},North,urban,{n},active\n"
            for i, (cid, n) in enumerate(registered.items())
        )
        (ref / "constituencies.csv").write_text("id,election_id,name,region,type,registered_voters,status\n" + rows)


def make_workspace(root: Path) -> Workspace:
    for sub in ("input", "processed", "quarantine", "reference"):
        (root / sub).mkdir(parents=True, exist_ok=True)
    return Workspace(root)
