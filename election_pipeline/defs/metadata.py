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
