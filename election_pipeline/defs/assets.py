"""The asset graph: reference data → raw transactions → hourly stats → constituency metrics → alerts.

Each asset delegates to a plain stage module (``election_pipeline.stages``) and reports
row counts and a preview in its materialisation metadata.
"""

from collections import Counter

import dagster as dg
from sqlalchemy import func, select

from election_pipeline.db.crud.alert import SEVERITY_ORDER
from election_pipeline.db.models import Alert, RejectedRow, Transaction, utcnow
from election_pipeline.detection.findings import Finding
from election_pipeline.stages import quality
from election_pipeline.stages.alerts import publish_alerts
from election_pipeline.stages.hourly import publish_hourly_stats
from election_pipeline.stages.ingest_files import ingest_folder, ready_files
from election_pipeline.stages.metrics import publish_metrics
from election_pipeline.stages.publish import publish_file_records, publish_transactions
from election_pipeline.stages.reference import load_reference
from election_pipeline.vocabulary import OPEN_STATUSES, Severity
from election_pipeline.workspaces import (
    Forwarded,
    constituency_elections,
    contract_admission,
    forward_to_workspaces,
)

from .metadata import ROW_COUNT, check_result, preview
from .resources import (
    DetectionResource,
    DropFolderResource,
    OperationalDatabaseResource,
    QualityChecksResource,
    WarehouseResource,
)
from .retries import DB_RETRY_POLICY, permanent_db_errors_fail

DUCKDB_POOL = "duckdb"


@dg.asset(group_name="election", kinds={"python", "sql"}, retry_policy=DB_RETRY_POLICY)
@permanent_db_errors_fail
def reference_data(
    context: dg.AssetExecutionContext, drop_folder: DropFolderResource, ops_db: OperationalDatabaseResource
) -> dg.MaterializeResult:
    """Elections and constituencies from ``elections.csv`` and ``constituencies.csv`` in the
    reference folder, validated row by row and upserted into the operational database.
    An invalid row stops the pipeline with a list of every problem (file, line, field)."""
    summary = load_reference(drop_folder.reference_dir, ops_db.engine())
    if not summary.files:
        context.log.warning(
            f"No reference files in {drop_folder.reference_dir}: every contract will be recorded as unknown."
        )
    context.log.info(
        f"Reference data: {summary.elections} elections, {summary.constituencies} constituencies "
        f"({summary.inserted} rows new, {summary.updated} rows updated)"
    )
    return dg.MaterializeResult(
        metadata={
            "elections": summary.elections,
            "constituencies": summary.constituencies,
            "inserted": summary.inserted,
            "updated": summary.updated,
            "files": ", ".join(summary.files) or "none",
        }
    )


class RawTransactionsConfig(dg.Config):
    """``files``: names in the input folder to process (the sensor fills it). Empty: every
    file of the input folder that has not changed for ``ELECTION_FILE_SETTLE_SECONDS``."""

    files: list[str] = []  # noqa: RUF012 (pydantic copies the default)


