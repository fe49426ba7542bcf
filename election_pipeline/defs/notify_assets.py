"""The notifications step: alert changes → webhooks and email (``election_pipeline/notify/``)."""

import dagster as dg

from election_pipeline.notify.deliver import DeliveryRecord, deliver_notifications

from .assets import alerts
from .metadata import preview
from .resources import NotifierResource, OperationalDatabaseResource
from .retries import DB_RETRY_POLICY, permanent_db_errors_fail


def _when(moment) -> str | None:
    return moment.isoformat(timespec="seconds") + "Z" if moment else None


def _rows(records: list[DeliveryRecord], *, sent: bool) -> list[tuple]:
    if sent:
        return [(r.alert_id, r.change, r.severity, r.channel, r.target, r.attempts, _when(r.sent_at)) for r in records]
    return [
        (r.alert_id, r.change, r.severity, r.channel, r.target, r.status, r.attempts, r.error, _when(r.next_attempt_at))
        for r in records
    ]


SENT_COLUMNS = ["alert", "change", "severity", "channel", "to", "attempts", "sent_at"]
OWED_COLUMNS = ["alert", "change", "severity", "channel", "to", "status", "attempts", "last_error", "next_attempt"]


@dg.asset(group_name="election", kinds={"python"}, deps=[alerts], retry_policy=DB_RETRY_POLICY)
@permanent_db_errors_fail
def alert_notifications(
    context: dg.AssetExecutionContext, ops_db: OperationalDatabaseResource, notifier: NotifierResource
) -> dg.MaterializeResult:
    """Tells people about new alerts: each alert created, reopened or escalated in this run
    (or before, and not yet delivered) at or above ``ELECTION_NOTIFY_MIN_SEVERITY`` (default
    critical) goes to every webhook of ``ELECTION_ALERT_WEBHOOK_URLS`` (a Slack-compatible
    JSON message with a link to the alert) and, when ``ELECTION_SMTP_*`` is set, as one email.

    Each change is sent once to each target: a re-run with nothing new sends nothing. A
    receiver that is down is retried a few times with backoff; what still fails is listed
    below (``undelivered``) and tried again by the next runs until it is delivered. Webhooks
    are named by their host only: their full address is a secret."""
    summary = deliver_notifications(ops_db.engine(), notifier.config(), log=context.log.info)
    if summary.failed:
        context.log.warning(
            f"{len(summary.failed)} notification(s) could not be delivered in this run; the next run tries again"
        )
    if summary.unconfigured_targets:
        context.log.warning(
            "Notifications are owed to targets no longer configured: " + "; ".join(summary.unconfigured_targets)
        )
    return dg.MaterializeResult(
        metadata={
            "sent": len(summary.sent),
            "failed": len(summary.failed),
            "undelivered_total": len(summary.owed),
            "new_changes_planned": summary.planned,
            "skipped_below_min_severity": summary.skipped_below_severity,
            "skipped_no_channel": summary.skipped_no_channel,
            "targets": "; ".join(summary.targets) or "none configured",
            "targets_no_longer_configured": "; ".join(summary.unconfigured_targets) or "none",
            "sent_in_this_run": preview(SENT_COLUMNS, _rows(summary.sent, sent=True), limit=50),
            "undelivered": preview(OWED_COLUMNS, _rows(summary.owed, sent=False), limit=50),
        }
    )
