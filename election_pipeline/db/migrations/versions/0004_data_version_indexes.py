"""Indexes for the HTTP API's data version (the ETag and the response cache): the newest
``hourly_stats.updated_at`` and the newest ``file_processing_jobs.started_at`` and
``completed_at`` become index look-ups instead of scans of every row on each request.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-02

"""

from collections.abc import Sequence

from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_hourly_stats_updated_at", "hourly_stats", ["updated_at"])
    op.create_index("ix_file_processing_jobs_started_at", "file_processing_jobs", ["started_at"])
    op.create_index("ix_file_processing_jobs_completed_at", "file_processing_jobs", ["completed_at"])


def downgrade() -> None:
    op.drop_index("ix_file_processing_jobs_completed_at", table_name="file_processing_jobs")
    op.drop_index("ix_file_processing_jobs_started_at", table_name="file_processing_jobs")
    op.drop_index("ix_hourly_stats_updated_at", table_name="hourly_stats")
