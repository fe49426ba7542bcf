"""Baseline schema of the operational database.

The tables of docs/data-model.md (elections, constituencies,
transactions, alerts, hourly_stats, file_processing_jobs, election_metrics) plus the file
ledger and rejected rows. Generated from the models and checked against them by
``election_pipeline_tests/storage/test_migrations.py``.

Revision ID: 0001
Revises:
Create Date: 2026-11-21

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

#: JSON on every engine, JSONB on PostgreSQL (as ``models.base.JSONType``).
JSON = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    op.create_table(
        "elections",
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("country", sa.String(length=100), nullable=True),
        sa.Column("start_date", sa.DateTime(), nullable=False),
        sa.Column("end_date", sa.DateTime(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=True),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("total_constituencies", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_elections")),
    )
    op.create_table(
        "file_processing_jobs",
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("details", sa.Text(), nullable=True),
        sa.Column("transactions_processed", sa.Integer(), nullable=False),
        sa.Column("rejected_lines", sa.Integer(), nullable=False),
        sa.Column("file_hash", sa.String(length=64), nullable=True),
        sa.Column("stored_path", sa.String(length=1024), nullable=True),
        sa.Column("started_at", sa.DateTime(), nullable=False),
        sa.Column("completed_at", sa.DateTime(), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_file_processing_jobs")),
    )
    op.create_index("ix_file_processing_jobs_file_hash", "file_processing_jobs", ["file_hash"], unique=False)
    op.create_index("ix_file_processing_jobs_status", "file_processing_jobs", ["status"], unique=False)
    op.create_table(
        "constituencies",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("election_id", sa.String(length=36), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("region", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=30), nullable=False),
        sa.Column("registered_voters", sa.Integer(), nullable=False),
        sa.Column("registered_voters_source", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("in_reference", sa.Boolean(), nullable=False),
        sa.Column("last_update_time", sa.DateTime(), nullable=True),
        sa.Column("bulletins_issued", sa.Integer(), nullable=False),
        sa.Column("votes_cast", sa.Integer(), nullable=False),
        sa.Column("revote_count", sa.Integer(), nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("participation_rate", sa.Float(), nullable=False),
        sa.Column("anomaly_score", sa.Float(), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["election_id"], ["elections.id"], name=op.f("fk_constituencies_election_id_elections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_constituencies")),
    )
    op.create_index("ix_constituencies_election_id", "constituencies", ["election_id"], unique=False)
    op.create_index("ix_constituencies_region", "constituencies", ["region"], unique=False)
    op.create_table(
        "election_metrics",
        sa.Column("election_id", sa.String(length=36), nullable=False),
        sa.Column("total_constituencies", sa.Integer(), nullable=False),
        sa.Column("constituencies_reporting", sa.Integer(), nullable=False),
        sa.Column("constituencies_offline", sa.Integer(), nullable=False),
        sa.Column("constituencies_with_critical_alerts", sa.Integer(), nullable=False),
        sa.Column("registered_voters", sa.Integer(), nullable=False),
        sa.Column("bulletins_issued", sa.Integer(), nullable=False),
        sa.Column("votes_cast", sa.Integer(), nullable=False),
        sa.Column("revote_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("participation_rate", sa.Float(), nullable=False),
        sa.Column("issued_not_voted", sa.Integer(), nullable=False),
        sa.Column("first_activity", sa.DateTime(), nullable=True),
        sa.Column("last_activity", sa.DateTime(), nullable=True),
        sa.Column("open_alerts_critical", sa.Integer(), nullable=False),
        sa.Column("open_alerts_warning", sa.Integer(), nullable=False),
        sa.Column("open_alerts_info", sa.Integer(), nullable=False),
        sa.Column("summary", JSON, nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["election_id"], ["elections.id"], name=op.f("fk_election_metrics_election_id_elections")
        ),
        sa.PrimaryKeyConstraint("election_id", name=op.f("pk_election_metrics")),
    )
    op.create_table(
        "file_ledger",
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=False),
        sa.Column("stored_path", sa.String(length=1024), nullable=True),
        sa.Column("recorded_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["file_processing_jobs.id"], name=op.f("fk_file_ledger_job_id_file_processing_jobs")
        ),
        sa.PrimaryKeyConstraint("content_hash", name=op.f("pk_file_ledger")),
    )
    op.create_table(
        "rejected_rows",
        sa.Column("file_hash", sa.String(length=64), nullable=False),
        sa.Column("filename", sa.String(length=512), nullable=False),
        sa.Column("source", sa.String(length=1024), nullable=False),
        sa.Column("line_number", sa.Integer(), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("raw_line", sa.Text(), nullable=False),
        sa.Column("job_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.ForeignKeyConstraint(
            ["job_id"], ["file_processing_jobs.id"], name=op.f("fk_rejected_rows_job_id_file_processing_jobs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_rejected_rows")),
    )
    op.create_index(
        "ix_rejected_rows_file_hash_source_line", "rejected_rows", ["file_hash", "source", "line_number"], unique=True
    )
    op.create_table(
        "alerts",
        sa.Column("constituency_id", sa.String(length=64), nullable=False),
        sa.Column("fingerprint", sa.String(length=255), nullable=False),
        sa.Column("type", sa.String(length=60), nullable=False),
        sa.Column("severity", sa.String(length=20), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("title", sa.String(length=255), nullable=False),
        sa.Column("description", sa.Text(), nullable=True),
        sa.Column("details", JSON, nullable=True),
        sa.Column("notes", JSON, nullable=False),
        sa.Column("detected_at", sa.DateTime(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(), nullable=True),
        sa.Column("snoozed_until", sa.DateTime(), nullable=True),
        sa.Column("assigned_to", sa.String(length=255), nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["constituency_id"], ["constituencies.id"], name=op.f("fk_alerts_constituency_id_constituencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("fingerprint", name=op.f("uq_alerts_fingerprint")),
    )
    op.create_index("ix_alerts_constituency_id_status", "alerts", ["constituency_id", "status"], unique=False)
    op.create_index("ix_alerts_detected_at", "alerts", ["detected_at"], unique=False)
    op.create_index("ix_alerts_severity_status", "alerts", ["severity", "status"], unique=False)
    op.create_table(
        "hourly_stats",
        sa.Column("constituency_id", sa.String(length=64), nullable=False),
        sa.Column("election_id", sa.String(length=36), nullable=True),
        sa.Column("hour", sa.DateTime(), nullable=False),
        sa.Column("timestamp", sa.DateTime(), nullable=True),
        sa.Column("bulletins_issued", sa.Integer(), nullable=False),
        sa.Column("votes_cast", sa.Integer(), nullable=False),
        sa.Column("revote_count", sa.Integer(), nullable=False),
        sa.Column("rejected_count", sa.Integer(), nullable=False),
        sa.Column("transaction_count", sa.Integer(), nullable=False),
        sa.Column("cumulative_bulletins", sa.Integer(), nullable=False),
        sa.Column("cumulative_votes", sa.Integer(), nullable=False),
        sa.Column("bulletin_velocity", sa.Float(), nullable=False),
        sa.Column("vote_velocity", sa.Float(), nullable=False),
        sa.Column("participation_rate", sa.Float(), nullable=False),
        sa.Column("anomaly_count", sa.Integer(), nullable=False),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["constituency_id"], ["constituencies.id"], name=op.f("fk_hourly_stats_constituency_id_constituencies")
        ),
        sa.ForeignKeyConstraint(["election_id"], ["elections.id"], name=op.f("fk_hourly_stats_election_id_elections")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_hourly_stats")),
    )
    op.create_index("ix_hourly_stats_constituency_id_hour", "hourly_stats", ["constituency_id", "hour"], unique=True)
    op.create_index("ix_hourly_stats_election_id_hour", "hourly_stats", ["election_id", "hour"], unique=False)
    op.create_table(
        "transactions",
        sa.Column("tx_id", sa.String(length=128), nullable=False),
        sa.Column("constituency_id", sa.String(length=64), nullable=False),
        sa.Column("block_height", sa.BigInteger(), nullable=True),
        sa.Column("timestamp", sa.DateTime(), nullable=False),
        sa.Column("type", sa.String(length=40), nullable=False),
        sa.Column("sender", sa.String(length=255), nullable=True),
        sa.Column("is_rejected", sa.Boolean(), nullable=False),
        sa.Column("is_rolled_back", sa.Boolean(), nullable=False),
        sa.Column("bulletins", sa.Integer(), nullable=False),
        sa.Column("source_file", sa.String(length=512), nullable=True),
        sa.Column("raw_data", JSON, nullable=True),
        sa.Column("operation_data", JSON, nullable=True),
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("created_at", sa.DateTime(), nullable=False),
        sa.Column("updated_at", sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["constituency_id"], ["constituencies.id"], name=op.f("fk_transactions_constituency_id_constituencies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_transactions")),
        sa.UniqueConstraint("tx_id", name=op.f("uq_transactions_tx_id")),
    )
    op.create_index("ix_transactions_block_height", "transactions", ["block_height"], unique=False)
    op.create_index(
        "ix_transactions_constituency_id_timestamp", "transactions", ["constituency_id", "timestamp"], unique=False
    )
    op.create_index("ix_transactions_type_constituency_id", "transactions", ["type", "constituency_id"], unique=False)


def downgrade() -> None:
    """Downgrade schema."""
    op.drop_index("ix_transactions_type_constituency_id", table_name="transactions")
    op.drop_index("ix_transactions_constituency_id_timestamp", table_name="transactions")
    op.drop_index("ix_transactions_block_height", table_name="transactions")
    op.drop_table("transactions")
    op.drop_index("ix_hourly_stats_election_id_hour", table_name="hourly_stats")
    op.drop_index("ix_hourly_stats_constituency_id_hour", table_name="hourly_stats")
    op.drop_table("hourly_stats")
    op.drop_index("ix_alerts_severity_status", table_name="alerts")
    op.drop_index("ix_alerts_detected_at", table_name="alerts")
    op.drop_index("ix_alerts_constituency_id_status", table_name="alerts")
    op.drop_table("alerts")
    op.drop_index("ix_rejected_rows_file_hash_source_line", table_name="rejected_rows")
    op.drop_table("rejected_rows")
    op.drop_table("file_ledger")
    op.drop_table("election_metrics")
    op.drop_index("ix_constituencies_region", table_name="constituencies")
    op.drop_index("ix_constituencies_election_id", table_name="constituencies")
    op.drop_table("constituencies")
    op.drop_index("ix_file_processing_jobs_status", table_name="file_processing_jobs")
    op.drop_index("ix_file_processing_jobs_file_hash", table_name="file_processing_jobs")
    op.drop_table("file_processing_jobs")
    op.drop_table("elections")
