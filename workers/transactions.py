"""Transactions role: purchases, rewards and refunds (queue ``transactions``), and the
sweeper that re-sends intents left pending (queue ``control``, sent by the controller's
beat).  Both are thin adapters over ``app.ledger``; SQL is the source of truth.

The transactions queue has its own workers and is never throttled, shed or dilated by the
controller.  The sweeper runs beside the controller's tick so that it keeps running while
every transactions worker is down."""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from functools import partial

from celery import shared_task
from sqlalchemy.exc import DisconnectionError, InterfaceError, OperationalError

from app.ledger.apply import Outcome, note_failure, settle_batch
from app.ledger.models import Status
from app.ledger.policy import APPLY_BATCH_MAX, MAX_RETRIES, retry_delay
from app.ledger.sweeper import Backlog
from app.ledger.sweeper import sweep as sweep_intents
from app.priority import route
from app.protocol import keys
from app.protocol.names import APPLY_BATCH_TASK, APPLY_TASK, HANDOFF_HEADER, SWEEP_TASK
from app.protocol.queues import Queue
from app.tasking.base import GameTask
from app.tasking.broker import waiting
from app.tasking.factory import GameschedCelery

# Intents re-sent by the sweeper, and batches retried after an operational error, are the
# oldest pending: their players have waited longest, so they go ahead of new purchases.
LATE = route(APPLY_BATCH_TASK, critical=True)

# Operational errors (a lost connection, a lock timeout, a serialisation failure, a
# database restarting) and driver disconnects: the transaction did not commit; try again.
RETRYABLE = (OperationalError, InterfaceError, DisconnectionError)


@shared_task(
    base=GameTask, bind=True, name=APPLY_TASK,
    acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES,
)
def apply(self: GameTask, transaction_id: int) -> str:
    """Apply one transaction intent in a single SQL transaction; returns its status
    (``pending`` when another worker is settling it at this moment: it is left to that one).

    Idempotent: an intent already committed or rejected is left as it is, so a redelivered,
    re-sent or duplicated message settles it once.  Insufficient funds is a final
    ``rejected``, never retried.  Retry policy: operational errors and driver disconnects
    are counted on the row and retried with exponential backoff and full jitter (up to
    50 ms, doubling to at most 5 s; 100 retries).  Celery's own ``retry_backoff`` counts in
    whole seconds, hence the explicit retry.  Past the last retry, or when the broker refuses
    the retry message, the intent stays pending and the sweeper re-sends it.  acks_late with
    reject_on_worker_lost: a worker killed mid-task gives its message back (after the broker's
    visibility timeout; the sweeper is sooner).
    """
    return _settle(self, [transaction_id])[transaction_id].status


@shared_task(
    base=GameTask, bind=True, name=APPLY_BATCH_TASK,
    acks_late=True, reject_on_worker_lost=True, max_retries=MAX_RETRIES,
)
def apply_batch(self: GameTask, transaction_ids: list[int]) -> dict[str, int]:
    """Apply many intents in one SQL transaction (what the client and the sweeper send);
    returns how many ended in each status (``missing`` for unknown ids).

    Idempotent, retried and acknowledged as `apply`; an operational error retries the whole
    batch, and nothing of it is settled until the retry commits.
    """
    counts: dict[str, int] = {}
    for outcome in _settle(self, transaction_ids).values():
        counts[outcome.status] = counts.get(outcome.status, 0) + 1
    return counts


def _settle(task: GameTask, transaction_ids: Sequence[int]) -> dict[int, Outcome]:
    try:
        outcomes = settle_batch(task.runtime.sessions, transaction_ids)
    except RETRYABLE as exc:
        note_failure(task.runtime.sessions, transaction_ids, exc)
        # The critical step is the top one (0), where Redis also puts a message sent with
        # no priority, so the naive baseline's single queue takes it as it takes any other.
        raise task.retry(exc=exc, countdown=retry_delay(task.request.retries),
                         priority=LATE.priority) from exc
    task.note_items([o.transaction_id for o in outcomes.values()
                     if o.settled and o.status == Status.COMMITTED])
    return outcomes


@shared_task(base=GameTask, bind=True, name=SWEEP_TASK, ignore_result=True)
def sweep(self: GameTask) -> int:
    """Re-send intents left pending past their re-send time and publish the stale-intent
    alarm; returns how many were re-sent.

    Idempotent (a re-sent intent still applies once).  Not retried: beat sends it again
    every controller period.
    """
    backlog = Backlog(*waiting(self.app, Queue.TRANSACTIONS.value))
    report = sweep_intents(self.runtime.sessions, partial(send_apply, self.app), backlog)
    self.runtime.fleet.set(keys.LEDGER_SWEPT, json.dumps({  # for `gamesched status`
        "at": time.time(), "pending": report.health.pending, "stale": report.health.stale,
        "resent": len(report.resent)}).encode())
    return len(report.resent)


def send_apply(app: GameschedCelery, transaction_ids: Sequence[int]) -> None:
    """Send ``gamesched.transactions.apply_batch`` for `transaction_ids` (the sweeper's
    re-sends) to its queue at the critical step, in messages of at most APPLY_BATCH_MAX
    intents."""
    for start in range(0, len(transaction_ids), APPLY_BATCH_MAX):
        chunk = list(transaction_ids[start:start + APPLY_BATCH_MAX])
        app.publisher.send(LATE, [chunk], {HANDOFF_HEADER: time.time()})
