"""The sweeper: re-sends intents left pending, so that a message lost in the broker or a
worker killed mid-task still ends in a settled transaction.

Run by beat (``gamesched.transactions.sweep`` on the ``control`` queue, once per controller
period).  An intent is due once ``resend_at`` has passed: one second after it was recorded,
then 2, 4 and at most 5 seconds after each re-send: a re-send lost in its turn (sent while
the broker restarts, taken by a worker killed next) is tried again within seconds, and a
long outage adds one duplicate message per intent every few seconds at most, each a cheap
no-op for the worker (fewer while messages wait in the queue).

Which to re-send: an intent with a message waiting in the transactions queue needs no
other.  On Redis the sweeper reads when the oldest waiting message was handed over: the
queue is first in, first out (one priority step), so a due intent last sent before that has
no message left in the queue (it is being applied right now, its worker was killed, or its
message was lost) and is re-sent; the newer ones wait their turn.  While a backlog drains
nothing is duplicated, and after the broker lost its messages everything due goes out.
Every message waiting holds at least one pending intent, so at most ``pending - waiting``
intents lack a message: a sweep re-sends no more than that (the only rule when the broker
cannot tell the oldest message, as in memory), oldest first, at most ``SWEEP_BATCH``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction, utcnow
from app.ledger import alarm
from app.ledger.models import LedgerTransaction, Status
from app.ledger.policy import STALE_AFTER, SWEEP_BATCH, resend_interval
from app.ledger.view import as_utc

SendMany = Callable[[list[int]], object]


@dataclass(frozen=True)
class Health:
    """Pending intents right now: how many are stale, and the oldest one's age."""

    pending: int
    stale: int
    oldest_seconds: float


@dataclass(frozen=True)
class Backlog:
    """What waits in the transactions queue: `messages`, and when the oldest of them was
    handed over (seconds since the epoch; None when nothing waits or the broker cannot
    tell)."""

    messages: int = 0
    oldest_handoff: float | None = None

    def horizon(self, now: datetime) -> datetime:
        """Intents last sent before this have no message waiting: `now`, or the oldest
        waiting message's hand-over if earlier."""
        if self.oldest_handoff is None:
            return now
        return min(now, datetime.fromtimestamp(self.oldest_handoff, UTC))


@dataclass(frozen=True)
class SweepReport:
    """What one sweep saw and re-sent."""

    health: Health
    resent: list[int]


def pending_health(db: Session, now: datetime) -> Health:
    """Count pending intents and the stale ones among them (older than STALE_AFTER)."""
    t = LedgerTransaction
    cutoff = now - STALE_AFTER
    stale_expr = func.sum(case((t.created_at < cutoff, 1), else_=0))
    row = db.execute(select(func.count(), stale_expr, func.min(t.created_at))
                     .where(t.status == Status.PENDING.value)).one()
    oldest = 0.0 if row[2] is None else max(0.0, (now - as_utc(row[2])).total_seconds())
    return Health(pending=row[0], stale=int(row[1] or 0), oldest_seconds=oldest)


def claim_due(db: Session, now: datetime, limit: int,
              horizon: datetime | None = None) -> list[int]:
    """Take up to `limit` intents due by `now` and last sent before `horizon` (default
    `now`), oldest first, and move each one's ``resend_at`` on from `now`.

    An intent never re-sent was sent when it was recorded; one re-sent is counted as last
    sent when it fell due (its ``resend_at`` is later than the re-send: on the safe side).
    Rows another session holds locked (being applied right now) are skipped.
    """
    t = LedgerTransaction
    horizon = horizon or now
    sent_before = or_(and_(t.resends == 0, t.created_at < horizon), t.resend_at <= horizon)
    due = db.execute(select(t).where(t.status == Status.PENDING.value, t.resend_at <= now,
                                     sent_before)
                     .order_by(t.resend_at).limit(limit)
                     .with_for_update(skip_locked=True, key_share=True)).scalars().all()
    for txn in due:
        txn.resends += 1
        txn.resend_at = now + resend_interval(txn.resends)
    return [txn.id for txn in due]


def sweep(factory: sessionmaker[Session], send: SendMany, backlog: Backlog = Backlog(),
          now: datetime | None = None) -> SweepReport:
    """Publish the alarm gauges and re-send due intents through `send` (one call with
    every due id, when there are any).

    `backlog` is what waits in the transactions queue.  Idempotent: a re-sent intent is
    applied at most once.  Not retried; beat runs it again next period.
    """
    now = now or utcnow()
    with transaction(factory) as db:
        health = pending_health(db, now)
        limit = min(SWEEP_BATCH, max(0, health.pending - backlog.messages))
        due = claim_due(db, now, limit, backlog.horizon(now))
    alarm.publish(health.stale, health.oldest_seconds)
    if due:
        send(due)
    return SweepReport(health=health, resent=due)
