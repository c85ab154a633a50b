"""ledger: players, wallets, transactions, double-entry entries

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TZ = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ledger_players",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    _wallets()
    _transactions()
    _entries()


def _wallets() -> None:
    op.create_table(
        "ledger_wallets",
        sa.Column("id", ID, nullable=False),
        sa.Column("player_id", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("balance", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("updated_at", TZ, nullable=False),
        sa.CheckConstraint("balance >= 0", name="ck_ledger_wallets_balance"),
        sa.ForeignKeyConstraint(["player_id"], ["ledger_players.id"],
                                name="fk_ledger_wallets_player"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_ledger_wallets_player_currency", "ledger_wallets",
                    ["player_id", "currency"], unique=True)


def _transactions() -> None:
    op.create_table(
        "ledger_transactions",
        sa.Column("id", ID, nullable=False),
        sa.Column("idempotency_key", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("player_id", sa.String(length=64), nullable=False),
        sa.Column("wallet_id", ID, nullable=False),
        sa.Column("sku", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.String(length=128), nullable=True),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("refund_of", ID, nullable=True),
        sa.Column("status", sa.String(length=9), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("resends", sa.Integer(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.Column("resend_at", TZ, nullable=False),
        sa.Column("committed_at", TZ, nullable=True),
        sa.Column("rejected_at", TZ, nullable=True),
        sa.Column("reject_reason", sa.String(length=200), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.CheckConstraint("kind IN ('purchase', 'reward', 'refund')",
                           name="ck_ledger_transactions_kind"),
        sa.CheckConstraint("status IN ('pending', 'committed', 'rejected')",
                           name="ck_ledger_transactions_status"),
        sa.CheckConstraint("amount > 0", name="ck_ledger_transactions_amount"),
        sa.CheckConstraint("(kind = 'refund') = (refund_of IS NOT NULL)",
                           name="ck_ledger_transactions_refund_of"),
        sa.ForeignKeyConstraint(["player_id"], ["ledger_players.id"],
                                name="fk_ledger_transactions_player"),
        sa.ForeignKeyConstraint(["wallet_id"], ["ledger_wallets.id"],
                                name="fk_ledger_transactions_wallet"),
        sa.ForeignKeyConstraint(["refund_of"], ["ledger_transactions.id"],
                                name="fk_ledger_transactions_refund_of"),
        sa.PrimaryKeyConstraint("id"),
    )
    table = "ledger_transactions"
    op.create_index("uq_ledger_transactions_key", table, ["idempotency_key"], unique=True)
    op.create_index("uq_ledger_transactions_refund_of", table, ["refund_of"], unique=True)
    op.create_index("ix_ledger_transactions_player", table, ["player_id", "created_at"])
    op.create_index("ix_ledger_transactions_due", table, ["status", "resend_at"])


def _entries() -> None:
    op.create_table(
        "ledger_entries",
        sa.Column("id", ID, nullable=False),
        sa.Column("transaction_id", ID, nullable=False),
        sa.Column("account", sa.String(length=8), nullable=False),
        sa.Column("wallet_id", ID, nullable=True),
        sa.Column("currency", sa.String(length=16), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("created_at", TZ, nullable=False),
        sa.CheckConstraint("account IN ('player', 'house')", name="ck_ledger_entries_account"),
        sa.CheckConstraint("(account = 'player') = (wallet_id IS NOT NULL)",
                           name="ck_ledger_entries_wallet"),
        sa.CheckConstraint("amount <> 0", name="ck_ledger_entries_amount"),
        sa.ForeignKeyConstraint(["transaction_id"], ["ledger_transactions.id"],
                                name="fk_ledger_entries_transaction"),
        sa.ForeignKeyConstraint(["wallet_id"], ["ledger_wallets.id"],
                                name="fk_ledger_entries_wallet"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("uq_ledger_entries_transaction_account", "ledger_entries",
                    ["transaction_id", "account"], unique=True)
    op.create_index("ix_ledger_entries_wallet", "ledger_entries", ["wallet_id"])


def downgrade() -> None:
    op.drop_table("ledger_entries")
    op.drop_table("ledger_transactions")
    op.drop_table("ledger_wallets")
    op.drop_table("ledger_players")
