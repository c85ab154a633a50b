"""Recording intents: one row per idempotency key, written before any message is sent.

The same key with the same parameters yields the same transaction, from any number of
processes at once; the same key with other parameters raises InvalidRequest and changes
nothing.  Concurrent writers meet on the unique key index: ``INSERT ... ON CONFLICT DO
NOTHING`` lets exactly one of them insert, the others read the winner's row.

Who may transact: a reward registers its player (a game server grants a starting reward
when an account is created); purchases and refunds need a known player.  A known player
buying in a currency they have never held gets an empty wallet, so the purchase is
rejected for insufficient funds rather than refused as bad input.

The client tries `known_wallet_intent` first, outside any transaction: a new key of a player
with a wallet, or a repeated key, costs one statement there (on PostgreSQL without the
round trips of BEGIN and COMMIT).  Only a new wallet or player takes the transaction.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, bindparam, select
from sqlalchemy.orm import Session
from sqlalchemy.sql.dml import Insert, ReturningInsert

from app.db import dialect_insert, utcnow
from app.errors import InvalidRequest
from app.ledger.models import Kind, Player, Status, Wallet
from app.ledger.policy import RESEND_AFTER
from app.ledger.requests import Purchase, Refund, Reward
from app.ledger.view import TRANSACTIONS, TransactionView, by_key

# The caller's parameter for an intent's field, where the names differ.
CALLER_NAMES: dict[Kind, dict[str, str]] = {
    Kind.PURCHASE: {"amount": "price"},
    Kind.REFUND: {name: "purchase_key" for name in ("refund_of", "amount", "currency", "sku")},
}


@dataclass(frozen=True)
class Intent:
    """What a transaction will do; two requests with one key must agree on all of it."""

    kind: Kind
    player_id: str
    amount: int
    currency: str
    sku: str | None = None
    reason: str | None = None
    refund_of: int | None = None

    def differences(self, view: TransactionView) -> list[str]:
        """The caller's names of the parameters where `view` differs from this intent (a
        purchase's amount is its ``price``; what a refund takes from its purchase is named
        by the ``purchase_key`` that chose it)."""
        names = CALLER_NAMES.get(self.kind, {})
        differ = [f.name for f in fields(self) if getattr(view, f.name) != getattr(self, f.name)]
        return list(dict.fromkeys(names.get(name, name) for name in differ))


@dataclass(frozen=True)
class Recorded:
    """The transaction a request resolved to, and whether this request created it."""

    transaction: TransactionView
    created: bool


def purchase_of(req: Purchase) -> Intent:
    """What a purchase request will do."""
    return Intent(Kind.PURCHASE, req.player_id, req.price, req.currency, sku=req.sku)


def reward_of(req: Reward) -> Intent:
    """What a reward request will do."""
    return Intent(Kind.REWARD, req.player_id, req.amount, req.currency, reason=req.reason)


def purchase_intent(db: Session, req: Purchase, now: datetime | None = None) -> Recorded:
    """Record a purchase intent (idempotent per key); the player must be known."""
    return _record(db, req.idempotency_key, purchase_of(req), register=False,
                   now=now or utcnow())


def reward_intent(db: Session, req: Reward, now: datetime | None = None) -> Recorded:
    """Record a reward intent (idempotent per key); registers the player if new."""
    return _record(db, req.idempotency_key, reward_of(req), register=True,
                   now=now or utcnow())


def known_wallet_intent(db: Connection, key: str, intent: Intent,
                        now: datetime | None = None) -> Recorded | None:
    """The common cases of a purchase or reward in one statement each, none of which needs
    a transaction around it: a new key of a player who holds a wallet in the currency is
    inserted (the wallet looked up inside the insert), a taken key read back and compared.
    None when neither happened (the wallet or the player is new): the caller records the
    intent with `purchase_intent` or `reward_intent`, in a transaction."""
    row = db.execute(_inserts(db.dialect.name).with_wallet,
                     _values(key, intent, now or utcnow())).first()
    if row is not None:
        return Recorded(TransactionView.from_row(row), created=True)
    existing = by_key(db, key)
    if existing is None:
        return None
    return Recorded(_same(key, intent, existing), created=False)


def refund_intent(db: Session, req: Refund, now: datetime | None = None) -> Recorded:
    """Record a refund of a committed purchase (idempotent per key; one refund a purchase)."""
    purchase = _refundable(db, req)
    intent = Intent(Kind.REFUND, req.player_id, purchase.amount, purchase.currency,
                    sku=purchase.sku, reason=req.reason, refund_of=purchase.id)
    return _record(db, req.idempotency_key, intent, register=False, now=now or utcnow(),
                   purchase_key=req.purchase_key)


def _refundable(db: Session, req: Refund) -> TransactionView:
    purchase = by_key(db, req.purchase_key)
    if purchase is None or purchase.kind != Kind.PURCHASE:
        raise InvalidRequest("purchase_key", req.purchase_key, "no purchase holds this key")
    if purchase.player_id != req.player_id:
        raise InvalidRequest("player_id", req.player_id,
                             f"purchase {req.purchase_key!r} belongs to another player")
    if purchase.status != Status.COMMITTED:
        raise InvalidRequest("purchase_key", req.purchase_key,
                             f"only a committed purchase can be refunded; it is {purchase.status}")
    return purchase


def _record(db: Session, key: str, intent: Intent, *, register: bool, now: datetime,
            purchase_key: str | None = None) -> Recorded:
    """Insert the intent unless its key exists.  A new key of a player with a wallet in the
    currency costs one statement, the wallet looked up inside it; a new wallet or a taken
    key costs a lookup and a second insert."""
    params = _values(key, intent, now)
    dialect = db.get_bind().dialect.name
    row = db.execute(_inserts(dialect).with_wallet, params).first()
    if row is None:  # the wallet (or the player) is new, or a unique index is taken
        params["wallet_id"] = _wallet_id(db, intent.player_id, intent.currency, register, now)
        row = db.execute(_inserts(dialect).plain, params).first()
    if row is None:
        return Recorded(_after_conflict(db, key, intent, purchase_key), created=False)
    return Recorded(TransactionView.from_row(row), created=True)


def _same(key: str, intent: Intent, existing: TransactionView) -> TransactionView:
    differences = intent.differences(existing)
    if differences:
        raise InvalidRequest("idempotency_key", key, "already used for a transaction with "
                             f"different {', '.join(differences)}")
    return existing


def _after_conflict(db: Session, key: str, intent: Intent,
                    purchase_key: str | None) -> TransactionView:
    """Another writer holds a unique index: the key's (compare with its row) or, for a
    refund, the one-refund-per-purchase index."""
    existing = by_key(db, key)
    if existing is None:
        raise InvalidRequest("purchase_key", purchase_key,
                             "already refunded by another transaction")
    return _same(key, intent, existing)


def _wallet_id(db: Session, player_id: str, currency: str, register: bool,
               now: datetime) -> int:
    """The player's wallet in `currency`; a player with any wallet is known.  A new wallet
    is created empty, registering the player first when `register`."""
    query = select(Wallet.id).where(Wallet.player_id == player_id, Wallet.currency == currency)
    found = db.execute(query).scalar_one_or_none()
    if found is not None:
        return found
    if register:
        db.execute(_insert_ignoring_conflicts(db, Player.__table__,
                                              {"id": player_id, "created_at": now}))
    elif db.get(Player, player_id) is None:
        raise InvalidRequest("player_id", player_id,
                             "unknown player (a reward registers a player)")
    db.execute(_insert_ignoring_conflicts(db, Wallet.__table__, {
        "player_id": player_id, "currency": currency, "balance": 0,
        "created_at": now, "updated_at": now,
    }))
    return db.execute(query).scalar_one()


def _values(key: str, intent: Intent, now: datetime) -> dict[str, Any]:
    return {
        "idempotency_key": key, "kind": intent.kind.value, "player_id": intent.player_id,
        "sku": intent.sku, "reason": intent.reason,
        "amount": intent.amount, "currency": intent.currency, "refund_of": intent.refund_of,
        "status": Status.PENDING.value, "attempts": 0, "resends": 0, "created_at": now,
        "resend_at": now + RESEND_AFTER,
    }


@dataclass(frozen=True)
class _Inserts:
    """An intent's INSERT statements, built once per dialect and run with parameters (so
    SQLAlchemy compiles each once): `with_wallet` looks the wallet up itself (and inserts
    nothing when there is none), `plain` takes ``wallet_id``.  Both skip a taken key."""

    with_wallet: ReturningInsert[Any]
    plain: ReturningInsert[Any]


_INSERTS: dict[str, _Inserts] = {}
_VALUE_COLUMNS = ("idempotency_key", "kind", "player_id", "sku", "reason", "amount",
                  "currency", "refund_of", "status", "attempts", "resends", "created_at",
                  "resend_at")


def _inserts(dialect: str) -> _Inserts:
    if dialect not in _INSERTS:
        table = TRANSACTIONS
        binds = [bindparam(name, type_=table.c[name].type) for name in _VALUE_COLUMNS]
        wallet = (select(*binds, Wallet.id)
                  .where(Wallet.player_id == bindparam("player_id"),
                         Wallet.currency == bindparam("currency")))
        with_wallet = (dialect_insert(dialect, table)
                       .from_select([*_VALUE_COLUMNS, "wallet_id"], wallet)
                       .on_conflict_do_nothing().returning(*table.c))
        plain = (dialect_insert(dialect, table)
                 .values({name: bindparam(name) for name in (*_VALUE_COLUMNS, "wallet_id")})
                 .on_conflict_do_nothing().returning(*table.c))
        _INSERTS[dialect] = _Inserts(with_wallet, plain)
    return _INSERTS[dialect]


def _insert_ignoring_conflicts(db: Session, table: Any, values: dict[str, Any]) -> Insert:
    """``INSERT ... ON CONFLICT DO NOTHING`` in the session's dialect."""
    insert = dialect_insert(db.get_bind().dialect.name, table)
    return insert.values(**values).on_conflict_do_nothing()
