"""Recording intents: idempotent per key, conflicts refused, bad input refused before SQL."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.errors import InvalidRequest
from app.ledger import submit_purchase, submit_refund, submit_reward
from app.ledger.models import LedgerTransaction, Player, Wallet
from app.ledger.submit import Send
from tests.ledger.helpers import (
    CURRENCIES,
    Outbox,
    assert_ledger_holds,
    balance,
    fund,
    row_counts,
    settle,
)

PURCHASE: dict[str, Any] = {"player_id": "p1", "sku": "sword", "price": 30, "currency": "gold",
            "idempotency_key": "order-1"}


def purchase(sessions: sessionmaker[Session], outbox: Send | None = None,
             **changes: Any) -> Any:
    return submit_purchase(sessions, outbox or Outbox(), CURRENCIES, **(PURCHASE | changes))


def test_reward_registers_the_player_and_credits_a_new_wallet(
        sessions: sessionmaker[Session]) -> None:
    outbox = Outbox()
    handle = submit_reward(sessions, outbox, CURRENCIES, player_id="p1", amount=100,
                           currency="gold", idempotency_key="signup-p1", reason="signup")
    assert handle.created and handle.status() == "pending"
    assert outbox.sent == [handle.transaction_id]
    assert row_counts(sessions) == {"ledger_players": 1, "ledger_wallets": 1,
                                    "ledger_transactions": 1, "ledger_entries": 0}
    settle(sessions, handle.transaction_id)
    view = handle.fetch()
    assert (view.status, view.kind, view.reason, view.amount) == (
        "committed", "reward", "signup", 100)
    assert balance(sessions, "p1") == 100
    assert_ledger_holds(sessions)


def test_same_key_and_parameters_return_the_same_transaction(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    outbox = Outbox()
    first = purchase(sessions, outbox)
    again = purchase(sessions, outbox)
    assert (first.created, again.created) == (True, False)
    assert again.transaction_id == first.transaction_id
    # A duplicate of a pending intent is sent again (it may be the first send that got lost).
    assert outbox.sent == [first.transaction_id, first.transaction_id]
    assert row_counts(sessions)["ledger_transactions"] == 2  # the funding reward and this


def test_a_duplicate_of_a_settled_transaction_is_not_sent_again(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    first = purchase(sessions)
    settle(sessions, first.transaction_id)
    outbox = Outbox()
    again = purchase(sessions, outbox)
    assert again.transaction_id == first.transaction_id and again.status() == "committed"
    assert outbox.sent == []
    assert balance(sessions, "p1") == 70


@pytest.mark.parametrize(("change", "named"), [
    ({"price": 31}, "price"),
    ({"sku": "shield"}, "sku"),
    ({"currency": "gems"}, "currency"),
    ({"player_id": "p2"}, "player_id"),
])
def test_same_key_with_other_parameters_is_a_conflict_and_changes_nothing(
        sessions: sessionmaker[Session], change: dict[str, Any], named: str) -> None:
    fund(sessions, "p1", 100)
    fund(sessions, "p2", 100)
    original = purchase(sessions)
    before = row_counts(sessions)
    outbox = Outbox()
    with pytest.raises(InvalidRequest) as caught:
        purchase(sessions, outbox, **change)
    assert caught.value.field == "idempotency_key"
    assert caught.value.value == "order-1"
    assert named in caught.value.reason
    assert row_counts(sessions) == before and outbox.sent == []
    view = original.fetch()
    assert (view.player_id, view.sku, view.amount, view.currency) == ("p1", "sword", 30, "gold")


def test_a_reward_key_reused_for_a_purchase_is_a_conflict(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100, key="shared-key")
    with pytest.raises(InvalidRequest) as caught:
        purchase(sessions, idempotency_key="shared-key")
    assert caught.value.field == "idempotency_key"
    assert "kind" in caught.value.reason


def test_a_reward_key_reused_for_a_new_player_registers_nobody(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100, key="grant-1")
    before = row_counts(sessions)
    with pytest.raises(InvalidRequest) as caught:
        submit_reward(sessions, Outbox(), CURRENCIES, player_id="newcomer", amount=100,
                      currency="gold", idempotency_key="grant-1")
    assert caught.value.field == "idempotency_key" and "player_id" in caught.value.reason
    assert row_counts(sessions) == before


@pytest.mark.parametrize(("change", "field"), [
    ({"price": 0}, "price"),
    ({"price": -5}, "price"),
    ({"price": 10**9 + 1}, "price"),
    ({"price": "30"}, "price"),
    ({"price": True}, "price"),
    ({"currency": "silver"}, "currency"),
    ({"currency": ""}, "currency"),
    ({"idempotency_key": None}, "idempotency_key"),
    ({"idempotency_key": ""}, "idempotency_key"),
    ({"idempotency_key": "k" * 129}, "idempotency_key"),
    ({"player_id": ""}, "player_id"),
    ({"player_id": "no spaces allowed"}, "player_id"),
    ({"player_id": "ghost"}, "player_id"),
    ({"sku": ""}, "sku"),
])
def test_bad_purchase_input_names_the_field_and_writes_nothing(
        sessions: sessionmaker[Session], change: dict[str, Any], field: str) -> None:
    fund(sessions, "p1", 100)
    before = row_counts(sessions)
    outbox = Outbox()
    with pytest.raises(InvalidRequest) as caught:
        purchase(sessions, outbox, **change)
    assert caught.value.field == field
    assert caught.value.value == change[field]
    assert row_counts(sessions) == before and outbox.sent == []


@pytest.mark.parametrize(("change", "field"), [
    ({"amount": 0}, "amount"),
    ({"amount": -1}, "amount"),
    ({"currency": "silver"}, "currency"),
    ({"idempotency_key": "k" * 129}, "idempotency_key"),
    ({"idempotency_key": None}, "idempotency_key"),
    ({"reason": "r" * 129}, "reason"),
    ({"player_id": "bad/id"}, "player_id"),
])
def test_bad_reward_input_names_the_field_and_writes_nothing(
        sessions: sessionmaker[Session], change: dict[str, Any], field: str) -> None:
    args: dict[str, Any] = {"player_id": "p1", "amount": 10, "currency": "gold",
                            "idempotency_key": "r-1"}
    with pytest.raises(InvalidRequest) as caught:
        submit_reward(sessions, Outbox(), CURRENCIES, **(args | change))
    assert caught.value.field == field
    assert row_counts(sessions) == {"ledger_players": 0, "ledger_wallets": 0,
                                    "ledger_transactions": 0, "ledger_entries": 0}


def test_unknown_player_purchase_writes_no_player_and_no_wallet(
        sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        purchase(sessions, player_id="ghost")
    assert (caught.value.field, caught.value.value) == ("player_id", "ghost")
    assert "unknown player" in caught.value.reason
    assert row_counts(sessions)["ledger_players"] == 0


def test_known_player_in_a_new_currency_gets_an_empty_wallet_and_is_rejected(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100, currency="gold")
    handle = purchase(sessions, currency="gems")
    outcome = settle(sessions, handle.transaction_id)
    assert outcome.status == "rejected"
    assert balance(sessions, "p1", "gems") == 0
    assert handle.fetch().reject_reason == "insufficient funds: balance 0 gems, price 30"


def test_the_intent_is_committed_before_the_task_is_sent(db_url: str,
                                                         sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    other = make_engine(db_url)  # another connection, as a worker would have
    seen: list[str] = []

    def send(transaction_id: int) -> None:
        with transaction(make_sessionmaker(other)) as db:
            row = db.get(LedgerTransaction, transaction_id)
            seen.append(row.status if row else "invisible")

    try:
        purchase(sessions, send)
    finally:
        other.dispose()
    assert seen == ["pending"]


# refunds ---------------------------------------------------------------------------------

def refund(sessions: sessionmaker[Session], key: str = "refund-1", purchase_key: str = "order-1",
           player_id: str = "p1", outbox: Send | None = None) -> Any:
    return submit_refund(sessions, outbox or Outbox(), player_id=player_id,
                         purchase_key=purchase_key, idempotency_key=key)


def test_a_committed_purchase_is_refunded_once(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    bought = purchase(sessions)
    settle(sessions, bought.transaction_id)
    first = refund(sessions)
    again = refund(sessions)
    assert first.created and not again.created
    assert again.transaction_id == first.transaction_id
    settle(sessions, first.transaction_id)
    view = first.fetch()
    assert (view.kind, view.status, view.amount, view.sku, view.refund_of) == (
        "refund", "committed", 30, "sword", bought.transaction_id)
    assert balance(sessions, "p1") == 100
    with pytest.raises(InvalidRequest) as caught:
        refund(sessions, key="refund-2")
    assert (caught.value.field, caught.value.value) == ("purchase_key", "order-1")
    assert "already refunded" in caught.value.reason
    assert_ledger_holds(sessions)


def test_a_refund_key_reused_for_another_purchase_names_the_purchase_key(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    for key, price in (("order-1", 30), ("order-2", 12)):
        settle(sessions, purchase(sessions, idempotency_key=key, price=price).transaction_id)
    refund(sessions, key="refund-1", purchase_key="order-1")
    with pytest.raises(InvalidRequest) as caught:
        refund(sessions, key="refund-1", purchase_key="order-2")
    assert caught.value.field == "idempotency_key"
    assert caught.value.reason.endswith("different purchase_key")  # not refund_of, amount


def test_refunds_need_a_committed_purchase_of_the_same_player(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 10, key="fund-p1")
    fund(sessions, "p2", 10)
    pending = purchase(sessions, idempotency_key="pending-order", price=5)
    rejected = purchase(sessions, idempotency_key="rejected-order", price=50)
    settle(sessions, rejected.transaction_id)
    cases: list[tuple[dict[str, Any], str, str]] = [
        ({"purchase_key": "no-such-order"}, "purchase_key", "no purchase"),
        ({"purchase_key": "fund-p1"}, "purchase_key", "no purchase"),
        ({"purchase_key": "pending-order"}, "purchase_key", "it is pending"),
        ({"purchase_key": "rejected-order"}, "purchase_key", "it is rejected"),
        ({"purchase_key": "pending-order", "player_id": "p2"}, "player_id", "another player"),
    ]
    before = row_counts(sessions)
    for change, field, reason in cases:
        with pytest.raises(InvalidRequest) as caught:
            refund(sessions, **change)
        assert caught.value.field == field and reason in caught.value.reason, change
    assert row_counts(sessions) == before
    assert pending.status() == "pending"


def test_bad_refund_input_names_the_field(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        refund(sessions, purchase_key="")
    assert caught.value.field == "purchase_key"


def test_wallet_and_player_rows_are_shared_by_later_intents(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    fund(sessions, "p1", 50, key="second-grant")
    purchase(sessions)
    with transaction(sessions) as db:
        wallets = db.execute(select(Wallet.id)).scalars().all()
        players = db.execute(select(Player.id)).scalars().all()
        wallet_ids = set(db.execute(select(LedgerTransaction.wallet_id)).scalars())
    assert players == ["p1"] and len(wallets) == 1 and wallet_ids == set(wallets)

