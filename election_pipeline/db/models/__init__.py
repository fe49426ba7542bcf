"""SQLAlchemy models of the operational database (docs/data-model.md)."""

from .alert import Alert
from .alert_event import AlertEvent
from .api_token import ApiToken
from .base import Base, TimestampMixin, UUIDMixin, utcnow
from .constituency import Constituency
from .election import Election
from .election_metrics import ElectionMetrics
from .file_processing import FileLedgerEntry, FileProcessingJob, RejectedRow
from .hourly_stats import HourlyStats
from .notification import AlertNotification, NotificationDelivery
from .transaction import Transaction

__all__ = [
    "Alert",
    "AlertEvent",
    "AlertNotification",
    "ApiToken",
    "Base",
    "Constituency",
    "Election",
    "ElectionMetrics",
    "FileLedgerEntry",
    "FileProcessingJob",
    "HourlyStats",
    "NotificationDelivery",
    "RejectedRow",
    "TimestampMixin",
    "Transaction",
    "UUIDMixin",
    "utcnow",
]
