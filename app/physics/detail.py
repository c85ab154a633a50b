"""Level of detail by player attention: how often each region steps.

A region with players in it steps every frame, at `DetailRates.frame_hz`; a region within
`near_hops` neighbours of one steps at `near_hz`; every other region at `far_hz` (0: it
sleeps until something enters).  The controller may lower detail further under load, by a
factor in (0, 1], never for a region with players: their own region always steps every
frame.  A region too costly for a frame that cannot split steps at a fraction of its rate
too (`slowed`, `app.physics.slowed`), never one with players.  `due` spreads the slower
regions over the frames (each starts at an offset of its own), so they do not all land on
one frame.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from app.errors import InvalidRequest
from app.physics.partition import Partition
from app.physics.partition import touching as touching_names

MAX_STEP_MS = 100.0  # the longest a region's step advances it, however rarely it steps
MAX_NAME_DEPTH = 20


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
    return region_rates(partition.regions(), players, rates, lowered)


def region_rates(regions: Iterable[str], players: Mapping[str, int], rates: DetailRates,
                 lowered: float = 1.0,
                 slowed: Mapping[str, float] | None = None) -> dict[str, float]:
    """`step_rates` for regions known by their names alone: two regions are neighbours when
    their quadtree names (`app.physics.partition`) put them side by side; a name off the
    quadtree has no neighbours.  A region of `slowed` (region to factor) without players
    steps at its factor of its rate as well."""
    if not 0 < lowered <= 1:
        raise InvalidRequest("lowered", lowered, "expected a factor in (0, 1]")
    names = tuple(sorted(set(regions)))
    occupied = {r for r in names if players.get(r, 0) > 0}
    near = _within(touching(names), occupied, rates.near_hops) - occupied
    slowed = slowed or {}
    return {r: rates.frame_hz if r in occupied
            else (rates.near_hz if r in near else rates.far_hz) * lowered * slowed.get(r, 1.0)
            for r in names}


def due(rates_by_region: Mapping[str, float], frame: int, frame_hz: float) -> list[str]:
    """The regions that step in `frame` (frames counted from 0 at `frame_hz`), in name
    order: each every ``round(frame_hz / rate)`` frames, from an offset of its own."""
    return [region for region in sorted(rates_by_region)
            if _due(region, rates_by_region[region], frame, frame_hz)]


def frame_steps(regions: Mapping[str, int], players: Mapping[str, int], *, frame: int,
                dt_ms: float, rates: DetailRates, lowered: float = 1.0,
                slowed: Mapping[str, float] | None = None) -> dict[str, tuple[int, float]]:
    """The regions of `regions` (region to bodies) due in `frame`, each with its bodies and
    the time its step advances: the frames since its last step times `dt_ms`, at most
    `MAX_STEP_MS` (a region stepping less often than that runs slower than real time;
    nobody is there to see it, and a step of the substeps of a longer one would cost what
    stepping at the full rate costs)."""
    by_rate = region_rates(regions, players, rates, lowered, slowed)
    steps = {}
    for region in due(by_rate, frame, rates.frame_hz):
        every = _every(by_rate[region], rates.frame_hz)
        steps[region] = (regions[region], min(every * dt_ms, MAX_STEP_MS))
    return steps


def touching(names: tuple[str, ...]) -> dict[str, frozenset[str]]:
    """Which of `names` share an edge or a corner, by their quadtree names
    (`app.physics.partition.touching`)."""
    return touching_names(names, MAX_NAME_DEPTH)


def _due(region: str, rate: float, frame: int, frame_hz: float) -> bool:
    if rate <= 0:
        return False
    every = _every(rate, frame_hz)
    return frame % every == zlib.crc32(region.encode()) % every


def _every(rate: float, frame_hz: float) -> int:
    """How many frames apart a region stepping at `rate` (> 0) steps."""
    return max(1, round(frame_hz / rate))


def _within(neighbours: Mapping[str, frozenset[str]], start: set[str], hops: int) -> set[str]:
    reached, edge = set(start), set(start)
    for _ in range(hops):
        edge = {n for r in edge for n in neighbours[r]} - reached
        reached |= edge
    return reached
