"""Level of detail by player attention: how often each region steps.

A region with players in it steps every frame, at `DetailRates.frame_hz`; a region within
`near_hops` neighbours of one steps at `near_hz`; every other region at `far_hz` (0: it
sleeps until something enters).  The controller may lower detail further under load, by a
factor in (0, 1], never for a region with players: their own region always steps every
frame.  `due` spreads the slower regions over the frames (each starts at an offset of its
own), so they do not all land on one frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping
from dataclasses import dataclass

from app.errors import InvalidRequest
from app.physics.partition import Partition


@dataclass(frozen=True)
class DetailRates:
    """Step rates by attention; see the module."""

    frame_hz: float = 60.0
    near_hz: float = 20.0
    far_hz: float = 2.0
    near_hops: int = 1

    def __post_init__(self) -> None:
        if not self.frame_hz > 0:
            raise InvalidRequest("frame_hz", self.frame_hz, "expected a positive rate")
        if not 0 <= self.near_hz <= self.frame_hz:
            raise InvalidRequest("near_hz", self.near_hz,
                                 f"expected 0 to frame_hz ({self.frame_hz:g})")
        if not 0 <= self.far_hz <= self.near_hz:
            raise InvalidRequest("far_hz", self.far_hz, f"expected 0 to near_hz ({self.near_hz:g})")
        if self.near_hops < 0:
            raise InvalidRequest("near_hops", self.near_hops, "expected 0 or more")


def step_rates(partition: Partition, players: Mapping[str, int], rates: DetailRates,
               lowered: float = 1.0) -> dict[str, float]:
    """Each region's step rate in Hz, from the players in each region (`players`, region
    to count) and the controller's factor `lowered`, which scales every rate but that of
    a region with players."""
    if not 0 < lowered <= 1:
        raise InvalidRequest("lowered", lowered, "expected a factor in (0, 1]")
    occupied = {r for r in partition.regions() if players.get(r, 0) > 0}
    near = _within(partition, occupied, rates.near_hops) - occupied
    return {r: rates.frame_hz if r in occupied
            else (rates.near_hz if r in near else rates.far_hz) * lowered
            for r in partition.regions()}


def due(rates_by_region: Mapping[str, float], frame: int, frame_hz: float) -> list[str]:
    """The regions that step in `frame` (frames counted from 0 at `frame_hz`), in name
    order: each every ``round(frame_hz / rate)`` frames, from an offset of its own."""
    stepping = []
    for region in sorted(rates_by_region):
        rate = rates_by_region[region]
        if rate <= 0:
            continue
        every = max(1, round(frame_hz / rate))
        if frame % every == zlib.crc32(region.encode()) % every:
            stepping.append(region)
    return stepping


def _within(partition: Partition, start: set[str], hops: int) -> set[str]:
    reached, edge = set(start), set(start)
    for _ in range(hops):
        edge = {n for r in edge for n in partition.neighbours(r)} - reached
        reached |= edge
    return reached
