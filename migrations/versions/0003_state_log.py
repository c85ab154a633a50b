"""state log: the batches of state updates applied since the last snapshot round

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-06 06:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "state_log",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("batch", sa.LargeBinary(), nullable=False),
        sa.Column("written_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        # ids never used again on SQLite either: a snapshot round deletes the rows up to
        # the last one when it started, which must not name rows written after it
        sqlite_autoincrement=True,
    )


def downgrade() -> None:
    op.drop_table("state_log")
