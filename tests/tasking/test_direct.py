"""The player worker's own consumer (`app.tasking.direct`) on the live broker: priority
order, messages run as a Celery worker runs them, ETAs, acknowledgement records kombu can
give back, bad messages, a broker that goes away, and its stop.

The consumer runs in this process, on the test app with the test tasks; the task it runs
is the real one, through Celery's tracer."""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import pytest
import redis
from kombu.transport.redis import Channel as RedisChannel

from app.client.api import GameClient
from app.protocol.names import UPDATE_TASK
from app.tasking.broker import step_key
from app.tasking.deliveries import BadMessage, Runner, delivery
from app.tasking.direct import DirectConsumer, Held, pop_keys
from app.tasking.factory import GameschedCelery
from tests.proxy import Proxy
from tests.waiting import wait_for

Make = Callable[..., DirectConsumer]


@pytest.fixture
def consumer(celery_app: GameschedCelery, redis_url: str,
             redis_client: redis.Redis) -> Iterator[Make]:
    """Makes direct consumers of the test app's tasks (stopped afterwards)."""
    made: list[DirectConsumer] = []

    def make(queues: tuple[str, ...] = ("player",), threads: int = 1,
             url: str = redis_url, **options: float) -> DirectConsumer:
        one = DirectConsumer(redis.Redis.from_url(url), queues,
                             Runner(celery_app, "direct@test"), threads, pop_timeout_s=0.2,
                             **options)
        made.append(one)
        return one

    yield make
    for one in made:
        one.stop(timeout_s=10)


def _waiting(client: redis.Redis, queue: str = "player") -> list[dict[str, object]]:
    """The messages waiting in `queue`, highest step first, oldest first."""
    found = []
    for key in pop_keys([queue]):
        found += [json.loads(raw) for raw in reversed(client.lrange(key, 0, -1))]
    return found


def _unacked(client: redis.Redis) -> tuple[int, int]:
    return client.hlen(RedisChannel.unacked_key), client.zcard(RedisChannel.unacked_index_key)


def test_one_pop_takes_every_queues_higher_step_first() -> None:
    keys = pop_keys(["player.east", "player"])
    assert keys[:3] == ["player.east", "player", "player.east\x06\x161"]
    assert keys[-1] == "player\x06\x169" and len(keys) == 20


@pytest.mark.parametrize(("raw", "named"), [
    (b"not json", "Expecting value"),
    (json.dumps({"headers": {"id": "1"}, "properties": {"delivery_tag": "t"}}).encode(),
     "headers.task"),
    (json.dumps({"headers": {"task": "x", "id": "1"}, "properties": {}}).encode(),
     "properties.delivery_tag"),
])
def test_a_message_that_is_no_task_says_what_is_wrong(raw: bytes, named: str) -> None:
    with pytest.raises(BadMessage, match=named):
        delivery("player", "player", raw)


def test_a_bad_eta_names_the_header() -> None:
    raw = json.dumps({"headers": {"task": "x", "id": "1", "eta": "soon"},
                      "properties": {"delivery_tag": "t"}}).encode()
    with pytest.raises(BadMessage, match=r"headers\.eta: expected an ISO 8601 time, got 'soon'"):
        delivery("player", "player", raw).eta()


