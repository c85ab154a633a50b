"""Fencing when an instance's session state lives on a Redis of its own: the registry
records each instance's hot store, keeps a copy of its token there, and a takeover raises
it there too; one that cannot reach the store leaves it to the instance, which copies the
new token itself when a heartbeat tells it that it was fenced."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import redis

from app.errors import Fenced
from app.instances.heartbeat import Heartbeat
from app.instances.registry import MemoryRegistry, RedisRegistry, Registry
from app.players.statestore import Emit, Fence, RedisStateStore
from app.players.wire import entry, pack_batch
from app.protocol import keys
from app.simulate.redisserver import PrivateRedis
from tests.proxy import Proxy
from tests.stores import STORES, memory_or_redis

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")


@pytest.fixture(params=STORES)
def registry(request: pytest.FixtureRequest) -> Registry:
    return memory_or_redis(request, MemoryRegistry, RedisRegistry)


@pytest.fixture
def hot(redis_server_binary: str) -> Iterator[PrivateRedis]:
    """A hot-state Redis of one instance's own."""
    with PrivateRedis(redis_server_binary) as server:
        yield server


def test_an_instance_records_its_hot_store_as_it_joins(registry: Registry,
                                                       redis_url: str) -> None:
    registry.join("a", 10, redis_url)
    registry.join("b", 10)  # recorded nothing: its hot store is not known
    assert registry.hot_urls() == {"a": redis_url}
    assert {s.name: s.hot_url for s in registry.instances()} == {"a": redis_url, "b": ""}


def test_a_takeover_raises_the_token_in_the_instances_hot_store(
        redis_client: redis.Redis, hot: PrivateRedis) -> None:
    registry = RedisRegistry(redis_client)
    store = redis.Redis.from_url(hot.url)
    token = registry.join("a", 10, hot.url)
    assert store.hget(keys.INSTANCES_TOKEN, "a") == str(token).encode()
    states = RedisStateStore(store)
    states.put_if_newer("s1", 0, {})
    write = pack_batch([entry("s1", 1, {"hp": 1})])
    assert states.apply(write, EMIT, fence=Fence(keys.INSTANCES_TOKEN, "a", token)).applied == 1

    registry.fence("a")  # taken over: its writes to its own store are refused at once
    assert int(store.hget(keys.INSTANCES_TOKEN, "a") or 0) == token + 1
    with pytest.raises(Fenced):
        states.apply(pack_batch([entry("s1", 2, {"hp": 2})]), EMIT,
                     fence=Fence(keys.INSTANCES_TOKEN, "a", token))
    assert states.read(["s1"])[0].seq == 1  # type: ignore[union-attr]


def test_a_takeover_that_cannot_reach_the_hot_store_is_learnt_at_the_next_heartbeat(
        redis_client: redis.Redis, hot: PrivateRedis, caplog: pytest.LogCaptureFixture) -> None:
    registry = RedisRegistry(redis_client)
    with Proxy(hot.port) as link:  # the registry reaches the instance's store through it
        beat = Heartbeat(registry, "a", 10, period_s=60, hot_url=link.url)
        beat.start()
        assert beat.token is not None
        states = RedisStateStore(redis.Redis.from_url(hot.url))  # the instance's own way
        states.put_if_newer("s1", 0, {})
        fence = Fence(keys.INSTANCES_TOKEN, "a", beat.token)

        link.cut()  # a partition: the one taking over cannot reach the instance's store
        with caplog.at_level(logging.WARNING, logger="app.instances.tokens"):
            registry.fence("a")
        assert "not written to its hot store" in caplog.text
        # meanwhile its stale writes land in its own store (for sessions now elsewhere)
        assert states.apply(pack_batch([entry("s1", 1, {"hp": 1})]), EMIT,
                            fence=fence).applied == 1

        link.heal()
        assert beat.beat() is False  # back, it learns it was fenced ...
        assert beat.fenced.is_set()
        with pytest.raises(Fenced):  # ... and from then on its writes are refused
            states.apply(pack_batch([entry("s1", 2, {"hp": 2})]), EMIT, fence=fence)
        beat.stop()
