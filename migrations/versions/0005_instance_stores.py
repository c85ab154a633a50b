"""instance stores: the hot store's name each server instance last joined with

The registry in Redis records each instance's hot store; this table keeps the store's name
on the state log beside the log, so that it outlives a registry lost with its Redis: a
session placed away from an instance that never came back after a full restart still gets
what that instance's store logged.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-07 01:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "instance_stores",
        sa.Column("instance", sa.String(64), nullable=False),
        sa.Column("store", sa.String(255), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("instance"),
    )


def downgrade() -> None:
    op.drop_table("instance_stores")