@dg.asset(
    group_name="election",
    kinds={"duckdb", "python"},
    deps=[reference_data],
    pool=DUCKDB_POOL,
    retry_policy=DB_RETRY_POLICY,
)
@permanent_db_errors_fail
def raw_transactions(
    context: dg.AssetExecutionContext,
    config: RawTransactionsConfig,
    drop_folder: DropFolderResource,
    warehouse: WarehouseResource,
    ops_db: OperationalDatabaseResource,
) -> dg.MaterializeResult:
    """Every transaction of the export files, whole-voting archives and block dumps, read once
    (format and rules: docs/input-format.md).

    New files in the input folder are read and classified by DuckDB (the Python parser reads
    the lines DuckDB leaves) and written to the DuckDB raw store, a group of files per
    transaction; a dump or archive of millions of lines is committed in parts of 500,000
    lines, and counted whole or not at all (docs/architecture.md#large-files-in-parts). Bad lines are kept in ``rejected_rows`` with their reason; a file that cannot
    be used at all is moved to the quarantine folder with a failed FileProcessingJob whose
    details say why. A file or transaction seen before is not counted again. Processed files
    move to the processed folder. Then the file jobs, ledger, rejected lines and new
    constituencies are published to the operational database; the transactions themselves
    are published by ``operational_transactions`` after the alerts.
    """
    workspace, scope = drop_folder.workspace(), drop_folder.scope()
    folders = drop_folder.folders()
    if config.files:
        files = [folders.input_dir / name for name in config.files]
        files = [f for f in files if f.exists() or f.is_symlink()]
    else:
        files = ready_files(folders.input_dir, drop_folder.settle_seconds)
    engine = ops_db.engine()
    known = {} if scope.is_everything else constituency_elections(engine)
    forwarded: list[Forwarded] = []
    if workspace.election is None and scope.separate:  # files of elections that have a workspace
        files, forwarded = forward_to_workspaces(files, known, drop_folder.elections_dir)
        for f in forwarded:
            context.log.info(f"{f.name}: a file of election {f.election}, handed to its workspace ({f.target})")
    context.log.info(
        f"{len(files)} file(s) to process in {folders.input_dir} ({workspace.label}: {scope.describe()}; "
        f"store {warehouse.path})"
    )
    admit = None if scope.is_everything else contract_admission(known, scope)
    with warehouse.connect() as duck:
        summary = ingest_folder(
            files,
            duck=duck,
            folders=folders,
            batch_size=drop_folder.batch_size,
            zip_max_total_bytes=drop_folder.zip_max_total_bytes,
            zip_max_ratio=drop_folder.zip_max_ratio,
            progress=context.log.info,
            admit=admit,
        )
        published = publish_file_records(duck, engine, workspace.election)
        stored = duck.execute("SELECT count(*) FROM raw_transactions").fetchall()[0][0]
    for name, reason in summary.noticed:
        context.log.warning(f"{name}: {reason}")
    with engine.connect() as conn:
        reasons = conn.execute(
            select(RejectedRow.reason, func.count())
            .group_by(RejectedRow.reason)
            .order_by(func.count().desc())
            .limit(10)
        ).all()
        # The lines this run could not count, each with its reason (the first 20).
        run_jobs = [o.job_id for o in summary.outcomes if o.job_id]
        rejected_now = (
            conn.execute(
                select(RejectedRow.filename, RejectedRow.line_number, RejectedRow.reason, RejectedRow.raw_line)
                .where(RejectedRow.job_id.in_(run_jobs))
                .order_by(RejectedRow.filename, RejectedRow.line_number)
                .limit(20)
            ).all()
            if run_jobs
            else []
        )
    for o in summary.outcomes:
        if o.status == "failed":
            context.log.error(f"{o.filename} failed: {o.reason}")
    return dg.MaterializeResult(
        metadata={
            "files_seen": len(summary.outcomes),
            "files_completed": summary.count("completed"),
            "files_failed": summary.count("failed"),
            "files_duplicate": summary.count("duplicate"),
            "transactions_read": summary.transactions,
            "transactions_new": summary.new_transactions,
            "rejected_lines": summary.rejected_lines,
            "transactions_stored_total": int(stored),
            "workspace": workspace.tag,
            ROW_COUNT: int(stored),
            "files": preview(
                ["file", "status", "transactions", "new", "rejected lines", "reason"],
                [
                    (o.filename, o.status, o.transactions, o.new_transactions, o.rejected_lines, o.reason)
                    for o in summary.outcomes
                ],
            ),
            "rejected_lines_this_run": preview(
                ["file", "line", "reason", "text (first 80 characters)"],
                [(f, n, r, raw[:80]) for f, n, r, raw in rejected_now],
            ),
            "rejected_reasons_all_time": preview(["reason", "lines"], reasons),
            "constituencies_recorded_as_unknown": published.constituencies,
            "entries_not_read": preview(["entry", "reason"], summary.noticed),
            "files_handed_to_workspaces": preview(
                ["file", "election", "now in"], [(f.name, f.election, str(f.target)) for f in forwarded]
            ),
        }
    )


#: Checked inside the ``hourly_stats`` step, on the connection that published the figures:
#: DuckDB's file lock keeps another run from ingesting between publishing and checking.
HOURLY_CHECKS = [
    dg.AssetCheckSpec(
        "hourly_totals_reconcile",
        asset="hourly_stats",
        blocking=True,
        description="The hourly table adds up exactly to the raw counts: standing transactions, "
        "bulletins issued and distinct voters.",
    ),
    dg.AssetCheckSpec(
        "every_transaction_in_a_known_hour",
        asset="hourly_stats",
        blocking=True,
        description="Every stored transaction was parsed with a timestamp and its constituency-hour "
        "is published in hourly_stats (and no published hour is left without transactions).",
    ),
]


