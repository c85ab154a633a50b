"""The broker connection: how soon it tries again after losing the broker."""

from __future__ import annotations

from typing import Any

import pytest
import redis
from kombu import Producer
from kombu.exceptions import OperationalError

from app.settings import load_settings
from app.simulate.redisserver import free_port
from app.tasking.factory import create_app
from app.tasking.transport import Connection, published_depth


def test_a_lost_broker_is_tried_again_within_a_fraction_of_a_second() -> None:
    waits: list[float] = []
    nobody = Connection(f"redis://127.0.0.1:{free_port()}/0")  # nothing listens there
    with pytest.raises(OperationalError):
        nobody.ensure_connection(lambda exc, interval: waits.append(interval), max_retries=4)
    # kombu's default would be 2, 4, 6: workers stayed away seconds after a quick restart
    assert waits == pytest.approx([0.1, 0.3, 0.5, 0.7])


def test_the_apps_connections_reconnect_sooner() -> None:
    app = create_app(load_settings(broker_url="redis://127.0.0.1:6379/0"))
    with app.connection_for_read() as conn:
        assert isinstance(conn, Connection)
        assert conn.transport_cls == "app.tasking.transport:Transport"
    with create_app(load_settings()).connection_for_write() as conn:  # the embedded default
        assert isinstance(conn, Connection) and conn.transport_cls == "memory"


def test_a_channel_reuses_one_redis_client_until_its_pool_is_replaced(redis_url: str) -> None:
    app = create_app(load_settings(broker_url=redis_url))
    with app.connection_for_write() as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as first, channel.conn_or_acquire() as second:
            assert first is second
            assert first.ping()
        channel._pool.disconnect()
        channel._pool = None  # what closing or reconnecting the channel does
        with channel.conn_or_acquire() as third:
            assert third is not first
            assert third.connection_pool is channel.pool and third.ping()


def test_a_publish_learns_how_many_messages_wait_in_its_queue(
        redis_url: str, redis_client: redis.Redis) -> None:
    app = create_app(load_settings(broker_url=redis_url))
    depths = []
    for _ in range(3):  # nobody consumes: each one lands behind the ones before it
        app.send_task("gamesched.player.apply_updates", args=[[]], queue="player", priority=3)
        depths.append(published_depth())
    assert depths == [1, 2, 3]
    assert published_depth() is None  # read once; nothing published since
    app.send_task("gamesched.player.apply_updates", args=[[]], queue="player", priority=0)
    assert published_depth() == 1  # another step's list: nothing waits there


def test_a_channel_closed_under_a_publish_fails_as_a_lost_connection(
        redis_url: str, redis_client: redis.Redis) -> None:
    app = create_app(load_settings(broker_url=redis_url))
    with app.connection_for_write() as conn:
        producer = Producer(conn)  # as Celery's producer pool makes them
        closed = producer.channel
        conn.collect()  # what kombu does with a connection that failed, before reconnecting
        assert closed.connection is None
        with pytest.raises(redis.ConnectionError):  # not AttributeError: kombu retries this
            closed._put("player", {"body": "x", "properties": {}})
        producer.publish({"n": 1}, routing_key="player", retry=True,
                         retry_policy={"max_retries": 1})
        assert producer.channel is not closed  # reconnected and revived
    assert redis_client.llen("player") == published_depth() == 1


def test_the_embedded_broker_says_nothing_of_depth() -> None:
    app = create_app(load_settings())
    app.send_task("gamesched.player.apply_updates", args=[[]], queue="player")
    assert published_depth() is None


# Unacknowledged messages: recorded in Redis only once held (app.tasking.transport.QoS).

def _delivered(redis_url: str) -> tuple[Any, Any]:
    """A gamesched channel on the test Redis and one player message delivered on it."""
    app = create_app(load_settings(broker_url=redis_url))
    app.send_task("gamesched.player.apply_updates", args=[[]], queue="player", priority=2)
    channel = app.connection_for_read().default_channel
    message = channel.basic_get("player", no_ack=False)
    assert message is not None
    return channel, message


def _unacked(client: redis.Redis, channel: Any) -> tuple[int, int]:
    return client.hlen(channel.unacked_key), client.zcard(channel.unacked_index_key)


def _waiting(client: redis.Redis) -> int:
    return sum(client.llen(key) for key in client.keys("player*"))


def test_a_message_acknowledged_soon_never_reaches_the_unacknowledged_set(
        redis_url: str, redis_client: redis.Redis) -> None:
    channel, message = _delivered(redis_url)
    channel.qos.can_consume()  # the consumer loop's turn, well within RECORD_AFTER_S
    assert _unacked(redis_client, channel) == (0, 0)
    message.ack()
    assert _unacked(redis_client, channel) == (0, 0) and _waiting(redis_client) == 0


def test_a_message_held_long_is_recorded_and_given_back_to_its_queue(
        redis_url: str, redis_client: redis.Redis) -> None:
    channel, message = _delivered(redis_url)
    channel.qos.record_after_s = 0.0  # held long enough already
    channel.qos.can_consume()  # the consumer loop's turn records it
    assert _unacked(redis_client, channel) == (1, 1)
    channel.qos.restore_unacked()  # what a worker's shutdown, or Redis's timeout, does
    assert _unacked(redis_client, channel) == (0, 0) and _waiting(redis_client) == 1
    again = channel.basic_get("player", no_ack=True)
    assert again is not None and again.headers["id"] == message.headers["id"]


def test_a_recorded_message_acknowledged_leaves_the_unacknowledged_set(
        redis_url: str, redis_client: redis.Redis) -> None:
    channel, message = _delivered(redis_url)
    channel.qos.record_after_s = 0.0
    assert channel.qos.record_held() == 1 and channel.qos.record_held() == 0
    message.ack()
    assert _unacked(redis_client, channel) == (0, 0) and _waiting(redis_client) == 0


def test_a_message_not_yet_recorded_is_still_given_back_on_shutdown_or_reject(
        redis_url: str, redis_client: redis.Redis) -> None:
    channel, message = _delivered(redis_url)
    channel.qos.restore_unacked()
    assert _waiting(redis_client) == 1 and _unacked(redis_client, channel) == (0, 0)
    again = channel.basic_get("player", no_ack=False)
    assert again is not None and again.headers["id"] == message.headers["id"]
    assert _waiting(redis_client) == 0
    again.reject(requeue=True)
    assert _waiting(redis_client) == 1 and _unacked(redis_client, channel) == (0, 0)
