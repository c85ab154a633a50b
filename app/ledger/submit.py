"""The client side of the ledger: validate, commit the intent, then send the task.

The intent row is committed before anything is sent, so a worker never sees a transaction
SQL does not hold, and a message lost after the commit is re-sent by the sweeper.  `send`
hands the id on for sending (the client queues it for its next ``apply_batch`` message);
when the broker refuses that message the call has already succeeded: the transaction is
recorded and pending, and the sweeper sends it once the broker is back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from sqlalchemy.orm import Session, sessionmaker

from app.db import statement, transaction
from app.ledger.handle import TransactionHandle
from app.ledger.intents import (
    Intent,
    Recorded,
    known_wallet_intent,
    purchase_intent,
    purchase_of,
    refund_intent,
    reward_intent,
    reward_of,
)
from app.ledger.models import Status
from app.ledger.requests import Purchase, Refund, Reward, check_currency
from app.validation import parse

Send = Callable[[int], object]


def submit_purchase(sessions: sessionmaker[Session], send: Send, currencies: Sequence[str], *,
                    player_id: str, sku: str, price: int, currency: str,
                    idempotency_key: str) -> TransactionHandle:
    """Record a purchase and send it to the transactions queue.

    Idempotent per key: the same key and parameters return the same transaction, other
    parameters raise InvalidRequest (field ``idempotency_key``).  Bad input raises
    InvalidRequest naming the field; nothing is written or sent.  Not retried here: a caller
    that sees an error may call again with the same key.
    """
    req = parse(Purchase, {"player_id": player_id, "sku": sku, "price": price,
                              "currency": currency, "idempotency_key": idempotency_key})
    check_currency(req.currency, currencies)
    return _submit(sessions, send, lambda db: purchase_intent(db, req),
                   first=(req.idempotency_key, purchase_of(req)))


def submit_reward(sessions: sessionmaker[Session], send: Send, currencies: Sequence[str], *,
                  player_id: str, amount: int, currency: str, idempotency_key: str,
                  reason: str = "reward") -> TransactionHandle:
    """Record a reward (registering a new player) and send it.  Idempotent per key, as
    `submit_purchase`."""
    req = parse(Reward, {"player_id": player_id, "amount": amount, "currency": currency,
                            "idempotency_key": idempotency_key, "reason": reason})
    check_currency(req.currency, currencies)
    return _submit(sessions, send, lambda db: reward_intent(db, req),
                   first=(req.idempotency_key, reward_of(req)))


def submit_refund(sessions: sessionmaker[Session], send: Send, *, player_id: str,
                  purchase_key: str, idempotency_key: str,
                  reason: str = "refund") -> TransactionHandle:
    """Record a refund of a committed purchase and send it.  Idempotent per key; a purchase
    is refunded at most once."""
    req = parse(Refund, {"player_id": player_id, "purchase_key": purchase_key,
                            "idempotency_key": idempotency_key, "reason": reason})
    return _submit(sessions, send, lambda db: refund_intent(db, req))


def _submit(sessions: sessionmaker[Session], send: Send,
            record: Callable[[Session], Recorded],
            first: tuple[str, Intent] | None = None) -> TransactionHandle:
    """Record the intent, then send it unless it is settled already.  With `first` (its key
    and intent), try the one-statement cases outside a transaction first (on PostgreSQL
    without the BEGIN and COMMIT round trips); `record` runs in a transaction when they
    do not apply."""
    recorded = None
    if first is not None:
        with statement(sessions) as connection:
            recorded = known_wallet_intent(connection, *first)
    if recorded is None:
        with transaction(sessions) as db:
            recorded = record(db)
    view = recorded.transaction
    if view.status == Status.PENDING:  # a duplicate of a pending intent is sent again too
        send(view.id)
    return TransactionHandle(view.id, view.idempotency_key, recorded.created, sessions)
