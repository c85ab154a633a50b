"""Frames split by unit: each region to its owner, and a new owner map to every unit."""

from __future__ import annotations

from app.client.frames import FrameRouter
from app.physics.owners import MemoryOwnerMap, fallback_unit


def test_each_region_goes_to_the_unit_the_owner_map_names() -> None:
    owners = MemoryOwnerMap()
    router = FrameRouter(owners, units=3, ttl_s=0.0)  # reads the map on every frame
    epoch, by_unit = router.split({"a": 1, "b": 2})
    # before any publish: the fallback, and the first frame reaches every unit
    assert epoch == 0 and set(by_unit) == {0, 1, 2}
    assert by_unit[fallback_unit("a", 3)]["a"] == 1 and by_unit[fallback_unit("b", 3)]["b"] == 2
    owners.publish({"a": 2, "b": 2, "c": 0})
    assert router.split({"a": 1, "b": 2, "c": 3}) == (1, {0: {"c": 3}, 1: {}, 2: {"a": 1, "b": 2}})
    # the same epoch again: only the units with regions
    assert router.split({"a": 5}) == (1, {2: {"a": 5}})
    assert router.split({}) == (1, {})


def test_the_map_is_read_again_only_after_its_time_to_live() -> None:
    owners = MemoryOwnerMap()
    owners.publish({"a": 1})
    clock = [100.0]
    router = FrameRouter(owners, units=2, ttl_s=0.1, clock=lambda: clock[0])
    assert router.split({"a": 1})[0] == 1
    owners.publish({"a": 0})
    clock[0] += 0.09
    assert router.split({"a": 1}) == (1, {1: {"a": 1}})  # read 0.09 s ago: still good
    clock[0] += 0.02
    assert router.split({"a": 1}) == (2, {0: {"a": 1}, 1: {}})  # read again: a new epoch


def test_a_frame_names_regions_as_the_game_server_knows_them_and_the_map_decides() -> None:
    owners = MemoryOwnerMap()
    router = FrameRouter(owners, units=2, ttl_s=0.0)
    frame = {"w0": (4, 16.0), "w1": (10, 16.0), "arena": (3, 50.0)}
    assert router.resolve(frame) == frame  # no map yet: as named
    owners.publish({"w0": 0, "w2": 0, "w3": 1, **{f"w1{q}": 1 for q in "0123"}})
    assert router.resolve(frame) == {"w0": (4, 16.0), "w10": (3, 16.0), "w11": (3, 16.0),
                                     "w12": (2, 16.0), "w13": (2, 16.0), "arena": (3, 50.0)}
    assert router.first_region("w1") == "w10" and router.first_region("w13") == "w13"
    owners.publish({"w": 0})  # everything merged: the names inside it stand for it
    assert router.resolve({"w0": (4, 50.0), "w1": (10, 16.0)}) == {"w": (14, 16.0)}
    assert router.first_region("w21") == "w"
