"""Frames split by unit: each region to its owner, and a new owner map to every unit."""

from __future__ import annotations

from app.client.frames import FrameRouter
from app.physics.owners import MemoryOwnerMap, fallback_unit


def test_each_region_goes_to_the_unit_the_owner_map_names() -> None:
    owners = MemoryOwnerMap()
    router = FrameRouter(owners, units=3)
    epoch, by_unit = router.split({"a": 1, "b": 2})
    # before any publish: the fallback, and the first frame reaches every unit
    assert epoch == 0 and set(by_unit) == {0, 1, 2}
    assert by_unit[fallback_unit("a", 3)]["a"] == 1 and by_unit[fallback_unit("b", 3)]["b"] == 2
    owners.publish({"a": 2, "b": 2, "c": 0})
    assert router.split({"a": 1, "b": 2, "c": 3}) == (1, {0: {"c": 3}, 1: {}, 2: {"a": 1, "b": 2}})
    # the same epoch again: only the units with regions
    assert router.split({"a": 5}) == (1, {2: {"a": 5}})
    assert router.split({}) == (1, {})
