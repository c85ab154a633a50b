"""The transactions tasks and the client API: wiring, retries, the sweeper, the queues.

Eager mode runs task bodies in this process (it emulates delivery, so the live tests prove
acks, redelivery and routing on a real broker); messages sent here go to kombu's in-memory
transport and are read back from their queue.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from celery.exceptions import Retry
from sqlalchemy import update
from sqlalchemy.exc import OperationalError

import workers.transactions  # noqa: F401 - registers the tasks with every app
from app.client.api import GameClient
from app.db import transaction, utcnow
from app.errors import InvalidRequest
from app.fleet.fleets import EmbeddedFleet
from app.ledger.models import LedgerTransaction
from app.ledger.policy import APPLY_BATCH_MAX, MAX_RETRIES
from app.priority import route
from app.protocol.names import APPLY_BATCH_TASK, APPLY_TASK, SWEEP_TASK
from app.protocol.queues import TASK_QUEUES, Queue
from app.settings import load_settings
from app.simulate.sqlfaults import FAULT_MESSAGE, sql_faults
from app.tasking.factory import GameschedCelery, create_app
from tests.ledger.helpers import assert_ledger_holds, balance, buy, fund
from workers.transactions import LATE, send_apply

# send_task always publishes, eager or not: the messages are read back from their queue.
pytestmark = pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")


def make_app(db_url: str, **settings: Any) -> GameschedCelery:
    app = create_app(load_settings(database_url=db_url, **settings),
                     task_always_eager=True, task_eager_propagates=True)
    app.loader.import_default_modules()
    return app


@pytest.fixture
def app(db_url: str) -> Iterator[GameschedCelery]:
    """An eager app on the test ledger and the in-memory broker, its queues emptied after."""
    app = make_app(db_url)
    yield app
    take_messages(app, Queue.TRANSACTIONS.value)
    app.runtime.engine.dispose()


def take_messages(app: GameschedCelery, queue: str) -> list[Any]:
    """Every message waiting in `queue`, removed from it."""
    taken = []
    with app.connection_for_read() as conn:
        simple = conn.SimpleQueue(queue)
        while simple.qsize():
            message = simple.get(timeout=1)
            message.ack()
            taken.append(message)
        simple.close()
    return taken


def run(app: GameschedCelery, name: str, *args: Any, **options: Any) -> Any:
    """Run a task eagerly, retries included (a raised Retry is re-applied in place)."""
    return app.tasks[name].apply(args=list(args), throw=False, **options).get()


def test_the_tasks_carry_their_delivery_options_routes_and_schedule() -> None:
    app = create_app(load_settings(controller_period_s=2.0))
    app.loader.import_default_modules()
    apply = app.tasks[APPLY_TASK]
    assert (apply.acks_late, apply.reject_on_worker_lost, apply.max_retries) == (
        True, True, MAX_RETRIES)
    assert TASK_QUEUES[APPLY_TASK] is Queue.TRANSACTIONS
    assert TASK_QUEUES[SWEEP_TASK] is Queue.CONTROL
    entry = app.conf.beat_schedule["transactions-sweep"]
    assert entry == {"task": SWEEP_TASK, "schedule": 2.0,
                     "options": {"queue": "control", "expires": 4.0}}
    assert "controller-tick" in app.conf.beat_schedule


def test_the_apply_task_settles_an_intent(app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "k")
    assert run(app, APPLY_TASK, handle.transaction_id) == "committed"
    assert run(app, APPLY_TASK, handle.transaction_id) == "committed"
    assert run(app, APPLY_TASK, 999_999) == "missing"
    assert balance(sessions, "p1") == 70


def test_an_operational_error_is_noted_and_retried_until_it_commits(
        app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "k")
    with sql_faults(app.runtime.engine, rate=1.0, limit=1) as faults:
        assert run(app, APPLY_TASK, handle.transaction_id) == "committed"
    assert faults.injected == 1
    view = handle.fetch()
    assert view.attempts == 2  # the failed attempt, noted, and the one that committed
    assert view.last_error is not None and FAULT_MESSAGE in view.last_error
    assert_ledger_holds(sessions)


def test_a_retry_still_happens_when_noting_the_failure_fails_too(app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "k")
    with sql_faults(app.runtime.engine, rate=1.0, limit=2):
        assert run(app, APPLY_TASK, handle.transaction_id) == "committed"
    assert (handle.fetch().attempts, handle.fetch().last_error) == (1, None)


def test_after_the_last_retry_the_error_surfaces_and_the_intent_stays_pending(
        app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "k")
    with sql_faults(app.runtime.engine, rate=1.0, limit=1), \
            pytest.raises(OperationalError, match=FAULT_MESSAGE):
        run(app, APPLY_TASK, handle.transaction_id, retries=MAX_RETRIES)
    assert handle.status() == "pending"  # the sweeper re-sends it


def age(app: GameschedCelery, seconds: float) -> None:
    """Move every intent's re-send time `seconds` into the past."""
    with transaction(app.runtime.sessions) as db:
        db.execute(update(LedgerTransaction).values(
            resend_at=utcnow() - timedelta(seconds=seconds)))