@dg.asset(
    group_name="election",
    kinds={"duckdb", "sql"},
    deps=[raw_transactions],
    pool=DUCKDB_POOL,
    retry_policy=DB_RETRY_POLICY,
    check_specs=HOURLY_CHECKS,
)
@permanent_db_errors_fail
def hourly_stats(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ops_db: OperationalDatabaseResource,
    quality_checks: QualityChecksResource,
) -> dg.MaterializeResult:
    """Per constituency and UTC hour: bulletins issued, votes cast (voters whose first vote
    fell in the hour), revotes, rejected and total transactions, per-minute velocities and
    cumulative participation. Computed by DuckDB from the raw store; only changed hours
    are written to the operational ``hourly_stats`` table."""
    engine = ops_db.engine()
    scope = warehouse.scope()
    with warehouse.connect() as duck:
        summary = publish_hourly_stats(duck, engine, scope)
        every = quality_checks.full_check_every_minutes
        checks = [
            check_result(
                quality.hourly_totals_reconcile(duck, engine, full_every_minutes=every, owned=scope),
                "hourly_totals_reconcile",
            ),
            check_result(
                quality.every_transaction_in_a_known_hour(duck, engine, full_every_minutes=every, owned=scope),
                "every_transaction_in_a_known_hour",
            ),
        ]
    context.log.info(
        f"hourly_stats: {summary.rows} hours ({summary.inserted} new, {summary.updated} updated, "
        f"{summary.deleted} removed)"
    )
    f = summary.frame.sort_values(["hour", "constituency_id"], ascending=[False, True]).head(15)
    return dg.MaterializeResult(
        check_results=checks,
        metadata={
            "rows": summary.rows,
            ROW_COUNT: summary.rows,
            "inserted": summary.inserted,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "deleted": summary.deleted,
            "total_transactions": int(summary.frame["transaction_count"].sum()) if summary.rows else 0,
            "latest_hours": preview(
                ["constituency", "hour (UTC)", "bulletins", "votes", "revotes", "transactions", "participation %"],
                [
                    (
                        r.constituency_id,
                        r.hour,
                        r.bulletins_issued,
                        r.votes_cast,
                        r.revote_count,
                        r.transaction_count,
                        r.participation_rate,
                    )
                    for r in f.itertuples()
                ],
            ),
        },
    )


@dg.asset(
    group_name="election",
    kinds={"duckdb", "python"},
    deps=[hourly_stats],
    pool=DUCKDB_POOL,
    retry_policy=DB_RETRY_POLICY,
)
@permanent_db_errors_fail
def constituency_metrics(
    context: dg.AssetExecutionContext,
    warehouse: WarehouseResource,
    ops_db: OperationalDatabaseResource,
    detection: DetectionResource,
) -> dg.Output[list[Finding]]:
    """Whole-election figures per constituency: bulletins issued, distinct voters, revotes,
    participation (voters / registered × 100) and the anomaly score (1 on any broken
    invariant, else 1 − Π(1 − wₖ·aₖ) over statistical findings), written onto
    ``constituencies``.

    Also runs every detection rule at the current time (README, "Detection"): hard
    invariants (votes above bulletins, participation above 100%, votes after the close or
    outside the window), spikes against peer constituencies, night-time votes in the
    election's local time, silent constituencies, rejection and revote bursts, unused
    bulletins, low participation and whole-percentage turnouts. Because "now" moves, a
    scheduled run with no new file can still find a constituency that went silent. The
    findings feed ``alerts``."""
    with warehouse.connect() as duck:
        summary = publish_metrics(duck, ops_db.engine(), detection.thresholds(), now=utcnow(), scope=warehouse.scope())
    frame = summary.frame.sort_values(["anomaly_score", "id"], ascending=[False, True])
    by_rule = Counter(f.rule for f in summary.findings)
    context.log.info(f"constituency_metrics: {len(frame)} constituencies, {len(summary.findings)} findings")
    return dg.Output(
        summary.findings,
        metadata={
            "constituencies": len(frame),
            ROW_COUNT: len(frame),
            "updated": summary.updated,
            "findings": len(summary.findings),
            "findings_by_rule": preview(["rule", "findings"], sorted(by_rule.items())),
            "most_anomalous": preview(
                ["constituency", "registered", "bulletins", "voters", "participation %", "anomaly score"],
                [
                    (r.id, r.registered, r.bulletins_issued, r.votes_cast, r.participation_rate, r.anomaly_score)
                    for r in frame.head(10).itertuples()
                ],
            ),
        },
    )


