"""Regions slowed because their step outgrew a unit's frame budget and they cannot split.

The director splits a region whose step costs more than a unit's share of a frame
(`app.physics.director`: a pile-up of contacts), so that its quarters can spread over the
units.  A region that cannot split (at the partition's deepest level, or an arena, whose
name is off the quadtree) is slowed instead: the game servers step it at `factor` of the
rate its level of detail gives, the unit's budget over its cost (at least `SLOW_FLOOR`),
so fewer frames carry its step and the frame goes on for every other region.  A region
with players is never slowed (`app.physics.detail`): its step is what they see.  A region
stays slowed, at its last factor, until its cost falls under `RELEASE_BELOW` of the
budget, so it does not flap at the bar.

The director publishes the slowed regions each time they change; `RedisSlowedRegions`
keeps them in the hot store for every game server (a hash, region to factor, replaced in
one MULTI), `MemorySlowedRegions` in this process for the embedded default.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Mapping
from typing import Protocol

import redis

from app.errors import InvalidRequest
from app.protocol import keys

SLOW_FLOOR = 0.1  # a slowed region still steps at a tenth of its rate
RELEASE_BELOW = 0.7  # of the budget: a slowed region's cost under this ends its slowing


def slowed(costs: Mapping[str, float], can_split: Callable[[str], bool], budget_ms: float,
           previous: Mapping[str, float]) -> dict[str, float]:
    """The regions of `costs` (region to a step's cost in ms) to slow, each with its factor
    on the step rate: those that cannot split and cost more than `budget_ms`, and those
    slowed in `previous` whose cost has not yet fallen under `RELEASE_BELOW` of it."""
    out = {}
    for region, cost in costs.items():
        if can_split(region):
            continue
        if cost > budget_ms:
            out[region] = max(SLOW_FLOOR, budget_ms / cost)
        elif region in previous and cost > RELEASE_BELOW * budget_ms:
            out[region] = previous[region]
    return out


def checked(factors: Mapping[str, object]) -> dict[str, float]:
    """`factors` (region to factor) when each factor is in (0, 1]; else InvalidRequest
    naming the region."""
    out = {}
    for region, factor in factors.items():
        value = factor if isinstance(factor, (int, float)) and not isinstance(factor, bool) \
            else math.nan
        if not 0 < value <= 1:
            raise InvalidRequest(f"slowed.{region}", factor, "expected a factor in (0, 1]")
        out[region] = float(value)
    return out


def describe(factors: Mapping[str, float]) -> str:
    """The slowed regions as a line names them: ``w0123 x0.25, arena-7 x0.50`` (by name),
    or ``none``."""
    return ", ".join(f"{region} x{factor:.2f}" for region, factor in sorted(factors.items())) \
        or "none"


class SlowedRegions(Protocol):
    """Where the slowed regions live."""

    def publish(self, factors: Mapping[str, float]) -> None:
        """Replace the slowed regions with `factors` (region to factor in (0, 1])."""

    def read(self) -> dict[str, float]:
        """The slowed regions, region to factor (none before the first publish)."""


class MemorySlowedRegions:
    """The slowed regions in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._factors: dict[str, float] = {}

    def publish(self, factors: Mapping[str, float]) -> None:
        """Replace the slowed regions."""
        factors = checked(factors)
        with self._lock:
            self._factors = factors

    def read(self) -> dict[str, float]:
        """The slowed regions."""
        with self._lock:
            return dict(self._factors)


MEMORY_SLOWED_REGIONS = MemorySlowedRegions()  # the embedded default's


class RedisSlowedRegions:
    """The slowed regions in the hot store's Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def publish(self, factors: Mapping[str, float]) -> None:
        """Replace the slowed regions, in one MULTI."""
        factors = checked(factors)
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(keys.PHYSICS_SLOWED)
        if factors:
            pipe.hset(keys.PHYSICS_SLOWED, mapping=factors)  # type: ignore[arg-type]
        pipe.execute()

    def read(self) -> dict[str, float]:
        """The slowed regions (a factor that is not one is left out)."""
        raw = self._client.hgetall(keys.PHYSICS_SLOWED)
        out = {}
        for region, factor in raw.items():
            try:
                value = float(factor)
            except ValueError:
                continue
            if 0 < value <= 1:
                out[region.decode() if isinstance(region, bytes) else str(region)] = value
        return out
