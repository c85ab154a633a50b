"""Applying intents: one SQL transaction that settles a batch of them, each exactly once.

Inside the caller's transaction: lock the batch's transaction rows, then their wallets'
rows, check each status, write each one's two ledger entries, update the balances and mark
the transactions settled: five statements for the whole batch, however large, so one commit
settles many purchases.  On PostgreSQL the locks are ``SELECT ... FOR NO KEY UPDATE``: the
``FOR UPDATE`` variant for an update that changes no key, which serialises appliers of one
wallet exactly like ``FOR UPDATE`` but does not make a game server's new intent (whose
foreign key points at the wallet) wait for an apply in progress.  SQLite's ``BEGIN
IMMEDIATE`` already holds its one write lock.  A transaction that is no longer pending is
left alone, so applying twice, or from two workers at once, settles it once.  Insufficient
funds is final: the transaction is rejected with a reason and never retried.

Locks: an applier takes its transaction rows in id order and skips the ones another applier
holds (``SKIP LOCKED``: that one settles them, or they stay pending for its retry or the
sweeper), so overlapping batches never wait on each other's transactions; then it locks
their wallet rows in id order.  Nobody waits for a transaction row while holding a wallet
row, so appliers cannot deadlock one another.  Inside a batch, transactions of one wallet
settle in id order against the running balance.

A worker settles a batch with `settle_batch`: first every transaction whose wallet is free
(the busy wallets skipped too), then, in a second SQL transaction, the few whose wallet
another applier held, waiting for it.  A batch never holds its other wallets while it waits
for one, so one slow commit delays the purchases of its own wallets only, instead of every
batch that shares a wallet with it, and every batch that shares one with those.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, Table, bindparam, insert, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction, utcnow
from app.ledger.models import (
    CREDITS_PLAYER,
    Account,
    Kind,
    LedgerEntry,
    LedgerTransaction,
    Status,
    Wallet,
)

log = logging.getLogger(__name__)

MISSING = "missing"
ERROR_MAX = 500

_T = cast(Table, LedgerTransaction.__table__)
_W = cast(Table, Wallet.__table__)
_E = cast(Table, LedgerEntry.__table__)  # Core, not ORM: the ORM inserts row by row here
_SETTLE = (update(_T).where(_T.c.id == bindparam("tid"))
           .values(status=bindparam("new_status"), attempts=_T.c.attempts + 1,
                   committed_at=bindparam("committed"), rejected_at=bindparam("rejected"),
                   reject_reason=bindparam("why")))
_BALANCE = (update(_W).where(_W.c.id == bindparam("wid"))
            .values(balance=bindparam("new_balance"), updated_at=bindparam("at")))


@dataclass(frozen=True)
class Outcome:
    """What applying did: the transaction's status afterwards, and whether this call
    settled it (False when it was already settled, or does not exist)."""

    transaction_id: int
    status: str
    settled: bool
    reason: str | None = None
    busy: bool = False  # left pending because another applier held its wallet


def apply_transaction(db: Session, transaction_id: int,
                      now: datetime | None = None) -> Outcome:
    """Settle one pending transaction inside the caller's SQL transaction.

    Idempotent: a committed or rejected transaction is returned as it is.  Raises only
    what the database raises (the caller retries operational errors).
    """
    return apply_transactions(db, [transaction_id], now)[transaction_id]


def apply_transactions(db: Session, transaction_ids: Iterable[int],
                       now: datetime | None = None, *,
                       wait_for_wallets: bool = True) -> dict[int, Outcome]:
    """Settle every pending transaction of `transaction_ids` inside the caller's SQL
    transaction; the outcome of each id (duplicates count once).  A transaction another
    applier holds right now is left to it: ``pending``, not settled here.  Without
    `wait_for_wallets`, a transaction whose wallet another applier holds is left ``pending``
    and ``busy``, for the caller to settle later.

    Idempotent per transaction, as `apply_transaction`.  Raises only what the database
    raises; then nothing of the batch is settled.
    """
    ids = sorted(set(transaction_ids))
    rows = db.execute(select(_T.c.id, _T.c.status, _T.c.reject_reason, _T.c.wallet_id,
                             _T.c.kind, _T.c.amount, _T.c.currency)
                      .where(_T.c.id.in_(ids)).order_by(_T.c.id)
                      .with_for_update(key_share=True, skip_locked=True)).all()
    outcomes = {row.id: Outcome(row.id, row.status, settled=False, reason=row.reject_reason)
                for row in rows}
    skipped = [i for i in ids if i not in outcomes]
    if skipped:
        outcomes |= _absent(db, skipped)
    pending = [row for row in rows if row.status == Status.PENDING]
    if pending:
        outcomes |= _settle(db, pending, now, wait_for_wallets)
    return outcomes


def settle_batch(factory: sessionmaker[Session],
                 transaction_ids: Sequence[int]) -> dict[int, Outcome]:
    """Settle `transaction_ids` in one SQL transaction, then the ones whose wallet another
    applier held in a second one that waits for it; the outcome of each id.

    Raises only what the database raises; what the first transaction committed stays
    committed (settling it again changes nothing)."""
    with transaction(factory) as db:
        outcomes = apply_transactions(db, transaction_ids, wait_for_wallets=False)
    busy = [i for i, outcome in outcomes.items() if outcome.busy]
    if busy:
        with transaction(factory) as db:
            outcomes |= apply_transactions(db, busy)
    return outcomes


def _absent(db: Session, ids: list[int]) -> dict[int, Outcome]:
    """Ids the locking read did not return: another applier holds them (left to it, still
    pending here), or they do not exist."""
    held = set(db.execute(select(_T.c.id).where(_T.c.id.in_(ids))).scalars())
    for missing in (i for i in ids if i not in held):
        log.info("transaction %s does not exist; nothing to apply", missing)
    return {i: Outcome(i, Status.PENDING.value if i in held else MISSING, settled=False)
            for i in ids}


def _settle(db: Session, pending: Sequence[Any], now: datetime | None,
            wait_for_wallets: bool) -> dict[int, Outcome]:
    """Post or reject each pending row against its wallet's running balance (rows whose
    wallet is busy are left pending when not `wait_for_wallets`), stamped `now` or, by
    default, once every lock is held: only the writes and the commit come later."""
    wallet_ids = sorted({row.wallet_id for row in pending})
    balances: dict[int, int] = dict(db.execute(
        select(_W.c.id, _W.c.balance).where(_W.c.id.in_(wallet_ids)).order_by(_W.c.id)
        .with_for_update(key_share=True, skip_locked=not wait_for_wallets)).all())
    now = now or utcnow()
    outcomes: dict[int, Outcome] = {}
    entries: list[dict[str, Any]] = []
    settles: list[dict[str, Any]] = []
    for row in pending:
        if row.wallet_id not in balances:
            outcomes[row.id] = Outcome(row.id, Status.PENDING.value, settled=False, busy=True)
            continue
        delta = row.amount if Kind(row.kind) in CREDITS_PLAYER else -row.amount
        balance = balances[row.wallet_id]
        if balance + delta < 0:
            why = (f"insufficient funds: balance {balance} {row.currency}, "
                   f"price {row.amount}")
            log.info("transaction %s rejected: %s", row.id, why)
            settles.append(_settled(row.id, Status.REJECTED, now, why))
            outcomes[row.id] = Outcome(row.id, Status.REJECTED.value, settled=True, reason=why)
            continue
        balances[row.wallet_id] = balance + delta
        entries += _entries(row, delta, now)
        settles.append(_settled(row.id, Status.COMMITTED, now))
        outcomes[row.id] = Outcome(row.id, Status.COMMITTED.value, settled=True)
    _write(db, entries, settles, balances, now)
    return outcomes


def _entries(row: Any, delta: int, now: datetime) -> list[dict[str, Any]]:
    """The two sides of one posting: the player's wallet and the house."""
    common = {"transaction_id": row.id, "currency": row.currency, "created_at": now}
    return [common | {"account": Account.PLAYER.value, "wallet_id": row.wallet_id,
                      "amount": delta},
            common | {"account": Account.HOUSE.value, "wallet_id": None, "amount": -delta}]


