"""Physics frames split by unit: each region goes to the unit the owner map names.

The first frame sent under a new owner map reaches every unit, with no regions for those
that own none of it: a unit that lost all its regions still learns of the new map and hands
its spaces over (`app.physics.units`).

The map is read again at most every `ttl_s` (``GAMESCHED_PHYSICS_MAP_TTL_MS``, 100 ms; a
Redis round trip in the game server's frame path otherwise): after a move, the frames of
the next 0.1 s may still go to the unit a region left, which skips it (the frame counts as
not run).  Moves are seconds apart.  A frame names regions as the game server knows them; the router
resolves each to the regions of the map (`resolve`): the director may have split or merged
it since.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TypeVar

from app.physics.owners import OwnerMap, OwnerView
from app.physics.reshape import resolve_frame
from app.physics.world import resolve

MAP_TTL_S = 0.1
V = TypeVar("V")


class FrameRouter:
    """Splits each frame's regions among the physics units by the owner map."""

    def __init__(self, owners: OwnerMap, units: int, ttl_s: float = MAP_TTL_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._owners = owners
        self._units = units
        self._ttl_s = ttl_s
        self._clock = clock
        self._lock = threading.Lock()
        self._epoch: int | None = None  # the owner map's epoch of the last frame split
        self._view: OwnerView | None = None
        self._read_at = -float("inf")

    def split(self, regions: Mapping[str, V]) -> tuple[int, dict[int, dict[str, V]]]:
        """The owner map's epoch and, per unit, its regions of `regions` (region to what
        goes with it); every unit appears when the epoch is new to this router."""
        view = self._current()
        with self._lock:
            fresh = view.epoch != self._epoch
            self._epoch = view.epoch
        by_unit: dict[int, dict[str, V]] = (
            {unit: {} for unit in range(self._units)} if fresh else {})
        for region, value in regions.items():
            by_unit.setdefault(view.owner_of(region, self._units), {})[region] = value
        return view.epoch, by_unit

    def resolve(self, steps: Mapping[str, tuple[int, float]]) -> dict[str, tuple[int, float]]:
        """A frame's ``region -> (bodies, dt_ms)`` as the owner map has the regions now
        (`app.physics.reshape.resolve_frame`): the director may have split or merged
        them since the game server named them."""
        return resolve_frame(self._current().owners.keys(),
                             ((r, b, dt) for r, (b, dt) in steps.items()))

    def leaves(self, name: str) -> tuple[str, ...]:
        """The regions of the owner map that `name` stands for (several when split)."""
        return resolve(name, self._current().owners.keys())

    def first_region(self, name: str) -> str:
        """The region of the owner map that `name` stands for (the first, when split)."""
        return self.leaves(name)[0]

    def _current(self) -> OwnerView:
        """The owner map, read again once `ttl_s` has passed since the last read."""
        now = self._clock()
        with self._lock:
            view, fresh = self._view, now - self._read_at < self._ttl_s
        if view is not None and fresh:
            return view
        view = self._owners.read()
        with self._lock:
            self._view, self._read_at = view, now
        return view
