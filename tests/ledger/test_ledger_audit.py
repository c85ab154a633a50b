"""The audit finds every kind of damage to the ledger, and `gamesched audit` reports it."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from typer.testing import CliRunner

from app.cli.main import cli
from app.db import transaction, utcnow
from app.ledger import run_audit
from app.ledger.audit import CHECKS
from app.ledger.view import by_key
from tests.ledger.helpers import buy, execute, fund, settle


@pytest.fixture
def ledger(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Two players, one committed purchase, one rejected and one pending."""
    fund(sessions, "p1", 100)
    fund(sessions, "p2", 5)
    settle(sessions, buy(sessions, "p1", 30, "bought").transaction_id)
    settle(sessions, buy(sessions, "p2", 30, "refused").transaction_id)
    buy(sessions, "p1", 10, "waiting")
    return sessions


def pending_since(sessions: sessionmaker[Session]) -> datetime:
    """When the fixture's pending purchase was recorded (audits run relative to it, so a
    slow machine cannot make it stale)."""
    with transaction(sessions) as db:
        view = by_key(db, "waiting")
    return view.created_at if view else utcnow()


def failing_checks(sessions: sessionmaker[Session], seconds_later: float = 0.0) -> set[str]:
    now = pending_since(sessions) + timedelta(seconds=seconds_later)
    with transaction(sessions) as db:
        report = run_audit(db, now=now)
    return {v.check for v in report.violations}


def test_a_sound_ledger_passes_every_check(ledger: sessionmaker[Session]) -> None:
    now = pending_since(ledger)
    with transaction(ledger) as db:
        report = run_audit(db, now=now)
    assert report.ok and [r.check.name for r in report.results] == [c.name for c in CHECKS]
    assert report.counts == {"transactions.committed": 3, "transactions.rejected": 1,
                             "transactions.pending": 1, "wallets": 2, "entries": 6}


@pytest.mark.parametrize(("damage", "checks"), [
    ("UPDATE ledger_wallets SET balance = balance + 1 WHERE player_id = 'p1'",
     {"wallets-match-entries"}),
    ("UPDATE ledger_entries SET amount = amount - 1 WHERE account = 'house' "
     "AND transaction_id = (SELECT id FROM ledger_transactions WHERE idempotency_key = 'bought')",
     {"entries-balance"}),
    ("DELETE FROM ledger_entries WHERE account = 'house' "
     "AND transaction_id = (SELECT id FROM ledger_transactions WHERE idempotency_key = 'bought')",
     {"entries-balance"}),
    ("UPDATE ledger_entries SET currency = 'gems' WHERE account = 'house' "
     "AND transaction_id = (SELECT id FROM ledger_transactions WHERE idempotency_key = 'bought')",
     {"entries-balance"}),
    ("UPDATE ledger_entries SET wallet_id = (SELECT id FROM ledger_wallets WHERE player_id = 'p2')"
     " WHERE account = 'player' "
     "AND transaction_id = (SELECT id FROM ledger_transactions WHERE idempotency_key = 'bought')",
     {"entries-balance", "wallets-match-entries"}),
    ("UPDATE ledger_transactions SET status = 'rejected' WHERE idempotency_key = 'bought'",
     {"no-stray-entries"}),
    ("UPDATE ledger_transactions SET status = 'committed' WHERE idempotency_key = 'waiting'",
     {"entries-balance"}),
])
def test_damage_is_found_by_its_check(ledger: sessionmaker[Session], damage: str,
                                      checks: set[str]) -> None:
    execute(ledger, damage)
    assert failing_checks(ledger) == checks


def test_a_transaction_pending_longer_than_two_seconds_fails_the_audit(
        ledger: sessionmaker[Session]) -> None:
    assert failing_checks(ledger, seconds_later=1.5) == set()
    assert failing_checks(ledger, seconds_later=2.5) == {"nothing-stale"}


@pytest.fixture
def without_unique_indexes(ledger: sessionmaker[Session]) -> Iterator[sessionmaker[Session]]:
    """The ledger with its two uniqueness guards dropped, as a damaged copy might be."""
    execute(ledger, "DROP INDEX uq_ledger_entries_transaction_account")
    execute(ledger, "DROP INDEX uq_ledger_transactions_key")
    yield ledger
    execute(ledger, "DELETE FROM ledger_entries")
    execute(ledger, "DELETE FROM ledger_transactions")
    execute(ledger, "CREATE UNIQUE INDEX uq_ledger_entries_transaction_account "
                    "ON ledger_entries (transaction_id, account)")
    execute(ledger, "CREATE UNIQUE INDEX uq_ledger_transactions_key "
                    "ON ledger_transactions (idempotency_key)")


def test_a_transaction_applied_twice_is_found(
        without_unique_indexes: sessionmaker[Session]) -> None:
    execute(without_unique_indexes, """
        INSERT INTO ledger_entries (transaction_id, account, wallet_id, currency, amount,
                                    created_at)
        SELECT transaction_id, account, wallet_id, currency, amount, created_at
        FROM ledger_entries
        WHERE transaction_id = (SELECT id FROM ledger_transactions
                                WHERE idempotency_key = 'bought')""")
    execute(without_unique_indexes,
            "UPDATE ledger_wallets SET balance = balance - 30 WHERE player_id = 'p1'")
    assert failing_checks(without_unique_indexes) == {"applied-once", "entries-balance"}


def test_a_key_held_twice_is_found(without_unique_indexes: sessionmaker[Session]) -> None:
    execute(without_unique_indexes, """
        INSERT INTO ledger_transactions (idempotency_key, kind, player_id, wallet_id, sku,
            amount, currency, status, attempts, resends, created_at, resend_at)
        SELECT idempotency_key, kind, player_id, wallet_id, sku, amount, currency, 'rejected',
            attempts, resends, created_at, resend_at
        FROM ledger_transactions WHERE idempotency_key = 'refused'""")
    assert failing_checks(without_unique_indexes) == {"keys-unique"}


def test_the_audit_command_prints_what_it_checked_and_exits_by_the_result(
        ledger: sessionmaker[Session], db_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    settle(ledger, buy(ledger, "p1", 1, "one-more").transaction_id)
    execute(ledger, "UPDATE ledger_transactions SET status = 'rejected', rejected_at = created_at"
                    " WHERE status = 'pending'")
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", db_url)
    runner = CliRunner()
    clean = runner.invoke(cli, ["audit"], terminal_width=200)
    assert clean.exit_code == 0, clean.output
    for check in CHECKS:
        assert check.name in clean.output
    assert "ledger holds" in clean.output and "wallets=2" in clean.output
    execute(ledger, "UPDATE ledger_wallets SET balance = 999 WHERE player_id = 'p2'")
    damaged = runner.invoke(cli, ["audit"], terminal_width=200)
    assert damaged.exit_code == 1
    assert "\nwallets-match-entries: id=" in damaged.output and "balance=999" in damaged.output
    assert "[red]" not in damaged.output
    assert "1 violation(s)" in damaged.output and "ledger audit failed" in damaged.output
