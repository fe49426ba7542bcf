"""Small helpers that turn figures into materialisation metadata for the Dagster UI."""

from collections.abc import Iterable, Sequence
from typing import Any

import dagster as dg


def md_table(headers: Sequence[str], rows: Iterable[Sequence[Any]], limit: int = 20) -> dg.MarkdownMetadataValue:
    """A markdown table of at most ``limit`` rows (the UI renders it under "Metadata")."""
    rows = list(rows)
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows[:limit]:
        lines.append("| " + " | ".join(str(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    if len(rows) > limit:
        lines.append(f"\n_{len(rows) - limit} more rows not shown._")
    if not rows:
        lines.append("| " + " | ".join("" for _ in headers) + " |")
    return dg.MetadataValue.md("\n".join(lines))


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
