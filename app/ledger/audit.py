"""The ledger audit: plain SQL an operator can also run in psql (docs/ledger.md#audit).

Each check is one query that returns a row per violation; an empty result means the
ledger holds.  The queries run unchanged on PostgreSQL and SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import DateTime, bindparam, func, select, text
from sqlalchemy.orm import Session

from app.db import utcnow
from app.ledger.models import LedgerEntry, LedgerTransaction, Wallet
from app.ledger.policy import STALE_AFTER


@dataclass(frozen=True)
class Check:
    """One audit check: what it proves and the query that lists its violations."""

    name: str
    proves: str
    sql: str


CHECKS: tuple[Check, ...] = (
    Check("entries-balance",
          "every committed transaction has one player and one house entry that sum to zero "
          "and move its amount on its own wallet",
          """
SELECT t.id, t.idempotency_key, t.kind, t.amount, COUNT(e.id) AS entries,
       COALESCE(SUM(e.amount), 0) AS entry_sum
FROM ledger_transactions t
LEFT JOIN ledger_entries e ON e.transaction_id = t.id
WHERE t.status = 'committed'
GROUP BY t.id, t.idempotency_key, t.kind, t.amount
HAVING COUNT(e.id) <> 2
    OR COALESCE(SUM(e.amount), 0) <> 0
    OR SUM(CASE WHEN e.currency <> t.currency THEN 1 ELSE 0 END) > 0
    OR SUM(CASE WHEN e.account = 'player' AND e.wallet_id = t.wallet_id
                THEN e.amount ELSE 0 END)
       <> CASE WHEN t.kind = 'purchase' THEN -t.amount ELSE t.amount END
"""),
    Check("no-stray-entries",
          "no transaction that is pending or rejected has ledger entries",
          """
SELECT t.id, t.idempotency_key, t.status, COUNT(e.id) AS entries
FROM ledger_transactions t
JOIN ledger_entries e ON e.transaction_id = t.id
WHERE t.status <> 'committed'
GROUP BY t.id, t.idempotency_key, t.status
"""),
    Check("wallets-match-entries",
          "every wallet's balance equals the sum of its ledger entries",
          """
SELECT w.id, w.player_id, w.currency, w.balance, COALESCE(SUM(e.amount), 0) AS entry_sum
FROM ledger_wallets w
LEFT JOIN ledger_entries e ON e.wallet_id = w.id
GROUP BY w.id, w.player_id, w.currency, w.balance
HAVING w.balance <> COALESCE(SUM(e.amount), 0)
"""),
    Check("keys-unique",
          "no idempotency key is held by more than one transaction",
          """
SELECT idempotency_key, COUNT(*) AS transactions
FROM ledger_transactions
GROUP BY idempotency_key
HAVING COUNT(*) > 1
"""),
    Check("applied-once",
          "no transaction was applied twice (more than one player entry)",
          """
SELECT t.id, t.idempotency_key, COUNT(*) AS player_entries
FROM ledger_entries e
JOIN ledger_transactions t ON t.id = e.transaction_id
WHERE e.account = 'player'
GROUP BY t.id, t.idempotency_key
HAVING COUNT(*) > 1
"""),
    Check("nothing-stale",
          "nothing has been pending for longer than 2 s",
          """
SELECT id, idempotency_key, player_id, created_at, attempts, resends, last_error
FROM ledger_transactions
WHERE status = 'pending' AND created_at < :cutoff
ORDER BY created_at
"""),
)


@dataclass(frozen=True)
class Violation:
    """One row an audit check returned."""

    check: str
    row: dict[str, Any]

    def __str__(self) -> str:
        return f"{self.check}: " + ", ".join(f"{k}={v}" for k, v in self.row.items())


@dataclass(frozen=True)
class CheckResult:
    """A check and the violations it found."""

    check: Check
    violations: list[Violation]


@dataclass(frozen=True)
class AuditReport:
    """Every check's result, plus how much of the ledger was looked at."""

    results: list[CheckResult]
    counts: dict[str, int] = field(default_factory=dict)

    @property
    def violations(self) -> list[Violation]:
        """Every violation of every check."""
        return [v for result in self.results for v in result.violations]

    @property
    def ok(self) -> bool:
        """True when no check found a violation."""
        return not self.violations


def run_check(db: Session, check: Check, now: datetime) -> CheckResult:
    """Run one check's query."""
    query = text(check.sql)
    params: dict[str, Any] = {}
    if ":cutoff" in check.sql:
        query = query.bindparams(bindparam("cutoff", type_=DateTime(timezone=True)))
        params["cutoff"] = now - STALE_AFTER
    rows = db.execute(query, params).mappings().all()
    return CheckResult(check, [Violation(check.name, dict(row)) for row in rows])


def ledger_counts(db: Session) -> dict[str, int]:
    """How many transactions (per status), wallets and entries the ledger holds."""
    t = LedgerTransaction
    counts = {f"transactions.{status}": n for status, n in
              db.execute(select(t.status, func.count()).group_by(t.status)).all()}
    counts["wallets"] = db.execute(select(func.count()).select_from(Wallet)).scalar_one()
    counts["entries"] = db.execute(select(func.count()).select_from(LedgerEntry)).scalar_one()
    return counts


def run_audit(db: Session, now: datetime | None = None) -> AuditReport:
    """Run every check.  Read-only; safe to run at any time, as often as wanted."""
    now = now or utcnow()
    return AuditReport([run_check(db, check, now) for check in CHECKS], ledger_counts(db))


def audit(db: Session, now: datetime | None = None) -> list[Violation]:
    """Every violation of the ledger's invariants; an empty list means the ledger holds."""
    return run_audit(db, now).violations
