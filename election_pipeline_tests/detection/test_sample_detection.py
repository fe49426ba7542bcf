"""Detection on the generated sample election, through the real stages (SQLite + DuckDB in
tmp_path): every planted anomaly is found by the rule expected to find it, and the clean
constituencies raise no warning or critical alert. (The benchmark in
``benchmarks/detection.py`` does the same on larger elections and reports the rates.)"""

from __future__ import annotations

import time
from collections import defaultdict
from pathlib import Path

from sqlalchemy import select

from election_pipeline.analytics.raw_store import open_warehouse
from election_pipeline.db.models import Alert
from election_pipeline.db.session import get_engine, upgrade_database
from election_pipeline.sample.generator import ANOMALY_KINDS, generate_sample
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.ingest_files import DropFolders, ingest_folder, ready_files
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline.stages.publish import publish_file_records
from election_pipeline.stages.reference import load_reference
from election_pipeline_tests.builders import INGEST_LIMITS, THRESHOLDS


def _one_file_per_contract(input_dir: Path) -> None:
    """Concatenate each contract's hourly CSV files (fewer files, same lines: faster)."""
    groups: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(input_dir.glob("*.csv")):
        groups[path.name.split("_", 1)[0]].append(path)
    for contract, paths in groups.items():
        data = b"".join(p.read_bytes() for p in paths)
        for p in paths:
            p.unlink()
        (input_dir / f"{contract}_all.csv").write_bytes(data)


def test_every_planted_anomaly_is_found_and_clean_constituencies_stay_quiet(tmp_path: Path) -> None:
    truth = generate_sample(
        tmp_path / "input", tmp_path / "reference", seed=7, constituencies=10, ballot_bytes=16, anomalies=ANOMALY_KINDS
    )
    _one_file_per_contract(tmp_path / "input")
    folders = DropFolders(tmp_path / "input", tmp_path / "processed", tmp_path / "quarantine")
    for folder in (folders.processed_dir, folders.quarantine_dir):
        folder.mkdir()
    engine = get_engine(f"sqlite:///{tmp_path / 'ops.db'}")
    upgrade_database(engine)
    load_reference(tmp_path / "reference", engine)
    with open_warehouse(tmp_path / "warehouse.duckdb") as duck:
        ingest_folder(
            ready_files(folders.input_dir, settle_seconds=0, now=time.time() + 60),
            duck=duck,
            folders=folders,
            **INGEST_LIMITS,
        )
        publish_file_records(duck, engine)
        publish_hourly_stats(duck, engine)
        metrics = publish_metrics(duck, engine, THRESHOLDS)
    publish_alerts(engine, metrics.findings)

    with engine.connect() as conn:
        rows = conn.execute(select(Alert.constituency_id, Alert.type, Alert.severity, Alert.details)).all()
    by_constituency = defaultdict(list)
    for cid, rule, severity, details in rows:
        by_constituency[cid].append((rule, severity, details))

    assert {a.kind for a in truth.anomalies} == set(ANOMALY_KINDS)
    for anomaly in truth.anomalies:
        for rule in anomaly.rules:
            found = [d for r, _s, d in by_constituency[anomaly.constituency_id] if r == rule]
            if anomaly.start is not None:
                assert anomaly.end is not None  # a planted window has both ends
                found = [
                    d
                    for d in found
                    if d["window_start"] is None
                    or (d["window_start"] < anomaly.end.isoformat() and anomaly.start.isoformat() < d["window_end"])
                ]
            assert found, f"{anomaly.kind} in {anomaly.constituency_id} not found by {rule}"
    for cid in truth.clean_contract_ids:
        loud = [(r, s) for r, s, _d in by_constituency[cid] if s in ("warning", "critical")]
        assert loud == [], (cid, loud)
