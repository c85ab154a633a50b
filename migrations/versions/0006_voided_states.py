"""voided states: sessions whose copy in a hot store is out of date

A session moving off an instance whose hot store did not answer starts on its new instance
from SQL (its snapshot and what that store logged); the copy that store still holds is out
of date from then on.  This table names such copies, by store, until the store's instance
joins again and drops them (or the session's state is carried there again): a store that
comes back with its data (an append-only Redis, or a Redis cut off for a while) must not
serve or take updates on them.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-07 07:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "voided_states",
        sa.Column("store", sa.String(255), nullable=False),
        sa.Column("session_id", sa.String(64), nullable=False),
        sa.Column("voided_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("store", "session_id"),
    )


def downgrade() -> None:
    op.drop_table("voided_states")
