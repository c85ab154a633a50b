"""The sweeper re-sends intents left pending, backs off per intent, yields to a backlog,
and raises the stale alarm."""

from __future__ import annotations

import random
from datetime import timedelta

from prometheus_client import REGISTRY
from sqlalchemy import insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction, utcnow
from app.ledger import sweep
from app.ledger.apply import apply_transaction
from app.ledger.models import LedgerTransaction
from app.ledger.policy import (
    RESEND_AFTER,
    RESEND_MAX,
    RETRY_BASE_S,
    RETRY_MAX_S,
    SWEEP_BATCH,
    resend_interval,
    retry_delay,
)
from app.ledger.sweeper import Backlog
from tests.ledger.helpers import Outbox, buy, fund, settle


def test_an_intent_is_re_sent_after_a_second_then_less_and_less_often(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 10, "k")
    created = handle.fetch().created_at
    sent: list[float] = []
    for offset in (0.5, 1.0, 1.5, 2.9, 3.0, 6.9, 7.0, 15.0):
        outbox = Outbox()
        sweep(sessions, outbox, now=created + timedelta(seconds=offset))
        sent += [offset] * len(outbox.sent)
    assert sent == [1.0, 3.0, 7.0, 15.0]
    assert handle.fetch().resends == 4


def test_settled_intents_are_never_re_sent(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 10, "k")
    settle(sessions, handle.transaction_id)
    outbox = Outbox()
    report = sweep(sessions, outbox, now=utcnow() + timedelta(minutes=5))
    assert outbox.sent == [] and report.resent == []
    assert report.health.pending == 0


def test_only_intents_without_a_queued_message_are_re_sent_oldest_first(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    ids = [buy(sessions, "p1", 1, f"k{i}").transaction_id for i in range(4)]
    later = utcnow() + timedelta(seconds=5)
    outbox = Outbox()
    assert sweep(sessions, outbox, backlog=Backlog(4), now=later).resent == []  # all still queued
    assert sweep(sessions, outbox, backlog=Backlog(9), now=later).resent == []
    assert sweep(sessions, outbox, backlog=Backlog(2), now=later).resent == ids[:2]  # two were lost
    assert sweep(sessions, outbox, backlog=Backlog(0), now=later).resent == ids[2:]  # the rest too
    assert outbox.sent == ids


def test_intents_recorded_after_the_oldest_waiting_message_are_left_to_the_queue(
        sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    handles = [buy(sessions, "p1", 1, f"k{i}") for i in range(3)]
    ids = [h.transaction_id for h in handles]
    created = [h.fetch().created_at for h in handles]
    # the oldest waiting message left between the second and third intents: the first two
    # were taken by a worker killed since, and are due although they fell due after it left
    left = created[1] + (created[2] - created[1]) / 2
    due = created[1] + RESEND_AFTER
    outbox = Outbox()
    backlog = Backlog(messages=1, oldest_handoff=left.timestamp())
    assert sweep(sessions, outbox, backlog=backlog, now=due).resent == ids[:2]
    # re-sent ones count as sent when they fell due: they wait while that is after `left`
    later = max(created) + timedelta(seconds=30)
    assert sweep(sessions, outbox, backlog=backlog, now=later).resent == []
    nothing_waits = Backlog(messages=0, oldest_handoff=None)
    assert sweep(sessions, outbox, backlog=nothing_waits, now=later).resent == [
        ids[2], *ids[:2]]  # oldest due first


def test_the_horizon_is_now_when_nothing_waits_or_the_wait_is_newer() -> None:
    now = utcnow()
    assert Backlog().horizon(now) == now
    assert Backlog(3, (now + timedelta(seconds=1)).timestamp()).horizon(now) == now
    earlier = now - timedelta(seconds=4)
    assert Backlog(3, earlier.timestamp()).horizon(now) == earlier


def test_a_sweep_re_sends_at_most_a_batch(sessions: sessionmaker[Session]) -> None:
    template = buy_first(sessions)
    with transaction(sessions) as db:  # many more intents like it, in one statement
        db.execute(insert(LedgerTransaction), [
            template | {"idempotency_key": f"k{i}"} for i in range(SWEEP_BATCH + 2)])
    report = sweep(sessions, Outbox(), now=utcnow() + timedelta(seconds=5))
    assert len(report.resent) == SWEEP_BATCH and report.health.pending == SWEEP_BATCH + 3


def buy_first(sessions: sessionmaker[Session]) -> dict[str, object]:
    """Record one purchase; return its row's values without the id and key."""
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 1, "first")
    with transaction(sessions) as db:
        row = db.execute(select(LedgerTransaction.__table__).where(
            LedgerTransaction.id == handle.transaction_id)).one()
    return {k: v for k, v in row._mapping.items() if k not in {"id", "idempotency_key"}}


def test_health_counts_stale_intents_and_sets_the_alarm(sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 100)
    first = buy(sessions, "p1", 1, "first").fetch().created_at
    buy(sessions, "p1", 1, "second")
    report = sweep(sessions, Outbox(), now=first + timedelta(seconds=1))
    assert (report.health.pending, report.health.stale) == (2, 0)
    assert REGISTRY.get_sample_value("gamesched_ledger_pending_stale") == 0
    report = sweep(sessions, Outbox(), now=first + timedelta(seconds=60))
    assert (report.health.pending, report.health.stale) == (2, 2)
    assert 59 < report.health.oldest_seconds <= 60
    assert REGISTRY.get_sample_value("gamesched_ledger_pending_stale") == 2
    assert REGISTRY.get_sample_value("gamesched_ledger_pending_oldest_seconds") == (
        report.health.oldest_seconds)


def test_an_intent_being_applied_is_skipped(pg_sessions: sessionmaker[Session]) -> None:
    fund(pg_sessions, "p1", 100)
    busy = buy(pg_sessions, "p1", 1, "busy").transaction_id
    idle = buy(pg_sessions, "p1", 1, "idle").transaction_id
    later = utcnow() + timedelta(seconds=5)
    with transaction(pg_sessions) as worker:  # holds the row lock of `busy` meanwhile
        apply_transaction(worker, busy)
        report = sweep(pg_sessions, Outbox(), now=later)
    assert report.resent == [idle]


def test_retry_delays_grow_exponentially_with_full_jitter() -> None:
    rng = random.Random(7)
    for retries in range(40):
        cap = min(RETRY_MAX_S, RETRY_BASE_S * 2**retries)
        delays = [retry_delay(retries, rng) for _ in range(200)]
        assert all(0.0 <= d <= cap for d in delays)
        assert max(delays) > cap * 0.8 and min(delays) < cap * 0.2  # spread over the range
    assert 0.0 <= retry_delay(3) <= RETRY_BASE_S * 8


def test_re_send_intervals_double_up_to_the_cap() -> None:
    assert [resend_interval(n).total_seconds() for n in range(7)] == [1, 2, 4, 5, 5, 5, 5]
    assert resend_interval(10_000) == RESEND_MAX
