"""``election-pipeline run``, ``sample`` and ``summary``."""

from __future__ import annotations

import argparse
import os
import shutil
import sys
from pathlib import Path

from election_pipeline.settings import Settings, load_settings
from election_pipeline.vocabulary import FileJobStatus, Severity

DEFAULT_DAGSTER_HOME = ".dagster_home"
_DAGSTER_YAML = Path(__file__).resolve().parent.parent / "dagster.yaml"


def ensure_dagster_home() -> Path:
    """Use ``$DAGSTER_HOME`` or a project-local ``.dagster_home``, with our ``dagster.yaml``."""
    home = Path(os.environ.get("DAGSTER_HOME") or DEFAULT_DAGSTER_HOME).absolute()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["DAGSTER_HOME"] = str(home)
    target = home / "dagster.yaml"
    if not target.exists():
        shutil.copyfile(_DAGSTER_YAML, target)
    return home


def print_summary(settings: Settings, out=None) -> dict[str, object]:
    """Print (and return) what the operational database holds (to ``out``, default stdout)."""
    out = out or sys.stdout
    from sqlalchemy import func, select

    from election_pipeline.db.models import (
        Alert,
        AlertNotification,
        Constituency,
        FileProcessingJob,
        HourlyStats,
        NotificationDelivery,
        RejectedRow,
        Transaction,
    )
    from election_pipeline.db.session import create_tables, get_engine
    from election_pipeline.notify.deliver import FAILED, PENDING, SENT

    engine = get_engine(settings.database_url)
    create_tables(engine)
    with engine.connect() as conn:

        def one(stmt):
            return conn.execute(stmt).scalar_one()

        jobs = dict(
            conn.execute(select(FileProcessingJob.status, func.count()).group_by(FileProcessingJob.status))
            .tuples()
            .all()
        )
        figures: dict[str, object] = {
            "files_completed": int(jobs.get(FileJobStatus.COMPLETED, 0)),
            "files_failed": int(jobs.get(FileJobStatus.FAILED, 0)),
            "transactions_stored": int(one(select(func.count()).select_from(Transaction))),
            "transactions_standing": int(one(select(func.count()).where(Transaction.is_rolled_back.is_(False)))),
            "transactions_rolled_back": int(one(select(func.count()).where(Transaction.is_rolled_back.is_(True)))),
            "rejected_rows": int(one(select(func.count()).select_from(RejectedRow))),
            "hourly_rows": int(one(select(func.count()).select_from(HourlyStats))),
            "constituencies": int(one(select(func.count()).select_from(Constituency))),
            "unknown_constituencies": int(one(select(func.count()).where(Constituency.in_reference.is_(False)))),
            "bulletins_issued": int(one(select(func.coalesce(func.sum(Constituency.bulletins_issued), 0)))),
            "votes_cast": int(one(select(func.coalesce(func.sum(Constituency.votes_cast), 0)))),
        }
        alerts = dict(conn.execute(select(Alert.severity, func.count()).group_by(Alert.severity)).tuples().all())
        deliveries = dict(
            conn.execute(select(NotificationDelivery.status, func.count()).group_by(NotificationDelivery.status))
            .tuples()
            .all()
        )
        figures["notifications_sent"] = int(deliveries.get(SENT, 0))
        figures["notifications_failed"] = int(deliveries.get(FAILED, 0))
        figures["notifications_pending"] = int(deliveries.get(PENDING, 0))
        figures["alert_changes_not_notified"] = int(
            one(select(func.count()).where(AlertNotification.skip_reason.is_not(None)))
        )
        top = conn.execute(
            select(
                Constituency.id,
                Constituency.name,
                Constituency.registered_voters,
                Constituency.votes_cast,
                Constituency.participation_rate,
                Constituency.anomaly_score,
            )
            .order_by(Constituency.anomaly_score.desc(), Constituency.id)
            .limit(10)
        ).all()
        critical = conn.execute(
            select(Alert.constituency_id, Alert.type, Alert.title)
            .where(Alert.severity == Severity.CRITICAL)
            .order_by(Alert.constituency_id, Alert.type)
            .limit(10)
        ).all()
    for sev in Severity:
        figures[f"alerts_{sev}"] = int(alerts.get(sev, 0))

    w = out.write
    w("\nElection pipeline summary\n")
    w(f"  operational database: {settings.describe()['database_url']}\n")
    w(
        f"  files processed:      {figures['files_completed']} completed, {figures['files_failed']} failed "
        f"(quarantined in {settings.quarantine_dir})\n"
    )
    w(
        f"  transactions:         {figures['transactions_standing']} standing, "
        f"{figures['transactions_rolled_back']} rolled back\n"
    )
    w(f"  rejected lines:       {figures['rejected_rows']}\n")
    w(f"  hourly rows:          {figures['hourly_rows']}\n")
    w(f"  constituencies:       {figures['constituencies']} ({figures['unknown_constituencies']} unknown)\n")
    w(f"  bulletins issued:     {figures['bulletins_issued']}\n")
    w(f"  votes cast:           {figures['votes_cast']} distinct voters\n")
    w(
        f"  alerts:               {figures['alerts_critical']} critical, {figures['alerts_warning']} warning, "
        f"{figures['alerts_info']} info\n"
    )
    w(
        f"  notifications:        {figures['notifications_sent']} sent, {figures['notifications_failed']} failed "
        f"(tried again by a later run), {figures['notifications_pending']} pending; "
        f"{figures['alert_changes_not_notified']} alert changes not notified "
        "(below ELECTION_NOTIFY_MIN_SEVERITY or no channel configured)\n"
    )
    if top:
        w("\n  constituency                                   registered   voters  particip.%  anomaly\n")
        for cid, _name, reg, votes, part, score in top:
            w(f"  {cid[:44]:<46} {reg:>10} {votes:>8} {part:>10.2f} {score:>8.2f}\n")
    if critical:
        w("\n  critical alerts:\n")
        for _cid, rule, title in critical:
            w(f"  - [{rule}] {title}\n")
    return figures


