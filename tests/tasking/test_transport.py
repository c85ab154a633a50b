"""The broker connection: how soon it tries again after losing the broker."""

from __future__ import annotations

import pytest
import redis
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


def test_the_embedded_broker_says_nothing_of_depth() -> None:
    app = create_app(load_settings())
    app.send_task("gamesched.player.apply_updates", args=[[]], queue="player")
    assert published_depth() is None
