"""State batches gathered from the live broker: those waiting at the head of a queue are
taken in the order a consumer would receive them, and nothing else is taken before them."""

from __future__ import annotations

import json
import time
from collections.abc import Callable

import pytest
import redis

from app.players import wire
from app.priority import Route
from app.protocol.names import CLAIM_HEADER, SESSION_TASK, UPDATE_TASK
from app.protocol.vocab import Queue
from app.settings import Settings
from app.tasking import arrivals, gather
from app.tasking.broker import step_key
from app.tasking.factory import GameschedCelery, create_app

QUEUE = "player"


def _batch(session: str, seq: int = 1) -> bytes:
    return wire.pack_batch([wire.entry(session, seq, {"hp": seq})])


def _send(app: GameschedCelery, session: str, step: int = 5,
          handoff: float | None = None) -> bytes:
    batch = _batch(session)
    arrivals.send_updates(app, None, batch, step=step, handoff=handoff)
    return batch


def _waiting(r: redis.Redis, step: int = 5) -> list[str]:
    """The tasks waiting at `step`, the next to be received first."""
    raws = r.lrange(step_key(QUEUE, step), 0, -1)
    return [json.loads(raw)["headers"]["task"] for raw in reversed(raws)]


def test_waiting_batches_are_taken_highest_step_first_then_oldest_first(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    app = create_app(live_settings)
    now = time.time()
    first = _send(app, "a", step=5, handoff=now - 3)
    raised = _send(app, "b", step=2, handoff=now - 2)
    second = _send(app, "c", step=5, handoff=now - 1)
    taken = gather.take_waiting(redis_client, QUEUE, 10)
    assert [g.batch for g in taken] == [raised, first, second]
    assert [g.handoff for g in taken] == [now - 2, now - 3, now - 1]
    assert [g.step for g in taken] == [2, 5, 5]
    assert all(g.sent >= now and g.taken >= g.sent for g in taken)
    assert len({g.task_id for g in taken}) == 3
    assert gather.take_waiting(redis_client, QUEUE, 10) == []  # nothing is left


def test_no_more_than_asked_is_taken(live_settings: Settings, redis_client: redis.Redis) -> None:
    app = create_app(live_settings)
    sent = [_send(app, s) for s in "abc"]
    assert [g.batch for g in gather.take_waiting(redis_client, QUEUE, 2)] == sent[:2]
    assert [g.batch for g in gather.take_waiting(redis_client, QUEUE, 2)] == sent[2:]
    assert gather.take_waiting(redis_client, QUEUE, 0) == []


def test_a_session_op_ahead_stops_the_taking_and_what_waits_behind_it_stays(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    app = create_app(live_settings)
    before = _send(app, "a")
    app.send_task(SESSION_TASK, args=["open", "b", {}], queue=QUEUE, priority=5)
    _send(app, "b")
    assert [g.batch for g in gather.take_waiting(redis_client, QUEUE, 10)] == [before]
    assert _waiting(redis_client) == [SESSION_TASK, UPDATE_TASK]
    assert gather.take_waiting(redis_client, QUEUE, 10) == []


def test_a_claimed_copy_or_a_batch_due_later_is_left_to_the_consumer(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    app = create_app(live_settings)
    app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, 5), [_batch("a")], {CLAIM_HEADER: 1},
                       serializer="msgpack")
    assert gather.take_waiting(redis_client, QUEUE, 10) == []
    redis_client.delete(step_key(QUEUE, 5))
    app.send_task(UPDATE_TASK, args=[_batch("b")], queue=QUEUE, priority=5, countdown=60,
                  serializer="msgpack")
    assert gather.take_waiting(redis_client, QUEUE, 10) == []
    assert redis_client.llen(step_key(QUEUE, 5)) == 1


def _break_body(app: GameschedCelery, r: redis.Redis) -> None:
    _send(app, "b")
    key = step_key(QUEUE, 5)
    broken = json.loads(r.lindex(key, 0))
    broken["body"] = "not base64!"
    r.lset(key, 0, json.dumps(broken))


def _send_a_map(app: GameschedCelery, r: redis.Redis) -> None:
    arrivals.send_updates(app, None, b"\x81\xa1x\x01")  # a msgpack map, not an array


@pytest.mark.parametrize("send_bad", [_break_body, _send_a_map])
def test_a_message_that_does_not_decode_goes_back_with_those_behind_it_in_order(
        live_settings: Settings, redis_client: redis.Redis,
        send_bad: Callable[[GameschedCelery, redis.Redis], None]) -> None:
    app = create_app(live_settings)
    good = _send(app, "a")
    send_bad(app, redis_client)
    key = step_key(QUEUE, 5)
    _send(app, "c")
    expected = redis_client.lrange(key, 0, -2)
    assert [g.batch for g in gather.take_waiting(redis_client, QUEUE, 10)] == [good]
    assert redis_client.lrange(key, 0, -1) == expected
