"""Combat for the ``physics-peak`` scenario: blasts where players are.

A blast goes off at an open session's position and spawns, through the client's
``change_bodies``, three kinds of bodies at once:

- debris: balls strewn over a small disc and flung outward;
- projectiles: small, fast balls (some faster than the units allow, and clamped there),
  which pass through a ball in one substep (the tunnelling risk);
- a pile: balls packed a little closer than they fit, so that the step resolves a storm
  of contacts.

Each blast's bodies are removed `Combat.lifetime_s` later (a game clears its debris), from
the regions they were spawned in.  Blast `k` goes off at ``k / rate`` seconds, drawn from a
generator of its own (seed, stream, k): every game server plans the same blasts and sends
those of its share.
"""

from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.client.requests import MAX_SPEED
from app.simulate.population import Floats, Population, World
from app.simulate.scenarios import Combat

COMBAT_STREAM = 11  # seeds each blast's generator beside the run's seed and its number
PILE_OVERLAP = 0.9  # a pile's balls sit this share of a diameter apart


@dataclass(frozen=True)
class BodyChange:
    """What blast `blast` spawns in or removes from one region (client ``change_bodies``)."""

    blast: int
    region: str
    spawn: list[dict[str, Any]] = field(default_factory=list)
    remove: list[str] = field(default_factory=list)


class Blasts:
    """The blasts of one run, and the removal of each one's bodies when its time is up."""

    def __init__(self, combat: Combat, world: World, seed: int, players: int) -> None:
        self.combat, self.world, self.seed = combat, world, seed
        self.rate = combat.per_1000_players_s * players / 1000.0
        self._live: deque[tuple[float, list[BodyChange]]] = deque()

    def due(self, t0: float, t1: float, population: Population) -> list[BodyChange]:
        """The changes falling in ``(t0, t1]``: blasts going off, and earlier blasts'
        bodies whose lifetime ends."""
        changes = []
        while self._live and self._live[0][0] <= t1:
            changes += [BodyChange(c.blast, c.region, remove=[b["id"] for b in c.spawn])
                        for c in self._live.popleft()[1]]
        if self.rate <= 0:
            return changes
        first, last = math.floor(t0 * self.rate) + 1, math.floor(t1 * self.rate)
        for k in range(first, last + 1):
            spawned = self.blast(k, population)
            if spawned:
                self._live.append((k / self.rate + self.combat.lifetime_s, spawned))
            changes += spawned
        return changes

    def blast(self, k: int, population: Population) -> list[BodyChange]:
        """Blast `k`: its bodies, grouped by the region each lies in (none when no session
        is open)."""
        open_idx = np.flatnonzero(population.opened)
        if not len(open_idx):
            return []
        rng = np.random.default_rng([self.seed, COMBAT_STREAM, k])
        at = int(rng.choice(open_idx))
        centre = (float(population.x[at]), float(population.y[at]))
        bodies = (_debris(self.combat, centre, rng) + _projectiles(self.combat, centre, rng)
                  + _pile(self.combat, centre))
        return self._by_region(k, bodies)

    def _by_region(self, k: int, bodies: list[dict[str, Any]]) -> list[BodyChange]:
        size = self.world.size
        for j, body in enumerate(bodies):
            r = body["radius"]
            body["id"] = f"blast{k}.{j}"
            body["x"] = min(max(body["x"], r), size - r)
            body["y"] = min(max(body["y"], r), size - r)
        xs = np.array([b["x"] for b in bodies])
        ys = np.array([b["y"] for b in bodies])
        regions = self.world.region_of(xs, ys).tolist()
        grouped: dict[str, list[dict[str, Any]]] = {}
        for body, region in zip(bodies, regions, strict=True):
            grouped.setdefault(self.world.name(region), []).append(body)
        return [BodyChange(k, name, spawn) for name, spawn in sorted(grouped.items())]


def _ball(x: float, y: float, vx: float, vy: float, radius: float) -> dict[str, Any]:
    return {"x": x, "y": y, "vx": vx, "vy": vy, "radius": radius,
            "mass": round(radius * radius / 25.0, 4)}


def _debris(combat: Combat, centre: tuple[float, float],
            rng: np.random.Generator) -> list[dict[str, Any]]:
    n = combat.debris
    angle, reach = rng.uniform(0, 2 * math.pi, n), combat.radius * np.sqrt(rng.uniform(0, 1, n))
    speed = rng.uniform(0.2, 1.0, n) * combat.debris_speed
    radius = rng.uniform(3.0, 8.0, n)
    return _rays(centre, angle, reach, speed, radius)


def _projectiles(combat: Combat, centre: tuple[float, float],
                 rng: np.random.Generator) -> list[dict[str, Any]]:
    n = combat.projectiles
    angle = rng.uniform(0, 2 * math.pi, n)
    low, high = combat.projectile_speed
    return _rays(centre, angle, np.full(n, 12.0), rng.uniform(low, high, n), np.full(n, 2.0),
                 cap=MAX_SPEED)


def _rays(centre: tuple[float, float], angle: Floats, reach: Floats, speed: Floats,
          radius: Floats, *, cap: float = math.inf) -> list[dict[str, Any]]:
    """Balls at `reach` from `centre` along `angle`, moving outward at `speed` (each
    component at most `cap`, as the client takes them)."""
    cos, sin = np.cos(angle), np.sin(angle)
    vx, vy = np.clip(cos * speed, -cap, cap), np.clip(sin * speed, -cap, cap)
    x, y = centre[0] + cos * reach, centre[1] + sin * reach
    return [_ball(*row) for row in zip(x.tolist(), y.tolist(), vx.tolist(), vy.tolist(),
                                       radius.tolist(), strict=True)]


def _pile(combat: Combat, centre: tuple[float, float]) -> list[dict[str, Any]]:
    """A square heap of `combat.pile` balls beside the blast, packed tighter than they fit."""
    radius = 5.0
    side = math.ceil(math.sqrt(combat.pile))
    step = 2 * radius * PILE_OVERLAP
    x0, y0 = centre[0] + combat.radius, centre[1] - side * step / 2
    return [_ball(x0 + (i % side) * step, y0 + (i // side) * step, 0.0, 0.0, radius)
            for i in range(combat.pile)]