def test_the_sweep_task_re_sends_due_intents_to_the_transactions_queue(
        app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handle = buy(sessions, "p1", 30, "k")
    take_messages(app, Queue.TRANSACTIONS.value)
    assert run(app, SWEEP_TASK) == 0  # not due yet
    age(app, 1)
    assert run(app, SWEEP_TASK) == 1
    (message,) = take_messages(app, Queue.TRANSACTIONS.value)
    assert message.headers["task"] == APPLY_BATCH_TASK
    assert message.payload[0] == [[handle.transaction_id]]
    # a re-sent intent is among the oldest pending: it goes ahead of new purchases
    assert message.properties["priority"] == LATE.priority < route(APPLY_BATCH_TASK).priority


def test_the_sweep_task_yields_to_a_backlog_in_the_queue(app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    buy(sessions, "p1", 30, "k")
    take_messages(app, Queue.TRANSACTIONS.value)
    age(app, 1)
    for _ in range(1000):  # a full sweep's worth of messages already waits in the queue
        send_apply(app, [0])
    assert run(app, SWEEP_TASK) == 0


def test_the_naive_baseline_sends_to_its_one_shared_queue(db_url: str) -> None:
    app = make_app(db_url, naive=True)
    send_apply(app, [7])
    (message,) = take_messages(app, "celery")
    assert (message.headers["task"], message.payload[0]) == (APPLY_BATCH_TASK, [[7]])
    app.runtime.engine.dispose()


def test_large_re_sends_leave_in_messages_of_at_most_the_batch_limit(
        app: GameschedCelery) -> None:
    send_apply(app, list(range(1, 2 * APPLY_BATCH_MAX + 2)))
    sizes = [len(m.payload[0][0]) for m in take_messages(app, Queue.TRANSACTIONS.value)]
    assert sizes == [APPLY_BATCH_MAX, APPLY_BATCH_MAX, 1]


def test_the_batch_task_settles_each_intent_once_and_counts_the_outcomes(
        app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 50)
    ids = [buy(sessions, "p1", 30, k).transaction_id for k in ("a", "b")]
    assert run(app, APPLY_BATCH_TASK, [*ids, 999_999]) == {
        "committed": 1, "rejected": 1, "missing": 1}
    assert run(app, APPLY_BATCH_TASK, ids) == {"committed": 1, "rejected": 1}
    assert balance(sessions, "p1") == 20


def test_a_batch_run_records_the_transactions_it_committed(db_url: str) -> None:
    app = make_app(db_url, record_latency=True)
    sessions = app.runtime.sessions
    fund(sessions, "p1", 50)
    ids = [buy(sessions, "p1", 30, k).transaction_id for k in ("a", "b")]
    app.runtime.recorder.drain()
    run(app, APPLY_BATCH_TASK, ids)
    run(app, APPLY_BATCH_TASK, ids)  # settled already: commits nothing more
    first, again = [e for e in app.runtime.recorder.drain() if e.task == APPLY_BATCH_TASK]
    assert first.items == (ids[0],)  # the rejected one is not made durable as a purchase
    assert again.items == ()
    app.runtime.engine.dispose()


def test_a_failed_batch_is_noted_on_each_intent_and_retried_whole(
        app: GameschedCelery) -> None:
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    handles = [buy(sessions, "p1", 10, k) for k in ("a", "b")]
    with sql_faults(app.runtime.engine, rate=1.0, limit=1) as faults:
        assert run(app, APPLY_BATCH_TASK, [h.transaction_id for h in handles]) == {
            "committed": 2}
    assert faults.injected == 1
    for handle in handles:
        view = handle.fetch()
        assert view.attempts == 2 and FAULT_MESSAGE in (view.last_error or "")
    assert_ledger_holds(sessions)


def test_a_failed_batch_is_retried_ahead_of_new_purchases(db_url: str) -> None:
    app = create_app(load_settings(database_url=db_url))  # not eager: the retry is sent
    app.loader.import_default_modules()
    sessions = app.runtime.sessions
    fund(sessions, "p1", 100)
    ids = [buy(sessions, "p1", 10, k).transaction_id for k in ("a", "b")]
    queue = Queue.TRANSACTIONS.value
    task = app.tasks[APPLY_BATCH_TASK]
    task.push_request(id="batch-1", args=[ids], kwargs={}, retries=0, headers={},
                      is_eager=False, called_directly=False,  # as a worker runs it
                      delivery_info={"exchange": queue, "routing_key": queue})
    try:
        with sql_faults(app.runtime.engine, rate=1.0, limit=1), pytest.raises(Retry):
            task.run(ids)
    finally:
        task.pop_request()
    (message,) = take_messages(app, queue)
    assert message.headers["id"] == "batch-1" and message.headers["retries"] == 1
    assert message.payload[0] == [ids]
    assert message.properties["priority"] == LATE.priority < route(APPLY_BATCH_TASK).priority
    assert LATE.priority == 0  # the step of a message sent without one: the naive queue's
    app.runtime.engine.dispose()


def test_the_client_commits_then_sends_and_the_task_applies(db_url: str) -> None:
    app = make_app(db_url, transaction_tick_ms=1000.0)  # nothing leaves before close()
    client = GameClient(app)
    try:
        reward = client.grant_reward("p1", 100, "gold", "signup-p1", reason="signup")
        bought = client.purchase("p1", "sword", 30, "gold", "order-1")
        again = client.purchase("p1", "sword", 30, "gold", "order-1")
        with pytest.raises(InvalidRequest) as caught:
            client.purchase("p1", "sword", 30, "silver", "order-2")
        assert (caught.value.field, caught.value.value) == ("currency", "silver")
    finally:
        client.close()
    (message,) = take_messages(app, Queue.TRANSACTIONS.value)  # one tick, one message
    assert message.headers["task"] == APPLY_BATCH_TASK
    ids = message.payload[0][0]
    assert ids == [reward.transaction_id, bought.transaction_id, bought.transaction_id]
    assert again.transaction_id == bought.transaction_id and not again.created
    assert run(app, APPLY_BATCH_TASK, ids) == {"committed": 2}
    assert bought.wait(timeout=1).status == "committed"
    assert reward.fetch().reason == "signup"
    assert balance(app.runtime.sessions, "p1") == 70
    app.runtime.engine.dispose()


def test_currencies_come_from_the_settings(db_url: str) -> None:
    app = make_app(db_url, currencies=("credits",))
    client = GameClient(app)
    try:
        client.grant_reward("p1", 5, "credits", "r")
        with pytest.raises(InvalidRequest, match="expected one of credits"):
            client.grant_reward("p1", 5, "gold", "r2")
    finally:
        client.close()
        take_messages(app, Queue.TRANSACTIONS.value)
        app.runtime.engine.dispose()


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_a_broker_that_refuses_the_message_leaves_a_pending_intent_for_the_sweeper(
        db_url: str, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(load_settings(database_url=db_url,
                                   broker_url=f"redis://127.0.0.1:{closed_port()}/0"))
    client = GameClient(app)
    try:
        with caplog.at_level(logging.WARNING, logger="app.client.api"):
            handle = client.grant_reward("p1", 5, "gold", "r")
            client.flush()
    finally:
        client.close()
        app.runtime.engine.dispose()
    assert handle.created and handle.status() == "pending"
    assert "the sweeper will send them" in caplog.text


def test_a_purchase_runs_end_to_end_on_the_embedded_default(sqlite_url: str) -> None:
    settings = load_settings(database_url=sqlite_url, instance_id="ledger-embedded")
    with EmbeddedFleet(settings, roles=("transactions",)):
        app = create_app(settings)
        client = GameClient(app)
        try:
            client.grant_reward("p1", 100, "gold", "signup").wait(timeout=20)
            view = client.purchase("p1", "sword", 30, "gold", "order-1").wait(timeout=20)
            dear = client.purchase("p1", "castle", 300, "gold", "order-2").wait(timeout=20)
        finally:
            client.close()
    assert view.status == "committed" and dear.status == "rejected"
    assert balance(app.runtime.sessions, "p1") == 70
    assert_ledger_holds(app.runtime.sessions)
