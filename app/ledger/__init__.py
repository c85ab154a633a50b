"""The ledger: idempotent purchases, rewards and refunds in SQL, each applied exactly once.

- ``submit``: the client side (validate, commit the intent, then send the task);
- ``intents``: recording intents idempotently by key;
- ``apply``: settling a batch of intents (or one) in one SQL transaction;
- ``sweeper``: re-sending intents left pending, and the stale-intent alarm;
- ``audit``: the SQL checks behind ``gamesched audit``.

The ledger imports nothing above it: no Celery, no client, no command line.
"""

from app.ledger.apply import Outcome, apply_transaction, apply_transactions
from app.ledger.audit import AuditReport, Violation, audit, run_audit
from app.ledger.handle import TransactionHandle, TransactionTimeout
from app.ledger.models import Kind, Status
from app.ledger.submit import submit_purchase, submit_refund, submit_reward
from app.ledger.sweeper import sweep
from app.ledger.view import TransactionView

__all__ = [
    "AuditReport",
    "Kind",
    "Outcome",
    "Status",
    "TransactionHandle",
    "TransactionTimeout",
    "TransactionView",
    "Violation",
    "apply_transaction",
    "apply_transactions",
    "audit",
    "run_audit",
    "submit_purchase",
    "submit_refund",
    "submit_reward",
    "sweep",
]
