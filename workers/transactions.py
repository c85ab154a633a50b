"""Transactions role: purchases and rewards (queue ``transactions``)."""

from __future__ import annotations

from celery import shared_task

from app.tasking import GameTask


@shared_task(
    base=GameTask, bind=True, name="gamesched.transactions.apply",
    acks_late=True, reject_on_worker_lost=True,
)
def apply(self: GameTask, transaction_id: int) -> str:
    """Apply one transaction intent in a single SQL transaction."""
    raise NotImplementedError("the ledger lands with the transactions issue")
