"""Read-only snapshots of transactions, safe to hand across sessions and processes."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from app.ledger.models import LedgerTransaction

TRANSACTIONS = LedgerTransaction.__table__


def as_utc(value: datetime) -> datetime:
    """`value` as an aware UTC datetime (SQLite hands back naive UTC)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _maybe_utc(value: datetime | None) -> datetime | None:
    return None if value is None else as_utc(value)


@dataclass(frozen=True)
class TransactionView:
    """One transaction as read from SQL."""

    id: int
    idempotency_key: str
    kind: str
    player_id: str
    sku: str | None
    reason: str | None
    amount: int
    currency: str
    refund_of: int | None
    status: str
    attempts: int
    resends: int
    created_at: datetime
    committed_at: datetime | None
    rejected_at: datetime | None
    reject_reason: str | None
    last_error: str | None

    @classmethod
    def from_row(cls, row: Any) -> TransactionView:
        """Build a view from a row of ``ledger_transactions``."""
        m = row._mapping
        return cls(
            id=m["id"], idempotency_key=m["idempotency_key"], kind=m["kind"],
            player_id=m["player_id"], sku=m["sku"], reason=m["reason"], amount=m["amount"],
            currency=m["currency"], refund_of=m["refund_of"], status=m["status"],
            attempts=m["attempts"], resends=m["resends"], created_at=as_utc(m["created_at"]),
            committed_at=_maybe_utc(m["committed_at"]),
            rejected_at=_maybe_utc(m["rejected_at"]),
            reject_reason=m["reject_reason"], last_error=m["last_error"],
        )

    @property
    def final(self) -> bool:
        """True once committed or rejected."""
        return self.status != "pending"


def by_id(db: Session, transaction_id: int) -> TransactionView | None:
    """The transaction with `transaction_id`, or None."""
    row = db.execute(select(TRANSACTIONS).where(TRANSACTIONS.c.id == transaction_id)).first()
    return None if row is None else TransactionView.from_row(row)


def by_key(db: Session | Connection, key: str) -> TransactionView | None:
    """The transaction holding idempotency key `key`, or None."""
    row = db.execute(select(TRANSACTIONS).where(TRANSACTIONS.c.idempotency_key == key)).first()
    return None if row is None else TransactionView.from_row(row)
