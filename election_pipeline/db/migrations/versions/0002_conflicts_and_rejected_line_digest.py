"""Transactions in conflict, and rejected lines kept as a prefix with their length and hash.

* ``transactions.in_conflict``: another copy of the same ``tx_id`` with different content was
  read; no copy stands (docs/input-format.md#counting-rules).
* ``rejected_rows.line_length`` and ``rejected_rows.line_sha256``: ``raw_line`` keeps the first
  65,536 characters of a rejected line; these give the whole line's size in bytes and SHA-256.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-02

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Upgrade schema."""
    with op.batch_alter_table("transactions") as batch:
        batch.add_column(sa.Column("in_conflict", sa.Boolean(), server_default=sa.false(), nullable=False))
    with op.batch_alter_table("rejected_rows") as batch:
        batch.add_column(sa.Column("line_length", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("line_sha256", sa.String(length=64), nullable=True))


def downgrade() -> None:
    """Downgrade schema."""
    with op.batch_alter_table("rejected_rows") as batch:
        batch.drop_column("line_sha256")
        batch.drop_column("line_length")
    with op.batch_alter_table("transactions") as batch:
        batch.drop_column("in_conflict")
