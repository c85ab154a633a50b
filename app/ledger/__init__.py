"""The ledger: idempotent purchases, rewards and refunds in SQL, each applied exactly once.

- ``submit``: the client side (validate, commit the intent, then send the task);
- ``intents``: recording intents idempotently by key;
- ``apply``: settling a batch of intents (or one) in one SQL transaction;
- ``sweeper``: re-sending intents left pending, and the stale-intent alarm;
- ``audit``: the SQL checks behind ``gamesched audit``;
- ``surge``: many concurrent purchases with duplicate keys, for the simulator and tests;
- ``faults``: SQL fault injection for fault tests.
"""

from app.ledger.apply import Outcome, apply_transaction, apply_transactions
from app.ledger.audit import AuditReport, Violation, audit, run_audit
from app.ledger.handle import TransactionHandle, TransactionTimeout
from app.ledger.models import Kind, Status
from app.ledger.submit import submit_purchase, submit_refund, submit_reward
from app.ledger.sweeper import sweep
from app.ledger.view import TransactionView
from app.tasknames import APPLY_BATCH_TASK, APPLY_TASK, SWEEP_TASK

__all__ = [
    "APPLY_BATCH_TASK",
    "APPLY_TASK",
    "SWEEP_TASK",
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
