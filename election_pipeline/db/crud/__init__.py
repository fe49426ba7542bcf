"""CRUD over the operational database (docs/data-model.md#crud): one class per entity, each built
from a SQLAlchemy session, e.g. ``AlertCRUD(session).set_status(alert_id, "resolved")``."""

from .alert import AlertCRUD
from .base import BaseCRUD, NotFoundError
from .constituency import ConstituencyCRUD, participation_rate
from .election import ElectionCRUD
from .file_processing import FileProcessingJobCRUD
from .hourly_stats import HourlyStatsCRUD
from .transaction import TransactionCRUD

__all__ = [
    "AlertCRUD",
    "BaseCRUD",
    "ConstituencyCRUD",
    "ElectionCRUD",
    "FileProcessingJobCRUD",
    "HourlyStatsCRUD",
    "NotFoundError",
    "TransactionCRUD",
    "participation_rate",
]