def test_the_higher_step_runs_first_and_each_message_once(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    order = f"order-{uuid.uuid4().hex[:6]}"
    for label, step in (("low", 5), ("high", 0), ("middle", 2)):
        celery_app.send_task("tests.mark", args=[order, label], queue="player", priority=step)
    direct = consumer()
    direct.start()
    wait_for(lambda: redis_client.llen(order) == 3, what="three marks")
    assert redis_client.lrange(order, 0, -1) == [b"high", b"middle", b"low"]
    assert _waiting(redis_client) == [] and direct.ran == 3 and len(direct.held) == 0


def test_a_state_batch_runs_as_the_player_task_with_its_record(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    client = GameClient(celery_app)
    try:
        client.open_session("s-direct", session_type="ranked", players=2)
        for seq in (1, 2, 3):
            client.submit_update("s-direct", seq, {"hp": 100 - seq})
        client.flush()
        consumer(threads=2).start()
        wait_for(lambda: client.last_applied(["s-direct"]).get("s-direct") == 3,
                 what="the updates applied")
        assert client.states(["s-direct"])["s-direct"].fields == {"hp": 97}
    finally:
        client.close()
    records = celery_app.runtime.recorder.drain()
    batches = [r for r in records if r.task == UPDATE_TASK]
    assert batches and all(r.ok and r.queue == "player" and r.hostname == "direct@test"
                           for r in batches)


def test_a_retry_waits_for_its_eta_recorded_meanwhile_then_runs(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    order = f"order-{uuid.uuid4().hex[:6]}"
    celery_app.send_task("tests.retry_once", args=[order, 1.0], queue="player", priority=3)
    direct = consumer(record_after_s=0.1)
    direct.start()
    # sent again with its countdown, taken, and held for its ETA: recorded meanwhile
    wait_for(lambda: _unacked(redis_client) == (1, 1), what="the retry recorded as held")
    assert _waiting(redis_client) == [] and redis_client.llen(order) == 0
    wait_for(lambda: redis_client.lrange(order, 0, -1) == [b"1"], what="the retry run")
    wait_for(lambda: _unacked(redis_client) == (0, 0), what="its record removed")
    assert len(direct.held) == 0


def test_stop_gives_the_messages_held_for_their_eta_back(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    eta = datetime.now(UTC) + timedelta(seconds=60)
    sent = celery_app.send_task("tests.mark", args=["never", "x"], queue="player", priority=4,
                                eta=eta)
    direct = consumer(record_after_s=0.1)
    direct.start()
    wait_for(lambda: _unacked(redis_client) == (1, 1), what="the message held and recorded")
    assert _waiting(redis_client) == []
    direct.stop(timeout_s=10)
    back = _waiting(redis_client)
    assert [m["headers"]["id"] for m in back] == [sent.id]  # type: ignore[index]
    assert _unacked(redis_client) == (0, 0) and redis_client.llen("never") == 0


def test_a_long_run_is_recorded_until_it_ends(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    run = uuid.uuid4().hex[:6]
    celery_app.send_task("tests.block", args=[f"{run}:started", f"{run}:release"],
                         queue="player", priority=0)
    direct = consumer(record_after_s=0.1)
    direct.start()
    wait_for(lambda: redis_client.llen(f"{run}:started"), what="the block to start")
    wait_for(lambda: _unacked(redis_client) == (1, 1), what="the running message recorded")
    redis_client.rpush(f"{run}:release", b"go")
    wait_for(lambda: _unacked(redis_client) == (0, 0), what="its record removed")
    assert direct.ran == 1


def test_a_recorded_message_is_one_kombu_gives_back_to_its_queue(
        celery_app: GameschedCelery, redis_url: str, redis_client: redis.Redis) -> None:
    sent = celery_app.send_task("tests.mark", args=["k", "x"], queue="player", priority=2)
    key = step_key("player", 2)
    one = delivery(key, "player", redis_client.rpop(key))  # type: ignore[arg-type]
    held = Held(redis.Redis.from_url(redis_url))
    held.hold(one)
    assert held.record_due(one.taken + 0.1) == 0  # not held long enough
    assert held.record_due(one.taken + 1.0) == 1 and held.record_due(one.taken + 2.0) == 0
    with celery_app.connection_for_read() as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            channel.qos.restore_by_tag(one.tag, client)  # what Redis's timeout leads to
    assert [m["headers"]["id"] for m in _waiting(redis_client)] == [sent.id]  # type: ignore[index]
    assert redis_client.llen(key) == 1  # at its own step
    held.release(one)
    assert _unacked(redis_client) == (0, 0) and len(held) == 0


def test_messages_it_cannot_run_are_dropped_and_the_rest_run(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    order = f"order-{uuid.uuid4().hex[:6]}"
    redis_client.lpush("player", b"not a message")
    celery_app.send_task("tests.no_such_task", args=[], queue="player", priority=0)
    celery_app.send_task("tests.mark", args=[order, "late"], queue="player", priority=0,
                         expires=datetime.now(UTC) - timedelta(seconds=1))
    celery_app.send_task("tests.mark", args=[order, "ran"], queue="player", priority=0)
    direct = consumer()
    direct.start()
    wait_for(lambda: redis_client.llen(order) == 1, what="the good message run")
    assert redis_client.lrange(order, 0, -1) == [b"ran"]
    assert _waiting(redis_client) == [] and direct.ran == 1


def test_a_broker_that_goes_away_is_popped_again_once_back(
        celery_app: GameschedCelery, redis_url: str, redis_client: redis.Redis,
        consumer: Make) -> None:
    order = f"order-{uuid.uuid4().hex[:6]}"
    port, db = redis_url.rsplit(":", 1)[1].split("/")
    with Proxy(int(port)) as link:
        direct = consumer(url=f"redis://127.0.0.1:{link.port}/{db}")
        direct.start()
        celery_app.send_task("tests.mark", args=[order, "before"], queue="player", priority=1)
        wait_for(lambda: redis_client.llen(order) == 1, what="a message run through the link")
        link.cut()
        celery_app.send_task("tests.mark", args=[order, "after"], queue="player", priority=1)
        wait_for(lambda: redis_client.llen(order) == 1 and _waiting(redis_client),
                 what="the message to wait while the link is cut")
        link.heal()
        wait_for(lambda: redis_client.llen(order) == 2, what="the message run once healed")
    assert redis_client.lrange(order, 0, -1) == [b"before", b"after"]


def test_once_asked_to_stop_elsewhere_it_takes_no_more(
        celery_app: GameschedCelery, redis_client: redis.Redis, consumer: Make) -> None:
    asked = threading.Event()
    order = f"order-{uuid.uuid4().hex[:6]}"
    direct = consumer(threads=2, should_stop=asked.is_set)
    direct.start()
    celery_app.send_task("tests.mark", args=[order, "before"], queue="player", priority=1)
    wait_for(lambda: redis_client.llen(order) == 1, what="a message run")
    asked.set()  # a warm shutdown of the host worker: its threads end after their pop
    wait_for(lambda: direct.consuming() == 0, what="the threads to end")
    celery_app.send_task("tests.mark", args=[order, "after"], queue="player", priority=1)
    assert len(_waiting(redis_client)) == 1 and redis_client.lrange(order, 0, -1) == [b"before"]


def test_a_record_redis_cannot_remove_now_is_removed_once_it_is_back(
        celery_app: GameschedCelery, redis_url: str, redis_client: redis.Redis) -> None:
    celery_app.send_task("tests.mark", args=["k", "x"], queue="player", priority=2)
    key = step_key("player", 2)
    one = delivery(key, "player", redis_client.rpop(key))  # type: ignore[arg-type]
    port, db = redis_url.rsplit(":", 1)[1].split("/")
    with Proxy(int(port)) as link:
        held = Held(redis.Redis.from_url(f"redis://127.0.0.1:{link.port}/{db}"))
        held.hold(one)
        assert held.record_due(one.taken + 1.0) == 1
        link.cut()
        held.release(one)  # done while Redis is away: no error, the record stays
        assert _unacked(redis_client) == (1, 1) and len(held) == 0
        link.heal()
        assert held.unrecord() == 1  # what the housekeeping thread tries every 0.1 s
    assert _unacked(redis_client) == (0, 0)