def cmd_run(args: argparse.Namespace) -> int:
    from dagster import DagsterInstance

    from election_pipeline.defs.automation import JOB_NAME, files_run_config, workspaces_of
    from election_pipeline.ingest.export_files import is_candidate
    from election_pipeline.workspaces import WORKSPACE_TAG

    settings = load_settings()
    ensure_dagster_home()
    from election_pipeline.definitions import build_definitions

    defs = build_definitions(settings)  # the settings now in force, not those of the first import
    job = defs.resolve_job_def(JOB_NAME)
    workspaces = workspaces_of(settings)
    failed = []
    with DagsterInstance.get() as instance:
        for ws in workspaces:
            folder = ws.input_dir
            names = sorted(p.name for p in folder.iterdir() if is_candidate(p)) if folder.is_dir() else []
            where = f" ({ws.label})" if len(workspaces) > 1 else ""
            print(f"Running {JOB_NAME}{where}: {len(names)} file(s) in {folder}")
            run_config = files_run_config(names) | {"loggers": {"console": {"config": {"log_level": args.log_level}}}}
            result = job.execute_in_process(
                run_config=run_config, instance=instance, raise_on_error=False, tags={WORKSPACE_TAG: ws.tag}
            )
            checks = result.get_asset_check_evaluations()
            print(f"\nData-quality checks{where}:")
            for ev in sorted(checks, key=lambda e: e.check_name):
                verdict = "passed" if ev.passed else f"FAILED ({ev.severity.value})"
                print(f"  {ev.asset_key.to_user_string()}.{ev.check_name}: {verdict}")
            if not result.success:
                failed.append(ws.label)
    print_summary(settings)
    if failed:
        print(
            f"\nThe run of {', '.join(failed)} did not succeed; see the errors above (and the run in the Dagster UI).",
            file=sys.stderr,
        )
        return 1
    return 0


def cmd_sample(args: argparse.Namespace) -> int:
    from election_pipeline.sample import generate_sample, has_input_files

    settings = load_settings()
    input_dir, reference_dir = Path(settings.input_dir), Path(settings.reference_dir)
    if args.if_empty:
        if has_input_files(input_dir):
            print(f"{input_dir} already holds files: no sample written.")
            return 0
        if has_input_files(Path(settings.processed_dir)):
            print(f"Files were already processed ({settings.processed_dir}): no sample written.")
            return 0
    write_reference = not ((reference_dir / "elections.csv").exists() and args.if_empty)
    summary = generate_sample(
        input_dir,
        reference_dir,
        seed=args.seed,
        constituencies=args.constituencies,
        write_reference=write_reference,
        overwrite_reference=args.force,
    )
    print(f"Sample election written: {len(summary.files)} files in {input_dir}, reference data in {reference_dir}")
    return 0


def cmd_summary(_args: argparse.Namespace) -> int:
    print_summary(load_settings())
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    run = sub.add_parser("run", help="materialise the whole asset graph once and print a summary")
    run.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    run.set_defaults(func=cmd_run)
    sample = sub.add_parser("sample", help="write a sample election into the input and reference folders")
    sample.add_argument(
        "--if-empty",
        action="store_true",
        help="do nothing when the input folder holds files or files were already processed",
    )
    sample.add_argument("--seed", type=int, default=7, help="random seed (same seed, same files)")
    sample.add_argument("--constituencies", type=int, default=6, help="number of constituencies")
    sample.add_argument("--force", action="store_true", help="overwrite existing reference files")
    sample.set_defaults(func=cmd_sample)
    summary = sub.add_parser("summary", help="print what the operational database holds")
    summary.set_defaults(func=cmd_summary)
