"""Applying an intent: one SQL transaction that settles it exactly once.

Inside the caller's transaction: lock the transaction row, then the wallet row, check the
status, write both ledger entries, update the balance and mark the transaction committed.
On PostgreSQL the locks are ``SELECT ... FOR NO KEY UPDATE``: the ``FOR UPDATE`` variant for
an update that changes no key, which serialises appliers of one wallet exactly like ``FOR
UPDATE`` but does not make a game server's new intent (whose foreign key points at the
wallet) wait for an apply in progress.  SQLite's ``BEGIN IMMEDIATE`` already holds its one
write lock.  A transaction that is no longer pending is left alone, so applying
twice, or from two workers at once, settles it once.  Insufficient funds is final: the
transaction is rejected with a reason and never retried.

Every applier locks one transaction row and then one wallet row, always in that order, so
appliers cannot deadlock one another.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ledger.models import (
    CREDITS_PLAYER,
    Account,
    Kind,
    LedgerEntry,
    LedgerTransaction,
    Status,
    Wallet,
)
from app.models import utcnow

log = logging.getLogger(__name__)

MISSING = "missing"
ERROR_MAX = 500


@dataclass(frozen=True)
class Outcome:
    """What applying did: the transaction's status afterwards, and whether this call
    settled it (False when it was already settled, or does not exist)."""

    transaction_id: int
    status: str
    settled: bool
    reason: str | None = None


def apply_transaction(db: Session, transaction_id: int,
                      now: datetime | None = None) -> Outcome:
    """Settle one pending transaction inside the caller's SQL transaction.

    Idempotent: a committed or rejected transaction is returned as it is.  Raises only
    what the database raises (the caller retries operational errors).
    """
    txn = db.execute(select(LedgerTransaction).where(LedgerTransaction.id == transaction_id)
                     .with_for_update(key_share=True)).scalar_one_or_none()
    if txn is None:
        log.info("transaction %s does not exist; nothing to apply", transaction_id)
        return Outcome(transaction_id, MISSING, settled=False)
    if txn.status != Status.PENDING:
        return Outcome(txn.id, txn.status, settled=False, reason=txn.reject_reason)
    wallet = db.execute(select(Wallet).where(Wallet.id == txn.wallet_id)
                        .with_for_update(key_share=True)).scalar_one()
    now = now or utcnow()
    txn.attempts += 1
    delta = txn.amount if Kind(txn.kind) in CREDITS_PLAYER else -txn.amount
    if wallet.balance + delta < 0:
        return _reject(txn, wallet, now)
    _post(db, txn, wallet, delta, now)
    return Outcome(txn.id, txn.status, settled=True)


def _reject(txn: LedgerTransaction, wallet: Wallet, now: datetime) -> Outcome:
    txn.status, txn.rejected_at = Status.REJECTED.value, now
    txn.reject_reason = (f"insufficient funds: balance {wallet.balance} {wallet.currency}, "
                         f"price {txn.amount}")
    log.info("transaction %s rejected: %s", txn.id, txn.reject_reason)
    return Outcome(txn.id, txn.status, settled=True, reason=txn.reject_reason)


def _post(db: Session, txn: LedgerTransaction, wallet: Wallet, delta: int,
          now: datetime) -> None:
    db.add_all([
        LedgerEntry(transaction_id=txn.id, account=Account.PLAYER.value, wallet_id=wallet.id,
                    currency=txn.currency, amount=delta, created_at=now),
        LedgerEntry(transaction_id=txn.id, account=Account.HOUSE.value, wallet_id=None,
                    currency=txn.currency, amount=-delta, created_at=now),
    ])
    wallet.balance += delta
    wallet.updated_at = now
    txn.status, txn.committed_at = Status.COMMITTED.value, now


def record_failure(db: Session, transaction_id: int, error: str) -> bool:
    """Count a failed attempt and keep its error on a still-pending transaction.

    Idempotent in effect (a settled transaction is not touched); returns whether a row
    changed.
    """
    result = cast("CursorResult[Any]", db.execute(
        update(LedgerTransaction)
        .where(LedgerTransaction.id == transaction_id,
               LedgerTransaction.status == Status.PENDING.value)
        .values(attempts=LedgerTransaction.attempts + 1, last_error=error[:ERROR_MAX])
    ))
    return result.rowcount > 0


def note_failure(factory: sessionmaker[Session], transaction_id: int,
                 error: BaseException) -> bool:
    """Best effort: record a failed attempt in a transaction of its own.

    Never raises for a database error (the database may be what failed); returns whether
    the note was written.  Not retried.
    """
    text = f"{error.__class__.__name__}: {error}"
    try:
        with transaction(factory) as db:
            return record_failure(db, transaction_id, text)
    except SQLAlchemyError as exc:
        log.info("could not note the failure of transaction %s: %s", transaction_id, exc)
        return False
