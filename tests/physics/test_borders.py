"""Halos and arrivals between regions, in memory and in Redis: arrivals come once, in the
order they left, whoever sent them first; halos are read as last left."""

from __future__ import annotations

import pytest
import redis

from app.physics.borders import HALO_TTL_MS, Borders, MemoryBorders, RedisBorders
from app.protocol import keys
from tests.stores import STORES, memory_or_redis


@pytest.fixture(params=STORES)
def borders(request: pytest.FixtureRequest) -> Borders:
    return memory_or_redis(request, MemoryBorders, RedisBorders)


def _row(name: str, x: float) -> list[float | str]:
    return [name, x, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 5.0, 0.5, 0.5, ""]


def test_arrivals_come_once_in_the_order_they_left(borders: Borders) -> None:
    borders.scatter({}, {"w1": [("w3", 0, b"c0"), ("w3", 1, b"c1")]})  # a later unit first
    borders.scatter({}, {"w1": [("w0", 1, b"a1"), ("w0", 0, b"a0")], "w2": [("w0", 2, b"b")]})
    got = borders.gather(["w1", "w9"], [])
    assert [blob for _, _, blob in got.arrivals["w1"]] == [b"a0", b"a1", b"c0", b"c1"]
    assert set(got.arrivals) == {"w1"}
    assert borders.gather(["w1"], []).arrivals == {}  # taken
    assert borders.gather(["w2"], []).arrivals == {"w2": [("w0", 2, b"b")]}


def test_the_latest_halo_of_each_neighbour_is_read(borders: Borders) -> None:
    borders.scatter({"w0": [_row("a", 1.0)], "w1": []}, {})
    borders.scatter({"w0": [_row("a", 2.0), _row("b", 3.0)]}, {})
    got = borders.gather([], ["w0", "w1", "w2"])
    assert got.halos == {"w0": [_row("a", 2.0), _row("b", 3.0)], "w1": []}
    assert got.arrivals == {}


def test_a_halo_nobody_renews_fades_and_arrivals_wait_bounded(
        redis_client: redis.Redis) -> None:
    RedisBorders(redis_client).scatter({"w0": []}, {"w1": [("w0", 0, b"x")]})
    assert 0 < redis_client.pttl(keys.physics_halo("w0")) <= HALO_TTL_MS
    assert redis_client.ttl(keys.physics_arrivals("w1")) > 0
