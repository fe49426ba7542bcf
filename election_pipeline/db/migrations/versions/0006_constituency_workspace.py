"""``constituencies.workspace``: the election workspace whose DuckDB store counts a contract of
no known election (docs/architecture.md#several-elections-at-once); NULL: the shared one.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-03

"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision: str = "0006"
down_revision: str | Sequence[str] | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("constituencies", sa.Column("workspace", sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("constituencies") as batch:
        batch.drop_column("workspace")
