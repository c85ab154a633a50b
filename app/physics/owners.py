"""The owner map: which physics unit owns each region, with an epoch.

Every publish replaces the whole map and raises the epoch in one step, and a read returns a
map and the epoch it was published with, never a mix of two publishes.  A frame task
carries the epoch its sender read; a unit that finds a newer epoch knows the regions may
have moved and reads the map again.  `RedisOwnerMap` keeps it in the hot store (a hash and
a counter, written in one MULTI); `MemoryOwnerMap` in this process, for the embedded
default and fast tests.
"""

from __future__ import annotations

import threading
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

    def owner(self, region: str) -> int | None:
        """The unit owning `region`, or None if the map does not name it."""
        return self.owners.get(region)


class OwnerMap(Protocol):
    """Where the owner map lives."""

    def publish(self, owners: Mapping[str, int]) -> int:
        """Replace the map with `owners`; returns the new epoch."""

    def read(self) -> OwnerView:
        """The map and its epoch (epoch 0 and no owners before the first publish)."""


def _checked(owners: Mapping[str, int]) -> dict[str, int]:
    for region, unit in owners.items():
        if not isinstance(unit, int) or isinstance(unit, bool) or unit < 0:
            raise InvalidRequest(f"owners.{region}", unit, "expected a unit number >= 0")
    return dict(owners)


class MemoryOwnerMap:
    """The owner map in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._view = OwnerView(0)

    def publish(self, owners: Mapping[str, int]) -> int:
        """Replace the map with `owners`; returns the new epoch."""
        checked = _checked(owners)
        with self._lock:
            self._view = OwnerView(self._view.epoch + 1, checked)
            return self._view.epoch

    def read(self) -> OwnerView:
        """The map and its epoch."""
        with self._lock:
            return OwnerView(self._view.epoch, dict(self._view.owners))


class RedisOwnerMap:
    """The owner map in Redis: a hash and an epoch counter, written and read atomically."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def publish(self, owners: Mapping[str, int]) -> int:
        """Replace the map with `owners`; returns the new epoch."""
        checked = _checked(owners)
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(keys.PHYSICS_OWNERS)
        if checked:
            pipe.hset(keys.PHYSICS_OWNERS, mapping=checked)  # type: ignore[arg-type]
        pipe.incr(keys.PHYSICS_EPOCH)
        return int(pipe.execute()[-1])

    def read(self) -> OwnerView:
        """The map and its epoch, from one MULTI."""
        pipe = self._client.pipeline(transaction=True)
        pipe.get(keys.PHYSICS_EPOCH)
        pipe.hgetall(keys.PHYSICS_OWNERS)
        epoch, raw = pipe.execute()
        return OwnerView(int(epoch or 0),
                         {region.decode(): int(unit) for region, unit in raw.items()})
