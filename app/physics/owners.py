"""The owner map: which physics unit owns each region, with an epoch.

Every publish replaces the whole map and raises the epoch in one step, and a read returns a
map and the epoch it was published with, never a mix of two publishes.  A frame task
carries the epoch its sender read; a unit that finds a newer epoch knows the regions may
have moved and reads the map again.  `RedisOwnerMap` keeps it in the hot store (a hash and
a counter, written in one MULTI); `MemoryOwnerMap` in this process, for the embedded
default and fast tests.

A region the map does not name belongs to a unit chosen by its name (`fallback_unit`), so
every region has exactly one owner from the first frame on, before any publish.  A publish
that moves regions names them in ``moving`` with the unit each leaves: their new owner
waits for the space the old one hands over (`app.physics.units`) instead of starting an
empty one, and `settle` clears the entry once it has.
"""

from __future__ import annotations

import threading
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import redis

from app.errors import InvalidRequest
from app.protocol import keys


@dataclass(frozen=True)
class OwnerView:
    """The owner map as one publish left it."""

    epoch: int
    owners: dict[str, int] = field(default_factory=dict)
    moving: dict[str, int] = field(default_factory=dict)  # region -> the unit it leaves

    def owner(self, region: str) -> int | None:
        """The unit owning `region`, or None if the map does not name it."""
        return self.owners.get(region)

    def owner_of(self, region: str, units: int) -> int:
        """The unit owning `region` among `units`: the map's, else `fallback_unit`."""
        unit = self.owners.get(region)
        return unit if unit is not None and unit < units else fallback_unit(region, units)


def fallback_unit(region: str, units: int) -> int:
    """The unit of a region the owner map does not name: fixed by its name."""
    return zlib.crc32(region.encode()) % units


class OwnerMap(Protocol):
    """Where the owner map lives."""

    def publish(self, owners: Mapping[str, int], moving: Mapping[str, int] | None = None) -> int:
        """Replace the map with `owners` and the regions in transit with `moving` (region
        to the unit it leaves); returns the new epoch."""

    def read(self) -> OwnerView:
        """The map and its epoch (epoch 0 and no owners before the first publish)."""

    def settle(self, region: str) -> None:
        """`region` has arrived at its new owner: no longer in transit."""


def _checked(owners: Mapping[str, int], name: str = "owners") -> dict[str, int]:
    for region, unit in owners.items():
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
            raise InvalidRequest(f"{name}.{region}", unit, "expected a unit number >= 0")
    return dict(owners)


class MemoryOwnerMap:
    """The owner map in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view = OwnerView(0)

    def publish(self, owners: Mapping[str, int], moving: Mapping[str, int] | None = None) -> int:
        """Replace the map and the regions in transit; returns the new epoch."""
        checked, leaving = _checked(owners), _checked(moving or {}, "moving")
        with self._lock:
            self._view = OwnerView(self._view.epoch + 1, checked, leaving)
            return self._view.epoch

    def read(self) -> OwnerView:
        """The map and its epoch."""
        with self._lock:
            view = self._view
            return OwnerView(view.epoch, dict(view.owners), dict(view.moving))

    def settle(self, region: str) -> None:
        """`region` is no longer in transit."""
        with self._lock:
            self._view.moving.pop(region, None)


MEMORY_OWNER_MAP = MemoryOwnerMap()  # the embedded default's, shared by this process


class RedisOwnerMap:
    """The owner map in Redis: a hash and an epoch counter, written and read atomically."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def publish(self, owners: Mapping[str, int], moving: Mapping[str, int] | None = None) -> int:
        """Replace the map and the regions in transit, in one MULTI; returns the new epoch."""
        checked, leaving = _checked(owners), _checked(moving or {}, "moving")
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(keys.PHYSICS_OWNERS, keys.PHYSICS_MOVING)
        if checked:
            pipe.hset(keys.PHYSICS_OWNERS, mapping=checked)  # type: ignore[arg-type]
        if leaving:
            pipe.hset(keys.PHYSICS_MOVING, mapping=leaving)  # type: ignore[arg-type]
        pipe.incr(keys.PHYSICS_EPOCH)
        return int(pipe.execute()[-1])

    def read(self) -> OwnerView:
        """The map and its epoch, from one MULTI."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(keys.PHYSICS_EPOCH)
        pipe.hgetall(keys.PHYSICS_OWNERS)
        pipe.hgetall(keys.PHYSICS_MOVING)
        epoch, raw, moving = pipe.execute()
        return OwnerView(int(epoch or 0), _units(raw), _units(moving))

    def settle(self, region: str) -> None:
        """`region` is no longer in transit."""
        self._client.hdel(keys.PHYSICS_MOVING, region)


def _units(raw: Mapping[bytes, bytes]) -> dict[str, int]:
    return {region.decode(): int(unit) for region, unit in raw.items()}