@dg.asset(group_name="election", kinds={"python", "sql"}, retry_policy=DB_RETRY_POLICY)
@permanent_db_errors_fail
def alerts(
    context: dg.AssetExecutionContext,
    constituency_metrics: list[Finding],
    ops_db: OperationalDatabaseResource,
    drop_folder: DropFolderResource,
) -> dg.MaterializeResult:
    """Alerts for observers, one per rule, constituency and hour or window, each with its
    figures, threshold and up to 20 transaction ids as evidence. Re-running updates alerts
    in place and never resets the status, notes or assignee an analyst set. A run of an
    election's workspace touches that election's alerts only."""
    engine = ops_db.engine()
    summary = publish_alerts(engine, constituency_metrics, scope=drop_folder.scope())
    with engine.connect() as conn:
        open_by_severity = dict(
            conn.execute(
                select(Alert.severity, func.count()).where(Alert.status.in_(OPEN_STATUSES)).group_by(Alert.severity)
            )
            .tuples()
            .all()
        )
        recent = conn.execute(
            select(Alert.severity, Alert.type, Alert.constituency_id, Alert.status, Alert.title)
            .order_by(SEVERITY_ORDER, Alert.detected_at.desc())
            .limit(15)
        ).all()
    for sev in Severity:
        if summary.by_severity.get(sev):
            context.log.info(f"{summary.by_severity[sev]} {sev} alert(s)")
    return dg.MaterializeResult(
        metadata={
            "created": summary.created,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "reopened": summary.reopened,
            "woken_from_snooze": summary.woken,
            "condition_cleared": summary.cleared,
            "open_critical": int(open_by_severity.get(Severity.CRITICAL, 0)),
            "open_warning": int(open_by_severity.get(Severity.WARNING, 0)),
            "open_info": int(open_by_severity.get(Severity.INFO, 0)),
            "alerts": preview(["severity", "rule", "constituency", "status", "title"], recent),
        }
    )


@dg.asset(
    group_name="election",
    kinds={"duckdb", "sql"},
    deps=[raw_transactions, alerts],
    pool=DUCKDB_POOL,
    retry_policy=DB_RETRY_POLICY,
)
@permanent_db_errors_fail
def operational_transactions(
    context: dg.AssetExecutionContext, warehouse: WarehouseResource, ops_db: OperationalDatabaseResource
) -> dg.MaterializeResult:
    """The operational ``transactions`` table: one row per stored transaction (without its
    ballot: ``raw_data`` locates the line in its processed file), copied from the DuckDB raw
    store, with ``is_rolled_back`` and ``in_conflict`` set by later rollback lines and
    conflicting copies. It runs after ``alerts``: alerts reach observers first, the
    per-transaction rows follow within the same run. Committed in chunks; a run killed
    half-way publishes the rest on its next run."""
    engine = ops_db.engine()
    election = warehouse.scope().election
    with warehouse.connect() as duck:
        summary = publish_transactions(duck, engine, progress=context.log.info, election=election)
    with engine.connect() as conn:
        total = int(conn.execute(select(func.count()).select_from(Transaction)).scalar_one())
    context.log.info(
        f"operational_transactions: {summary.transactions} published, {summary.rolled_back} newly rolled back, "
        f"{summary.in_conflict} newly in conflict; {total} in the table"
    )
    return dg.MaterializeResult(
        metadata={
            "published": summary.transactions,
            "newly_rolled_back": summary.rolled_back,
            "newly_in_conflict": summary.in_conflict,
            "transactions_total": total,
            ROW_COUNT: total,
        }
    )
