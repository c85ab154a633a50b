"""The owner map: an epoch raised by every publish, and reads that never mix two publishes,
in Redis and in memory."""

from __future__ import annotations

import threading

import pytest
import redis

from app.errors import InvalidRequest
from app.physics.owners import (
    MemoryOwnerMap,
    OwnerMap,
    OwnerView,
    RedisOwnerMap,
    fallback_unit,
)
from tests.stores import STORES, memory_or_redis


@pytest.fixture(params=STORES)
def owner_map(request: pytest.FixtureRequest) -> OwnerMap:
    return memory_or_redis(request, MemoryOwnerMap, RedisOwnerMap)


def test_each_publish_replaces_the_map_and_raises_the_epoch(owner_map: OwnerMap) -> None:
    assert owner_map.read() == OwnerView(0, {})
    assert owner_map.publish({"w0": 0, "w1": 1, "w2": 1}) == 1
    assert owner_map.publish({"w0": 1, "w3": 0}) == 2  # w1, w2 merged away: gone
    view = owner_map.read()
    assert view == OwnerView(2, {"w0": 1, "w3": 0})
    assert (view.owner("w0"), view.owner("w1")) == (1, None)
    assert owner_map.publish({}) == 3 and owner_map.read() == OwnerView(3, {})


def test_a_bad_unit_is_refused_naming_the_region_and_the_map_is_kept(
        owner_map: OwnerMap) -> None:
    owner_map.publish({"w": 0})
    for bad in (-1, "2", True):
        with pytest.raises(InvalidRequest) as caught:
            owner_map.publish({"w0": 0, "w1": bad})  # type: ignore[dict-item]
        assert caught.value.field == "owners.w1"
    assert owner_map.read() == OwnerView(1, {"w": 0})


def test_a_read_never_mixes_two_publishes(owner_map: OwnerMap) -> None:
    regions = [f"w{q}{r}" for q in range(4) for r in range(4)]
    published: dict[int, dict[str, int]] = {}
    lock = threading.Lock()

    def publisher(unit: int) -> None:
        for _ in range(100):
            owners = dict.fromkeys(regions, unit)
            with lock:  # the epoch and what it stands for, recorded together
                published[owner_map.publish(owners)] = owners

    threads = [threading.Thread(target=publisher, args=(u,)) for u in (0, 1)]
    for thread in threads:
        thread.start()
    seen = []
    while any(t.is_alive() for t in threads):
        seen.append(owner_map.read())
    for thread in threads:
        thread.join()
    seen.append(owner_map.read())
    assert len(published) == 200 and sorted(published) == list(range(1, 201))
    for view in seen:  # the publishers are done: every epoch's map is recorded
        if view.epoch:
            assert view.owners == published[view.epoch]
    assert seen[-1].epoch == 200


def test_the_redis_map_lives_under_the_projects_prefix(redis_client: redis.Redis) -> None:
    RedisOwnerMap(redis_client).publish({"w": 0}, moving={"w": 1})
    assert sorted(k.decode() for k in redis_client.keys("*")) == [
        "gamesched:physics:epoch", "gamesched:physics:moving", "gamesched:physics:owners"]


def test_regions_in_transit_are_published_with_the_map_and_settled_one_by_one(
        owner_map: OwnerMap) -> None:
    owner_map.publish({"w0": 1, "w1": 1, "w2": 0}, moving={"w0": 0, "w1": 0})
    assert owner_map.read().moving == {"w0": 0, "w1": 0}
    owner_map.settle("w0")
    owner_map.settle("w3")  # never in transit: nothing to do
    assert owner_map.read() == OwnerView(1, {"w0": 1, "w1": 1, "w2": 0}, {"w1": 0})
    owner_map.publish({"w0": 1})  # a publish replaces the transit list with its own
    assert owner_map.read().moving == {}


def test_a_bad_unit_in_transit_is_refused_naming_it(owner_map: OwnerMap) -> None:
    with pytest.raises(InvalidRequest) as caught:
        owner_map.publish({"w0": 1}, moving={"w0": -1})
    assert caught.value.field == "moving.w0"
    assert owner_map.read().epoch == 0


def test_every_region_has_one_owner_before_any_publish() -> None:
    view = OwnerView(0)
    regions = [f"r{i}" for i in range(200)]
    owners = [view.owner_of(r, 4) for r in regions]
    assert owners == [fallback_unit(r, 4) for r in regions]  # fixed by the name alone
    assert set(owners) == {0, 1, 2, 3}
    published = OwnerView(1, {"r0": 3, "r1": 9})
    assert published.owner_of("r0", 4) == 3
    assert published.owner_of("r1", 4) == fallback_unit("r1", 4)  # past the units: not it
