"""Ledger tables: players, wallets, transactions (intents) and double-entry ledger entries.

Every transaction moves ``amount`` between a player's wallet and the house: a purchase
debits the wallet, a reward or a refund credits it.  Its two entries (``player`` and
``house``) sum to zero.  Only wallet balances are kept as running totals; the house's
position is the sum of its entries, so no transaction ever waits on a shared house row.

Alembic owns the schema (``migrations/versions/0002_ledger.py``); every change here comes
with a migration.  Uniqueness is expressed as unique indexes and every constraint is named,
so migrations and audits can refer to them.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from app.db import Base, utcnow

# 64-bit ids on PostgreSQL; SQLite only auto-increments an INTEGER PRIMARY KEY.
Id = BigInteger().with_variant(Integer(), "sqlite")

KEY_MAX = 128
SKU_MAX = 64
REASON_MAX = 128


class Kind(StrEnum):
    """What a transaction does to the player's wallet."""

    PURCHASE = "purchase"  # debit the player, credit the house
    REWARD = "reward"  # credit the player, debit the house
    REFUND = "refund"  # credit the player back for a committed purchase


class Status(StrEnum):
    """Where a transaction stands; ``committed`` and ``rejected`` are final."""

    PENDING = "pending"
    COMMITTED = "committed"
    REJECTED = "rejected"


class Account(StrEnum):
    """The two sides of every transaction."""

    PLAYER = "player"
    HOUSE = "house"


CREDITS_PLAYER = frozenset({Kind.REWARD, Kind.REFUND})


class Player(Base):
    """A player the ledger knows; purchases by anyone else are refused."""

    __tablename__ = "ledger_players"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Wallet(Base):
    """A player's balance in one currency; equals the sum of its ledger entries."""

    __tablename__ = "ledger_wallets"
    __table_args__ = (
        Index("uq_ledger_wallets_player_currency", "player_id", "currency", unique=True),
        CheckConstraint("balance >= 0", name="ck_ledger_wallets_balance"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    player_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("ledger_players.id", name="fk_ledger_wallets_player"))
    currency: Mapped[str] = mapped_column(String(16))
    balance: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class LedgerTransaction(Base):
    """One intent, unique by idempotency key: pending until a worker commits or rejects it."""

    __tablename__ = "ledger_transactions"
    __table_args__ = (
        Index("uq_ledger_transactions_key", "idempotency_key", unique=True),
        Index("uq_ledger_transactions_refund_of", "refund_of", unique=True),
        Index("ix_ledger_transactions_player", "player_id", "created_at"),
        Index("ix_ledger_transactions_due", "status", "resend_at"),
        CheckConstraint("kind IN ('purchase', 'reward', 'refund')",
                        name="ck_ledger_transactions_kind"),
        CheckConstraint("status IN ('pending', 'committed', 'rejected')",
                        name="ck_ledger_transactions_status"),
        CheckConstraint("amount > 0", name="ck_ledger_transactions_amount"),
        CheckConstraint("(kind = 'refund') = (refund_of IS NOT NULL)",
                        name="ck_ledger_transactions_refund_of"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    idempotency_key: Mapped[str] = mapped_column(String(KEY_MAX))
    kind: Mapped[str] = mapped_column(String(8))
    player_id: Mapped[str] = mapped_column(
        String(64), ForeignKey("ledger_players.id", name="fk_ledger_transactions_player"))
    wallet_id: Mapped[int] = mapped_column(
        Id, ForeignKey("ledger_wallets.id", name="fk_ledger_transactions_wallet"))
    sku: Mapped[str | None] = mapped_column(String(SKU_MAX), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(REASON_MAX), nullable=True)
    amount: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(16))
    refund_of: Mapped[int | None] = mapped_column(
        Id, ForeignKey("ledger_transactions.id", name="fk_ledger_transactions_refund_of"),
        nullable=True)
    status: Mapped[str] = mapped_column(String(9), default=Status.PENDING.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    resends: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    resend_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    committed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    rejected_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    reject_reason: Mapped[str | None] = mapped_column(String(200), nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)


class LedgerEntry(Base):
    """One side of a committed transaction; a transaction's entries sum to zero."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        Index("uq_ledger_entries_transaction_account", "transaction_id", "account", unique=True),
        Index("ix_ledger_entries_wallet", "wallet_id"),
        CheckConstraint("account IN ('player', 'house')", name="ck_ledger_entries_account"),
        CheckConstraint("(account = 'player') = (wallet_id IS NOT NULL)",
                        name="ck_ledger_entries_wallet"),
        CheckConstraint("amount <> 0", name="ck_ledger_entries_amount"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    transaction_id: Mapped[int] = mapped_column(
        Id, ForeignKey("ledger_transactions.id", name="fk_ledger_entries_transaction"))
    account: Mapped[str] = mapped_column(String(8))
    wallet_id: Mapped[int | None] = mapped_column(
        Id, ForeignKey("ledger_wallets.id", name="fk_ledger_entries_wallet"), nullable=True)
    currency: Mapped[str] = mapped_column(String(16))
    amount: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
