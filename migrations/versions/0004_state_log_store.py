"""state log: the hot store each batch was applied to

A snapshot round on a hot store deletes only that store's rows, and a store's recovery
replays only its rows, so that hot stores sharing one database (two fleets, or a hot
Redis per server instance) never delete or replay each other's batches.

Rows written before this revision get the store '' (`app.players.models.UNNAMED_STORE`):
which store applied them is not known.  Every store's recovery replays them, as every
recovery did before: the safe choice, since the store that applied them gets them back
(another only gets copies of sessions it does not serve).  No round deletes them, since no
one store's snapshots are known to cover them.  Once every hot store sharing the database
has finished a snapshot round that started after the upgrade, the snapshots hold them, and
``DELETE FROM state_log WHERE store = ''`` may drop them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-06 11:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Added in place (no table copy on SQLite), so the rows keep their AUTOINCREMENT ids.
    op.add_column("state_log", sa.Column("store", sa.String(255), nullable=False,
                                         server_default=""))
    op.create_index("ix_state_log_store_id", "state_log", ["store", "id"])


def downgrade() -> None:
    op.drop_index("ix_state_log_store_id", table_name="state_log")
    op.drop_column("state_log", "store")
