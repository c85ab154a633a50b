"""The sweeper's view of the transactions queue on the live broker: how many messages wait
there and when the oldest of them was handed over, whatever its priority step."""

from __future__ import annotations

import time

import redis

from app.protocol.names import APPLY_BATCH_TASK, HANDOFF_HEADER
from app.settings import Settings, load_settings
from app.tasking.broker import queue_depths, step_key, waiting
from app.tasking.factory import create_app

QUEUE = "transactions"


def test_the_oldest_waiting_message_gives_its_handoff_time(live_settings: Settings) -> None:
    app = create_app(live_settings)
    assert waiting(app, QUEUE) == (0, None)  # nothing waits
    now = time.time()
    for handoff, step in ((now - 3.0, 5), (now - 9.0, 2), (now - 1.0, 2)):
        app.send_task(APPLY_BATCH_TASK, args=[[1]], queue=QUEUE, priority=step,
                      headers={HANDOFF_HEADER: handoff})
    depths = queue_depths(app)
    assert depths[QUEUE] == 3 and depths["player"] == 0  # a queue never declared is empty
    assert waiting(app, QUEUE) == (3, now - 9.0)  # every step counted, in one round trip


def test_a_waiting_message_without_the_header_leaves_it_unknown(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    app = create_app(live_settings)
    app.send_task(APPLY_BATCH_TASK, args=[[1]], queue=QUEUE, priority=5)
    app.send_task(APPLY_BATCH_TASK, args=[[2]], queue=QUEUE, priority=5,
                  headers={HANDOFF_HEADER: time.time()})
    assert waiting(app, QUEUE) == (2, None)
    redis_client.delete(step_key(QUEUE, 5))
    app.send_task(APPLY_BATCH_TASK, args=[[3]], queue=QUEUE, priority=5,
                  headers={HANDOFF_HEADER: time.time()})
    redis_client.rpush(step_key(QUEUE, 5), b"not a message")  # the oldest end of the list
    assert waiting(app, QUEUE).oldest_handoff is None


def test_a_broker_other_than_redis_cannot_tell(sqlite_url: str) -> None:
    app = create_app(load_settings(database_url=sqlite_url))
    assert waiting(app, QUEUE).oldest_handoff is None
    app.send_task(APPLY_BATCH_TASK, args=[[1]], queue=QUEUE, priority=5)
    assert waiting(app, QUEUE).messages == queue_depths(app)[QUEUE] == 1
