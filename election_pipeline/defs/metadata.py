"""Small helpers that turn figures into materialisation metadata for the Dagster UI."""

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg

#: The metadata key under which Dagster shows an asset's row count (in the catalog too).
ROW_COUNT = "dagster/row_count"

_COLUMN_TYPES = ((bool, "bool"), (int, "int"), (float, "float"))


def _cell(value: Any) -> str | int | float | bool | None:
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def _column_type(values: list[Any]) -> str:
    present = [v for v in values if v is not None]
    for python_type, name in _COLUMN_TYPES:
        if present and all(isinstance(v, python_type) for v in present):
            return name
    return "string"


def preview(headers: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 20) -> dg.TableMetadataValue:
    """A table of at most ``limit`` rows, with a schema whose column types are read from the
    values (the UI shows it under "Metadata", sortable and typed)."""
    rows = [tuple(_cell(v) for v in row) for row in rows][:limit]
    schema = dg.TableSchema(
        columns=[dg.TableColumn(name, _column_type([r[i] for r in rows])) for i, name in enumerate(headers)]
    )
    return dg.MetadataValue.table(
        records=[dg.TableRecord(dict(zip(headers, row, strict=True))) for row in rows], schema=schema
    )


def check_result(
    result, check_name: str | None = None, severity: dg.AssetCheckSeverity = dg.AssetCheckSeverity.ERROR
) -> dg.AssetCheckResult:
    """A :class:`~election_pipeline.stages.quality.QualityResult` as a Dagster check result."""
    return dg.AssetCheckResult(
        check_name=check_name,
        passed=result.passed,
        severity=severity,
        description=result.summary,
        metadata={"summary": result.summary, **result.figures},
    )
