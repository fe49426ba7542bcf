"""The hourly figures the pipeline published, and the same figures as a sample election's
ground truth gives them (``election_pipeline.sample``), in one shape for comparing."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, select

from election_pipeline.db.models import HourlyStats


def published_hourly(engine: Engine) -> list[tuple]:
    """``(constituency, hour, bulletins, votes, revotes, transactions)`` of every published hour."""
    with engine.connect() as conn:
        rows = conn.execute(
            select(
                HourlyStats.constituency_id,
                HourlyStats.hour,
                HourlyStats.bulletins_issued,
                HourlyStats.votes_cast,
                HourlyStats.revote_count,
                HourlyStats.transaction_count,
            )
        )
        return sorted(tuple(r) for r in rows)


def expected_hourly(*truths: Any) -> list[tuple]:
    """The same tuples from the ground truth of one or more samples (``SampleSummary``)."""
    return sorted(
        (h["constituency_id"], h["hour"], h["bulletins_issued"], h["votes_cast"], h["revotes"], h["transaction_count"])
        for truth in truths
        for h in truth.expected_hourly
    )