def _settled(transaction_id: int, status: Status, now: datetime,
             why: str | None = None) -> dict[str, Any]:
    committed = status == Status.COMMITTED
    return {"tid": transaction_id, "new_status": status.value, "why": why,
            "committed": now if committed else None, "rejected": None if committed else now}


def _write(db: Session, entries: list[dict[str, Any]], settles: list[dict[str, Any]],
           balances: dict[int, int], now: datetime) -> None:
    """Entries, the balances they moved, then statuses: one statement each for the whole
    batch."""
    if entries:
        moved = sorted({e["wallet_id"] for e in entries if e["wallet_id"] is not None})
        db.execute(insert(_E), entries)
        db.execute(_BALANCE, [{"wid": w, "new_balance": balances[w], "at": now}
                              for w in moved])
    if settles:  # empty when every wallet of the batch was busy
        db.execute(_SETTLE, settles)


def record_failure(db: Session, transaction_ids: Iterable[int], error: str) -> int:
    """Count a failed attempt and keep its error on each still-pending transaction.

    Rows are locked in id order and the ones an applier holds are skipped (a note never
    waits for, or deadlocks with, an apply).  Idempotent in effect (a settled transaction
    is not touched); returns how many rows changed.
    """
    free = (select(_T.c.id).where(_T.c.id.in_(sorted(set(transaction_ids))),
                                  _T.c.status == Status.PENDING.value)
            .order_by(_T.c.id).with_for_update(key_share=True, skip_locked=True))
    result = cast("CursorResult[Any]", db.execute(
        update(_T).where(_T.c.id.in_(free))
        .values(attempts=_T.c.attempts + 1, last_error=error[:ERROR_MAX])
    ))
    return result.rowcount


def note_failure(factory: sessionmaker[Session], transaction_ids: Iterable[int],
                 error: BaseException) -> bool:
    """Best effort: record a failed attempt of a batch in a transaction of its own.

    Never raises for a database error (the database may be what failed); returns whether
    the note was written.  Not retried.
    """
    ids = sorted(set(transaction_ids))
    text = f"{error.__class__.__name__}: {error}"
    try:
        with transaction(factory) as db:
            return record_failure(db, ids, text) > 0
    except SQLAlchemyError as exc:
        log.info("could not note the failure of transactions %s: %s", ids, exc)
        return False
