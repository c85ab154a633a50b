"""Applying intents: one SQL transaction, exactly once, final rejections, row locks."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction, utcnow
from app.ledger import apply_transaction
from app.ledger.apply import (
    Outcome,
    apply_transactions,
    note_failure,
    record_failure,
    settle_batch,
)
from app.ledger.models import LedgerEntry, LedgerTransaction
from app.simulate.sqlfaults import FAULT_MESSAGE, sql_faults
from tests.ledger.helpers import (
    assert_ledger_holds,
    balance,
    buy,
    fund,
    lock_waiters,
    row_counts,
    settle,
)
from tests.waiting import wait_for


def entries_of(sessions: sessionmaker[Session], transaction_id: int) -> list[tuple[Any, ...]]:
    with transaction(sessions) as db:
        rows = db.execute(select(LedgerEntry.account, LedgerEntry.amount, LedgerEntry.currency)
                          .where(LedgerEntry.transaction_id == transaction_id)
                          .order_by(LedgerEntry.account)).all()
    return [tuple(row) for row in rows]


def test_a_purchase_debits_the_wallet_with_two_balancing_entries(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "order-1")
    outcome = settle(sessions, handle.transaction_id)
    assert outcome == Outcome(handle.transaction_id, "committed", settled=True)
    assert entries_of(sessions, handle.transaction_id) == [("house", 30, "gold"),
                                                           ("player", -30, "gold")]
    view = handle.fetch()
    assert view.committed_at is not None and view.committed_at >= view.created_at
    assert (view.attempts, view.rejected_at) == (1, None)
    assert balance(sessions, "p1") == 70
    assert_ledger_holds(sessions)


def test_applying_again_changes_nothing(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "order-1")
    settle(sessions, handle.transaction_id)
    before = row_counts(sessions)
    again = settle(sessions, handle.transaction_id)
    assert again == Outcome(handle.transaction_id, "committed", settled=False)
    assert row_counts(sessions) == before and balance(sessions, "p1") == 70
    assert handle.fetch().attempts == 1


def test_spending_the_whole_balance_is_allowed(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 30)
    assert settle(sessions, buy(sessions, "p1", 30, "all-in").transaction_id).status == "committed"
    assert balance(sessions, "p1") == 0


def test_insufficient_funds_is_a_final_rejection(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 20)
    handle = buy(sessions, "p1", 30, "too-dear")
    outcome = settle(sessions, handle.transaction_id)
    assert outcome.status == "rejected" and outcome.settled
    assert outcome.reason == "insufficient funds: balance 20 gold, price 30"
    assert entries_of(sessions, handle.transaction_id) == []
    fund(sessions, "p1", 100, key="top-up")
    again = settle(sessions, handle.transaction_id)  # more money later changes nothing
    assert (again.status, again.settled, again.reason) == ("rejected", False, outcome.reason)
    view = handle.fetch()
    assert view.rejected_at is not None and view.committed_at is None and view.attempts == 1
    assert balance(sessions, "p1") == 120
    assert_ledger_holds(sessions)


def test_an_unknown_transaction_id_is_reported_missing(sessions: sessionmaker[Session],
                                                       caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="app.ledger.apply"):
        assert settle(sessions, 4242) == Outcome(4242, "missing", settled=False)
    assert "4242 does not exist" in caplog.text


def test_record_failure_counts_attempts_on_pending_transactions_only(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    pending = buy(sessions, "p1", 10, "pending")
    done = buy(sessions, "p1", 10, "done")
    settle(sessions, done.transaction_id)
    with transaction(sessions) as db:
        assert record_failure(db, [pending.transaction_id, done.transaction_id], "x" * 900) == 1
        assert record_failure(db, [done.transaction_id], "too late") == 0
    view = pending.fetch()
    assert view.attempts == 1 and view.last_error == "x" * 500
    assert done.fetch().last_error is None


def test_note_failure_writes_in_its_own_transaction_and_never_raises(
        db_url: str, sessions: sessionmaker[Session], caplog: pytest.LogCaptureFixture) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 10, "k")
    assert note_failure(sessions, [handle.transaction_id], RuntimeError("boom"))
    assert handle.fetch().last_error == "RuntimeError: boom"
    engine = sessions.kw["bind"]
    with sql_faults(engine, rate=1.0), caplog.at_level(logging.INFO, "app.ledger.apply"):
        assert not note_failure(sessions, [handle.transaction_id], RuntimeError("again"))
    assert "could not note the failure" in caplog.text
    assert handle.fetch().attempts == 1


def test_rewards_and_refunds_credit_the_player(sessions: sessionmaker[Session]) -> None:
    handle = fund(sessions, "p1", 40)
    assert entries_of(sessions, handle.transaction_id) == [("house", -40, "gold"),
                                                           ("player", 40, "gold")]
    assert balance(sessions, "p1") == 40


def test_a_failure_at_any_statement_leaves_no_trace_and_the_retry_commits(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "order-1")
    engine = sessions.kw["bind"]
    failed_at = 0
    while True:  # fail the apply at its first statement, then its second, ...
        with sql_faults(engine, rate=1.0, limit=1, after=failed_at) as faults:
            try:
                settle(sessions, handle.transaction_id)
            except OperationalError as exc:
                assert FAULT_MESSAGE in str(exc)
        if not faults.injected:
            break  # every statement went through: the apply committed
        failed_at += 1
        assert handle.status() == "pending" and balance(sessions, "p1") == 100
        assert row_counts(sessions)["ledger_entries"] == 2  # the funding reward's only
    assert failed_at >= 5  # lock, lock, entries, balance, status: each one failed once
    assert handle.status() == "committed" and balance(sessions, "p1") == 70
    assert_ledger_holds(sessions)


# batches ------------------------------------------------------------------------------

def apply_in_one(sessions: sessionmaker[Session], ids: list[int]) -> dict[int, Outcome]:
    with transaction(sessions) as db:
        return apply_transactions(db, ids)


def test_a_batch_settles_each_wallet_in_id_order_against_its_running_balance(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 50)
    fund(sessions, "p2", 10)
    one, two, three = (buy(sessions, "p1", 30, k).transaction_id for k in ("a", "b", "c"))
    poor = buy(sessions, "p2", 16, "d").transaction_id
    reward = fund(sessions, "p2", 5, key="late-reward")  # applied already: left as it is
    before = row_counts(sessions)["ledger_entries"]
    outcomes = apply_in_one(sessions, [three, poor, one, two, one, reward.transaction_id])
    assert [(o.status, o.settled) for o in (outcomes[one], outcomes[two], outcomes[three])] == [
        ("committed", True), ("rejected", True), ("rejected", True)]
    assert outcomes[two].reason == "insufficient funds: balance 20 gold, price 30"
    assert outcomes[poor].reason == "insufficient funds: balance 15 gold, price 16"
    assert outcomes[reward.transaction_id] == Outcome(reward.transaction_id, "committed",
                                                      settled=False)
    assert len(outcomes) == 5  # the duplicate id counts once
    assert balance(sessions, "p1") == 20
    assert row_counts(sessions)["ledger_entries"] == before + 2  # one posting, two sides
    assert_ledger_holds(sessions)


def test_a_batch_costs_five_statements_however_large(sessions: sessionmaker[Session]) -> None:
    for player in ("p1", "p2", "p3"):
        fund(sessions, player, 1000)
    ids = [buy(sessions, f"p{1 + i % 3}", 5, f"k{i}").transaction_id for i in range(60)]
    engine = sessions.kw["bind"]
    statements: list[str] = []

    def seen(*args: Any) -> None:
        statements.append(str(args[1]).split()[0])

    for name in ("do_execute", "do_execute_no_params", "do_executemany"):
        event.listen(engine, name, seen)
    try:
        outcomes = apply_in_one(sessions, ids)
    finally:
        for name in ("do_execute", "do_execute_no_params", "do_executemany"):
            event.remove(engine, name, seen)
    assert {o.status for o in outcomes.values()} == {"committed"}
    # lock transactions, lock wallets, entries, balances, statuses: a fault hits a batch as
    # often as it hits one intent (SQLite's BEGIN IMMEDIATE is a statement of its own)
    assert [s for s in statements if s != "BEGIN"] == [
        "SELECT", "SELECT", "INSERT", "UPDATE", "UPDATE"]
    assert balance(sessions, "p1") == 1000 - 20 * 5


def test_a_batch_with_unknown_ids_settles_the_rest(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 50)
    known = buy(sessions, "p1", 10, "k").transaction_id
    outcomes = apply_in_one(sessions, [987_654, known])
    assert outcomes == {987_654: Outcome(987_654, "missing", settled=False),
                        known: Outcome(known, "committed", settled=True)}
    assert apply_in_one(sessions, []) == {}


def test_a_batch_of_rejections_only_moves_no_balance(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 5)
    ids = [buy(sessions, "p1", 10, k).transaction_id for k in ("x", "y")]
    entries = row_counts(sessions)["ledger_entries"]
    assert {o.status for o in apply_in_one(sessions, ids).values()} == {"rejected"}
    assert row_counts(sessions)["ledger_entries"] == entries and balance(sessions, "p1") == 5


def test_a_failed_batch_settles_none_of_it_and_its_retry_settles_all(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    ids = [buy(sessions, "p1", 10, f"k{i}").transaction_id for i in range(3)]
    engine = sessions.kw["bind"]
    with sql_faults(engine, rate=1.0, limit=1, after=3), pytest.raises(OperationalError):
        apply_in_one(sessions, ids)
    assert balance(sessions, "p1") == 100
    assert {o.status for o in apply_in_one(sessions, ids).values()} == {"committed"}
    assert balance(sessions, "p1") == 70
    assert_ledger_holds(sessions)


# row locks (PostgreSQL: one session holds a lock while another waits on it) -------------

def _in_thread(target: Any) -> tuple[threading.Thread, dict[str, Any]]:
    result: dict[str, Any] = {}

    def run() -> None:
        try:
            result["value"] = target()
        except Exception as exc:  # noqa: BLE001 - handed to the test thread to assert on
            result["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, result


def test_a_transaction_another_applier_holds_is_left_to_it_without_waiting(
        pg_sessions: sessionmaker[Session]) -> None:
    fund(pg_sessions, "p1", 100)
    fund(pg_sessions, "p2", 100)
    held = buy(pg_sessions, "p1", 30, "order-1").transaction_id
    free = buy(pg_sessions, "p2", 10, "order-2").transaction_id  # another wallet: no wait
    with transaction(pg_sessions) as first:
        assert apply_transaction(first, held).settled
        with transaction(pg_sessions) as second:  # same thread: it would hang if it waited
            outcomes = apply_transactions(second, [held, free, 31_337])
            assert record_failure(second, [held], "noted") == 0  # a note skips it too
    assert outcomes == {held: Outcome(held, "pending", settled=False),
                        free: Outcome(free, "committed", settled=True),
                        31_337: Outcome(31_337, "missing", settled=False)}
    assert settle(pg_sessions, held) == Outcome(held, "committed", settled=False)
    assert len(entries_of(pg_sessions, held)) == 2
    assert (balance(pg_sessions, "p1"), balance(pg_sessions, "p2")) == (70, 90)
    assert_ledger_holds(pg_sessions)


def test_the_wallet_lock_makes_a_second_purchase_see_the_first(
        pg_sessions: sessionmaker[Session]) -> None:
    fund(pg_sessions, "p1", 50)
    one = buy(pg_sessions, "p1", 30, "one")
    two = buy(pg_sessions, "p1", 30, "two")
    with transaction(pg_sessions) as first:
        assert apply_transaction(first, one.transaction_id).status == "committed"
        thread, second = _in_thread(lambda: settle(pg_sessions, two.transaction_id))
        wait_for(lambda: lock_waiters(pg_sessions) >= 1, timeout=10,
                 what="the second purchase to wait on the wallet row")
    thread.join(timeout=10)
    assert second["value"].status == "rejected"
    assert second["value"].reason == "insufficient funds: balance 20 gold, price 30"
    assert balance(pg_sessions, "p1") == 20
    assert_ledger_holds(pg_sessions)


def test_a_batch_settles_free_wallets_first_and_waits_for_a_busy_one_holding_none(
        pg_sessions: sessionmaker[Session]) -> None:
    fund(pg_sessions, "p1", 100)
    fund(pg_sessions, "p2", 100)
    first = buy(pg_sessions, "p1", 30, "first").transaction_id
    later = buy(pg_sessions, "p1", 80, "later").transaction_id  # waits for p1's wallet
    free = buy(pg_sessions, "p2", 10, "free").transaction_id
    with transaction(pg_sessions) as holder:
        assert apply_transaction(holder, first).settled
        with transaction(pg_sessions) as busy_only:  # same thread: it would hang if it waited
            assert apply_transactions(busy_only, [later], wait_for_wallets=False) == {
                later: Outcome(later, "pending", settled=False, busy=True)}
        thread, batch = _in_thread(lambda: settle_batch(pg_sessions, [later, free]))
        wait_for(lambda: lock_waiters(pg_sessions) >= 1, timeout=10,
                 what="the batch to wait on the busy wallet")
        # p2 committed while p1 is still held: the batch waits holding no wallet
        assert balance(pg_sessions, "p2") == 90
        released = utcnow()  # the holder commits right after this
    thread.join(timeout=10)
    with transaction(pg_sessions) as db:  # stamped once it held the wallet, not before
        assert db.get(LedgerTransaction, later).rejected_at >= released
    assert batch["value"] == {
        later: Outcome(later, "rejected", settled=True,
                       reason="insufficient funds: balance 70 gold, price 80"),
        free: Outcome(free, "committed", settled=True)}
    assert (balance(pg_sessions, "p1"), balance(pg_sessions, "p2")) == (70, 90)
    assert_ledger_holds(pg_sessions)


def test_a_racing_duplicate_intent_waits_and_returns_the_winner(
        pg_sessions: sessionmaker[Session]) -> None:
    from app.ledger.intents import purchase_intent
    from app.ledger.requests import Purchase

    fund(pg_sessions, "p1", 50)
    req = Purchase(player_id="p1", sku="sword", price=30, currency="gold",
                   idempotency_key="race")
    with transaction(pg_sessions) as first:
        won = purchase_intent(first, req)
        same, same_result = _in_thread(lambda: buy(pg_sessions, "p1", 30, "race"))
        other, other_result = _in_thread(lambda: buy(pg_sessions, "p1", 31, "race"))
        wait_for(lambda: lock_waiters(pg_sessions) >= 2, timeout=10,
                 what="both late writers to wait on the key")
    same.join(timeout=10)
    other.join(timeout=10)
    assert won.created
    assert same_result["value"].transaction_id == won.transaction.id
    assert not same_result["value"].created
    assert other_result["error"].field == "idempotency_key"
    assert row_counts(pg_sessions)["ledger_transactions"] == 2

