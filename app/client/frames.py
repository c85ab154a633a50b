"""Physics frames split by unit: each region goes to the unit the owner map names.

The first frame sent under a new owner map reaches every unit, with no regions for those
that own none of it: a unit that lost all its regions still learns of the new map and hands
its spaces over (`app.physics.units`).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping

from app.physics.owners import OwnerMap


class FrameRouter:
    """Splits each frame's regions among the physics units by the owner map."""

    def __init__(self, owners: OwnerMap, units: int) -> None:
        self._owners = owners
        self._units = units
        self._lock = threading.Lock()
        self._epoch: int | None = None  # the owner map's epoch of the last frame split

    def split(self, regions: Mapping[str, int]) -> tuple[int, dict[int, dict[str, int]]]:
        """The owner map's epoch and, per unit, its regions of `regions` (region to
        bodies); every unit appears when the epoch is new to this router."""
        view = self._owners.read()
        with self._lock:
            fresh = view.epoch != self._epoch
            self._epoch = view.epoch
        by_unit: dict[int, dict[str, int]] = (
            {unit: {} for unit in range(self._units)} if fresh else {})
        for region, bodies in regions.items():
            by_unit.setdefault(view.owner_of(region, self._units), {})[region] = bodies
        return view.epoch, by_unit
