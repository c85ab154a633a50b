"""Helpers for the ledger tests: seeding wallets, settling intents, reading the ledger."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ledger import apply_transaction, audit, submit_purchase, submit_reward
from app.ledger.apply import Outcome
from app.ledger.handle import TransactionHandle
from app.ledger.models import LedgerEntry, LedgerTransaction, Player, Wallet

CURRENCIES = ("gold", "gems")


class Outbox:
    """A `send` callable that keeps what was sent, in order: one id (the client side's
    send) or a list of them (the sweeper's)."""

    def __init__(self) -> None:
        self.sent: list[int] = []

    def __call__(self, transaction_ids: int | list[int]) -> None:
        if isinstance(transaction_ids, int):
            self.sent.append(transaction_ids)
        else:
            self.sent += transaction_ids


def settle(sessions: sessionmaker[Session], transaction_id: int) -> Outcome:
    """Apply one intent in its own SQL transaction, as the task does."""
    with transaction(sessions) as db:
        return apply_transaction(db, transaction_id)


def settle_all(sessions: sessionmaker[Session], ids: Iterable[int]) -> list[Outcome]:
    """Apply every intent in `ids`, in order."""
    return [settle(sessions, i) for i in ids]


def fund(sessions: sessionmaker[Session], player: str, amount: int,
         currency: str = "gold", key: str | None = None) -> TransactionHandle:
    """Grant a reward and apply it (registers the player)."""
    outbox = Outbox()
    handle = submit_reward(sessions, outbox, CURRENCIES, player_id=player, amount=amount,
                           currency=currency, idempotency_key=key or f"fund-{player}-{amount}")
    settle_all(sessions, outbox.sent)
    return handle


def buy(sessions: sessionmaker[Session], player: str, price: int, key: str, *,
        sku: str = "sword", currency: str = "gold",
        outbox: Outbox | None = None) -> TransactionHandle:
    """Record a purchase intent (not applied)."""
    return submit_purchase(sessions, outbox or Outbox(), CURRENCIES, player_id=player, sku=sku,
                           price=price, currency=currency, idempotency_key=key)


def row_counts(sessions: sessionmaker[Session]) -> dict[str, int]:
    """Rows in each ledger table."""
    with transaction(sessions) as db:
        return {model.__tablename__: db.execute(select(func.count()).select_from(model))
                .scalar_one() for model in (Player, Wallet, LedgerTransaction, LedgerEntry)}


def balance(sessions: sessionmaker[Session], player: str, currency: str = "gold") -> int:
    """A wallet's balance."""
    with transaction(sessions) as db:
        return int(db.execute(select(Wallet.balance).where(
            Wallet.player_id == player, Wallet.currency == currency)).scalar_one())


def execute(sessions: sessionmaker[Session], sql: str, **params: Any) -> None:
    """Run raw SQL in its own transaction (to tamper with the ledger in audit tests)."""
    with transaction(sessions) as db:
        db.execute(text(sql), params)


def assert_ledger_holds(sessions: sessionmaker[Session]) -> None:
    """The audit finds nothing."""
    with transaction(sessions) as db:
        violations = audit(db)
    assert violations == [], "\n".join(str(v) for v in violations)


def lock_waiters(sessions: sessionmaker[Session]) -> int:
    """PostgreSQL backends of this database waiting for a lock right now."""
    with sessions() as db:
        return int(db.execute(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'")).scalar_one())


def racing_purchases(url: str, keys: list[str], price: int, start: Any) -> list[tuple[str, Any]]:
    """In a child process: wait at `start`, then buy each key once; returns (key, outcome),
    the outcome being (transaction id, created) or the InvalidRequest field."""
    from app.db import make_engine, make_sessionmaker
    from app.errors import InvalidRequest

    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    start.wait(timeout=60)
    results: list[tuple[str, Any]] = []
    for key in keys:
        try:
            handle = buy(sessions, "p1", price, key)
            results.append((key, (handle.transaction_id, handle.created)))
        except InvalidRequest as exc:
            results.append((key, exc.field))
    engine.dispose()
    return results
