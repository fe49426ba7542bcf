"""What observers look at first: the figures of each whole election, and its report with charts.

``election_metrics`` (downstream of ``constituency_metrics`` and ``alerts``) writes one
row per election into the operational ``election_metrics`` table; ``election_report``
draws the charts and writes the HTML page of every election into the reports folder, and
shows the charts right here in the materialisation's metadata.
"""

import dagster as dg

from election_pipeline.stages.election_metrics import dashboard_summary, publish_election_metrics
from election_pipeline.stages.report import write_reports

from .assets import alerts, constituency_metrics
from .metadata import ROW_COUNT, preview
from .resources import DetectionResource, OperationalDatabaseResource, ReportsResource
from .retries import DB_RETRY_POLICY, permanent_db_errors_fail

#: Elections whose charts are embedded in the report's metadata (the others are linked by path).
EMBEDDED_ELECTIONS = 3


@dg.asset(
    group_name="election", kinds={"python", "sql"}, deps=[constituency_metrics, alerts], retry_policy=DB_RETRY_POLICY
)
@permanent_db_errors_fail
def election_metrics(
    context: dg.AssetExecutionContext, ops_db: OperationalDatabaseResource, detection: DetectionResource
) -> dg.MaterializeResult:
    """One row per election in ``election_metrics``: registered voters, bulletins issued,
    voters, participation, the issued-but-not-voted gap, how many constituencies are
    reporting, offline (silent for more than ``ELECTION_OFFLINE_AFTER_HOURS`` before the
    election's latest transaction) or carry an open critical alert, open alerts by severity,
    and the dashboard summary. Also keeps ``elections.total_constituencies`` true."""
    engine = ops_db.engine()
    summary = publish_election_metrics(engine, detection.offline_after_hours)
    rows = summary.rows
    context.log.info(
        f"election_metrics: {len(rows)} election(s) ({summary.inserted} new, {summary.updated} updated, "
        f"{summary.unchanged} unchanged)"
    )
    return dg.MaterializeResult(
        metadata={
            "elections": len(rows),
            ROW_COUNT: len(rows),
            "inserted": summary.inserted,
            "updated": summary.updated,
            "unchanged": summary.unchanged,
            "open_critical_alerts": sum(r["open_alerts_critical"] for r in rows),
            "constituencies_offline": sum(r["constituencies_offline"] for r in rows),
            "elections_table": preview(
                [
                    "election",
                    "participation %",
                    "voters",
                    "registered",
                    "bulletins",
                    "issued − voted",
                    "reporting",
                    "offline",
                    "with critical alerts",
                    "open alerts (crit/warn/info)",
                ],
                [
                    (
                        r["summary"]["election"]["name"],
                        round(r["participation_rate"], 2),
                        r["votes_cast"],
                        r["registered_voters"],
                        r["bulletins_issued"],
                        r["issued_not_voted"],
                        f"{r['constituencies_reporting']} / {r['total_constituencies']}",
                        r["constituencies_offline"],
                        r["constituencies_with_critical_alerts"],
                        f"{r['open_alerts_critical']} / {r['open_alerts_warning']} / {r['open_alerts_info']}",
                    )
                    for r in rows
                ],
            ),
            "most_anomalous": preview(
                ["election", "constituency", "region", "participation %", "anomaly score"],
                [
                    (
                        r["summary"]["election"]["name"],
                        c["name"],
                        c["region"],
                        round(c["participation_rate"], 2),
                        round(c["anomaly_score"], 2),
                    )
                    for r in rows
                    for c in r["summary"]["most_anomalous"]
                ],
            ),
            "dashboard_summary": dg.MetadataValue.json(dashboard_summary(engine)),
        }
    )


@dg.asset(group_name="election", kinds={"python"}, deps=[election_metrics], retry_policy=DB_RETRY_POLICY)
@permanent_db_errors_fail
def election_report(
    context: dg.AssetExecutionContext,
    ops_db: OperationalDatabaseResource,
    reports: ReportsResource,
    detection: DetectionResource,
) -> dg.MaterializeResult:
    """Charts of every election, written with a self-contained HTML page into the reports
    folder (``ELECTION_REPORTS_DIR``, one sub-folder per election) and shown below:
    cumulative participation per constituency against the peer band, hourly votes vs
    bulletins with the issued-but-not-voted gap, the alert timeline, a region × hour heat
    map of votes, and the activity pattern by local hour of day."""
    written = write_reports(ops_db.engine(), reports.reports_dir, detection.offline_after_hours)
    metadata: dict[str, dg.MetadataValue | int] = {
        "elections": len(written),
        "reports_dir": dg.MetadataValue.path(reports.reports_dir),
        "reports": preview(
            ["election", "participation %", "charts", "report"],
            [
                (r.election_name, round(r.figures["participation_rate"], 2), len(r.charts), str(r.html_path))
                for r in written
            ],
        ),
    }
    for n, report in enumerate(written):
        key = f"charts_{n + 1}" if len(written) > 1 else "charts"
        if n < EMBEDDED_ELECTIONS:
            parts = [f"**{report.election_name}**: `{report.html_path}`\n"]
            for chart in report.charts:
                parts.append(f"#### {chart.title}\n\n![{chart.name}]({chart.data_uri()})\n\n_{chart.caption}_\n")
            metadata[key] = dg.MetadataValue.md("\n".join(parts))
        else:
            metadata[key] = dg.MetadataValue.path(str(report.html_path))
    context.log.info(f"election_report: {len(written)} report(s) written to {reports.reports_dir}")
    return dg.MaterializeResult(metadata=metadata)
