"""The closed sets of words the pipeline stores and compares: alert statuses and severities,
the statuses and types of elections and constituencies, file-job statuses, where a register
size came from, and the contract operations.

Each set is a :class:`~enum.StrEnum`, for the code that compares or iterates: its members are
``str`` and equal to the words stored in the database (the columns stay plain strings). Next to
it, a ``Literal`` alias of the same words (``...Name``) types the fields of the Pydantic schemas
and of the detection findings, where plain strings are written.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Literal


class AlertStatus(StrEnum):
    """Where an alert is in the analyst's hands."""

    ACTIVE = "active"
    INVESTIGATING = "investigating"
    RESOLVED = "resolved"
    SNOOZED = "snoozed"


AlertStatusName = Literal["active", "investigating", "resolved", "snoozed"]

#: The statuses of the alerts an analyst still has to look at (the "open" alerts).
OPEN_STATUSES: tuple[AlertStatus, ...] = (AlertStatus.ACTIVE, AlertStatus.INVESTIGATING)


class Severity(StrEnum):
    """How serious an alert is, the most severe first: critical > warning > info."""

    CRITICAL = "critical"
    WARNING = "warning"
    INFO = "info"


SeverityName = Literal["critical", "warning", "info"]

#: The rank of each severity, higher is more severe: ``info`` 0, ``warning`` 1, ``critical`` 2.
SEVERITY_RANK: dict[str, int] = {s.value: rank for rank, s in enumerate(reversed(Severity))}


class FileJobStatus(StrEnum):
    """One attempt at one input file."""

    PROCESSING = "processing"
    COMPLETED = "completed"
    FAILED = "failed"


FileJobStatusName = Literal["processing", "completed", "failed"]


class ConstituencyStatus(StrEnum):
    ACTIVE = "active"
    OFFLINE = "offline"
    COMPLETED = "completed"
    INACTIVE = "inactive"
    UNKNOWN = "unknown"


ConstituencyStatusName = Literal["active", "offline", "completed", "inactive", "unknown"]


class ConstituencyType(StrEnum):
    URBAN = "urban"
    RURAL = "rural"
    SUBURBAN = "suburban"
    DISTRICT = "district"
    UNKNOWN = "unknown"


ConstituencyTypeName = Literal["urban", "rural", "suburban", "district", "unknown"]


class RegisteredVotersSource(StrEnum):
    """Where a constituency's ``registered_voters`` came from."""

    REFERENCE = "reference"
    ADD_VOTERS_LIST = "addVotersList"
    NONE = "none"


RegisteredVotersSourceName = Literal["reference", "addVotersList", "none"]


class ElectionStatus(StrEnum):
    ACTIVE = "active"
    COMPLETED = "completed"
    UPCOMING = "upcoming"
    SCHEDULED = "scheduled"


ElectionStatusName = Literal["active", "completed", "upcoming", "scheduled"]


class ElectionType(StrEnum):
    PRESIDENTIAL = "presidential"
    PARLIAMENTARY = "parliamentary"
    GENERAL = "general"
    LOCAL = "local"
    REFERENDUM = "referendum"


ElectionTypeName = Literal["presidential", "parliamentary", "general", "local", "referendum"]


class Operation(StrEnum):
    """A contract operation, in its canonical spelling: the type of a transaction."""

    CREATE_CONTRACT = "createContract"
    ADD_MAIN_KEY = "addMainKey"
    START_VOTING = "startVoting"
    FINISH_VOTING = "finishVoting"
    ADD_VOTERS_LIST = "addVotersList"
    BLIND_SIG_ISSUE = "blindSigIssue"
    VOTE = "vote"
    DECRYPTION = "decryption"
    COMMISSION_DECRYPTION = "commissionDecryption"
    RESULTS = "results"


OperationName = Literal[
    "createContract",
    "addMainKey",
    "startVoting",
    "finishVoting",
    "addVotersList",
    "blindSigIssue",
    "vote",
    "decryption",
    "commissionDecryption",
    "results",
]

__all__ = [
    "OPEN_STATUSES",
    "SEVERITY_RANK",
    "AlertStatus",
    "AlertStatusName",
    "ConstituencyStatus",
    "ConstituencyStatusName",
    "ConstituencyType",
    "ConstituencyTypeName",
    "ElectionStatus",
    "ElectionStatusName",
    "ElectionType",
    "ElectionTypeName",
    "FileJobStatus",
    "FileJobStatusName",
    "Operation",
    "OperationName",
    "RegisteredVotersSource",
    "RegisteredVotersSourceName",
    "Severity",
    "SeverityName",
]
