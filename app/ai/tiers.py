"""AI tiers: how much thought an NPC gets, by how near the players it sees are.

- ``full``: paths searched anew at every decision, about `TIER_HZ` 10 times a second;
- ``reduced``: a route kept between decisions (searched again only when the map changed
  under it or its goal moved), 2 to 5 times a second;
- ``minimal``: steering toward the goal without a search, sent every 0.8 s so that each is
  decided at least once a second.

Full NPCs spread over the ticks; reduced and minimal ones are decided together, in fewer,
fuller batches (`due`).

An NPC with a player in `TierRanges.full` keeps the full tier, one with a player in
`TierRanges.reduced` the reduced one, and one nobody is near the minimal one.  A cap (the
controller's, under load) lowers every tier to at most the cap; nothing lowers an NPC
below minimal, so every NPC is still decided at least once a second.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from app.errors import InvalidRequest

Point = tuple[float, float]


class Tier(StrEnum):
    """An NPC's tier, most thought first."""

    FULL = "full"
    REDUCED = "reduced"
    MINIMAL = "minimal"


ORDER = (Tier.FULL, Tier.REDUCED, Tier.MINIMAL)
# Decisions a second.  The minimal tier is sent every 0.8 s, not every second: a decision
# done a little later than the one before (the AI queue's wait varies) must still come
# within the second the floor promises.
TIER_HZ = {Tier.FULL: 10.0, Tier.REDUCED: 4.0, Tier.MINIMAL: 1.25}


@dataclass(frozen=True)
class TierRanges:
    """How near a player keeps an NPC at the full and at the reduced tier (world units)."""

    full: float = 600.0
    reduced: float = 1500.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.full) and self.full >= 0):
            raise InvalidRequest("full", self.full, "expected a distance of 0 or more")
        if not (math.isfinite(self.reduced) and self.reduced >= self.full):
            raise InvalidRequest("reduced", self.reduced,
                                 f"expected a distance of at least full ({self.full:g})")


DEFAULT_RANGES = TierRanges()


def tier_for(position: Point, players: Sequence[Point], ranges: TierRanges = DEFAULT_RANGES,
             cap: Tier = Tier.FULL) -> Tier:
    """The tier of an NPC at `position` seeing `players`, at most `cap`."""
    nearest = min((math.dist(position, p) for p in players), default=math.inf)
    tier = (Tier.FULL if nearest <= ranges.full
            else Tier.REDUCED if nearest <= ranges.reduced else Tier.MINIMAL)
    return lowest(tier, cap)


def lowest(a: Tier, b: Tier) -> Tier:
    """The lesser of two tiers."""
    return max(a, b, key=ORDER.index)


def tier_named(name: object, field: str = "tier") -> Tier:
    """The tier called `name`, or InvalidRequest naming `field` and the choices."""
    try:
        return Tier(str(name))
    except ValueError:
        raise InvalidRequest(field, name, f"expected one of {', '.join(ORDER)}") from None


def due(npc_id: str, tier: Tier, tick: int, tick_hz: float) -> bool:
    """Whether an NPC at `tier` is decided in `tick` of a game loop at `tick_hz`: every
    ``round(tick_hz / rate)`` ticks (at least every tick).  Full NPCs start from an offset
    of their own, so that they spread over the ticks; the reduced and minimal ones are
    decided together, in the ticks that are a multiple of their period, so that a game
    server whose AI is lowered sends its AI tasks less often, not emptier ones: capped at
    minimal, one batch every 0.8 s instead of one every tick (a task costs the AI worker
    about 2 ms whatever it carries, a minimal decision about 30 µs: docs/measurements.md)."""
    every = max(1, round(tick_hz / TIER_HZ[tier]))
    offset = zlib.crc32(npc_id.encode()) % every if tier is Tier.FULL else 0
    return tick % every == offset
