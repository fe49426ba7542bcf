"""Each closed set of words is spelled the same in its StrEnum and in its Literal alias, and the
contract operations are those the export-line parser knows."""

from typing import get_args

import pytest

from election_pipeline import vocabulary as v
from election_pipeline.ingest.export_line import KNOWN_OPERATIONS

PAIRS = [
    (v.AlertStatus, v.AlertStatusName),
    (v.Severity, v.SeverityName),
    (v.FileJobStatus, v.FileJobStatusName),
    (v.ConstituencyStatus, v.ConstituencyStatusName),
    (v.ConstituencyType, v.ConstituencyTypeName),
    (v.RegisteredVotersSource, v.RegisteredVotersSourceName),
    (v.ElectionStatus, v.ElectionStatusName),
    (v.ElectionType, v.ElectionTypeName),
    (v.Operation, v.OperationName),
]


@pytest.mark.parametrize(("enum", "literal"), PAIRS, ids=[e.__name__ for e, _ in PAIRS])
def test_the_literal_alias_spells_the_enum(enum, literal):
    assert get_args(literal) == tuple(m.value for m in enum)


def test_operations_are_the_parsers():
    assert tuple(v.Operation) == tuple(dict.fromkeys(KNOWN_OPERATIONS.values()))


def test_open_statuses_and_severity_rank():
    assert v.OPEN_STATUSES == ("active", "investigating")
    assert v.SEVERITY_RANK == {"info": 0, "warning": 1, "critical": 2}
    assert tuple(v.Severity) == ("critical", "warning", "info")
