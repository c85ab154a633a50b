"""The simulated players, held as arrays so that one tick costs a few vector operations.

Each session has a type, an activity class (its update rate and speed), a position and a
heading in a square world cut into regions, and a few volatile fields (hp, stamina, ammo,
facing, action) that change as it plays.  All randomness comes from one seeded generator,
so the same seed gives the same sessions and the same updates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.protocol.vocab import SessionType
from app.simulate.scenarios import Scenario

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

ACTIONS = ("idle", "walk", "run", "attack", "jump", "emote")
CLASSES = ("warrior", "ranger", "mage", "healer", "rogue")
HEADING_NOISE = 0.35  # radians of random turn per update


@dataclass(frozen=True)
class Update:
    """One state update of session `index`; `at` is when the player acted, in seconds of
    simulated time (0 for updates before play)."""

    index: int
    seq: int
    state: dict[str, Any]
    position: tuple[float, float]
    at: float = 0.0


@dataclass(frozen=True)
class Share:
    """The part of the world one of `count` game servers hands over: the sessions whose
    index, and the frames and AI ticks whose number, is `index` modulo `count`."""

    index: int = 0
    count: int = 1

    def owns(self, number: int) -> bool:
        """True when work number `number` is this server's."""
        return number % self.count == self.index

    def of(self, idx: Ints) -> Ints:
        """This server's sessions among `idx`."""
        mine: Ints = idx[idx % self.count == self.index]
        return mine


WHOLE = Share()


@dataclass(frozen=True)
class SessionSpec:
    """A session as it is opened."""

    index: int
    session_type: str
    players: int
    region: str


class World:
    """A square world of `size` units cut into `per_side` x `per_side` regions."""

    def __init__(self, size: float, per_side: int) -> None:
        self.size = size
        self.per_side = per_side
        self.cell = size / per_side

    @property
    def regions(self) -> int:
        """How many regions there are."""
        return self.per_side * self.per_side

    def region_of(self, x: Floats, y: Floats) -> Ints:
        """The region index of each position."""
        col = np.minimum((x / self.cell).astype(np.int64), self.per_side - 1)
        row = np.minimum((y / self.cell).astype(np.int64), self.per_side - 1)
        return row * self.per_side + col

    def name(self, region: int) -> str:
        """The region's name, as sent to the client API: its quadtree path
        (`app.physics.partition`) when `per_side` is a power of two, so the director can
        balance it, else ``r<column>-<row>``."""
        col, row = region % self.per_side, region // self.per_side
        depth = self.per_side.bit_length() - 1
        if self.per_side != 1 << depth:
            return f"r{col}-{row}"
        return "w" + "".join(str(((col >> k) & 1) + 2 * ((row >> k) & 1))
                             for k in reversed(range(depth)))

    def centre(self, region: int) -> tuple[float, float]:
        """The centre of a region."""
        return ((region % self.per_side + 0.5) * self.cell,
                (region // self.per_side + 0.5) * self.cell)


def assign(shares: list[float], n: int, rng: np.random.Generator) -> Ints:
    """`n` class indices in exactly the given shares (largest remainder), shuffled."""
    raw = [share * n for share in shares]
    counts = [math.floor(r) for r in raw]
    by_remainder = sorted(range(len(raw)), key=lambda i: raw[i] - counts[i], reverse=True)
    for i in by_remainder[: n - sum(counts)]:
        counts[i] += 1
    labels = np.repeat(np.arange(len(shares), dtype=np.int64), counts)
    return rng.permutation(labels)


class Population:
    """Every session the run will have: the initial ones and those a surge adds later."""

    def __init__(self, scenario: Scenario, initial: int, rng: np.random.Generator,
                 world: World, surge_at_s: float = 0.0) -> None:
        self.rng = rng
        self.world = world
        self.initial = initial
        n = self.size = round(initial * scenario.growth)
        self.type_names = [name for name, _ in scenario.session_types]
        self.hz = np.array([a.hz for a in scenario.activity])
        self.speeds = np.array([a.speed for a in scenario.activity])
        self.activity_shares = [a.share for a in scenario.activity]
        self.activity = assign(self.activity_shares, n, rng)
        self.kind = assign([share for _, share in scenario.session_types], n, rng)
        coop = (self.type_names.index(SessionType.COOP) if SessionType.COOP in self.type_names
                else -1)
        self.players = np.where(self.kind == coop, rng.integers(2, 5, n), 1)
        self.x, self.y = rng.uniform(0.0, world.size, n), rng.uniform(0.0, world.size, n)
        self.heading = rng.uniform(0.0, 2 * math.pi, n)
        self.join_t = np.zeros(n)
        if scenario.surge is not None and n > initial:
            late = rng.uniform(0.0, scenario.surge.within_s, n - initial)
            self.join_t[initial:] = surge_at_s + late
        self.opened = np.zeros(n, dtype=bool)
        self._next_join = float(self.join_t.min()) if n else math.inf
        self.next_t = self.join_t + rng.uniform(0.0, 1.0, n) / self.hz[self.activity]
        self.last_t = self.join_t.copy()
        self.seq = np.zeros(n, dtype=np.int64)
        self.region = world.region_of(self.x, self.y)
        self._init_volatile(n)
        self.travel_t0 = np.full(n, np.inf)
        self.travel_t1 = np.full(n, np.inf)
        self.travel_from = np.zeros((n, 2))
        self.travel_to = np.zeros((n, 2))

    def _init_volatile(self, n: int) -> None:
        self.hp = np.full(n, 100, dtype=np.int64)
        self.stamina = np.full(n, 100, dtype=np.int64)
        self.ammo = np.full(n, 30, dtype=np.int64)
        self.action = np.zeros(n, dtype=np.int64)
        self.score = np.zeros(n, dtype=np.int64)

    # sessions joining -------------------------------------------------------------------

    def joining(self, until: float) -> Ints:
        """Sessions that join before `until` and are not open yet; marks them open."""
        if until <= self._next_join:  # most ticks: nobody joins (a game server plans 200/s)
            return np.zeros(0, dtype=np.int64)
        idx = np.flatnonzero(~self.opened & (self.join_t < until))
        self.opened[idx] = True
        waiting = self.join_t[~self.opened]
        self._next_join = float(waiting.min()) if len(waiting) else math.inf
        return idx

    def specs(self, idx: Ints) -> list[SessionSpec]:
        """How to open each of `idx`."""
        return [SessionSpec(i, self.type_names[k], p, self.world.name(r)) for i, k, p, r in zip(
            idx.tolist(), self.kind[idx].tolist(), self.players[idx].tolist(),
            self.region[idx].tolist(), strict=True)]

    def first_updates(self, idx: Ints) -> list[Update]:
        """Each session's first update (sequence 1): its whole profile, where it stands."""
        self.seq[idx] = 1
        return [Update(i, 1, self._state(hp, st, am, fa, ac) | self._profile(i), (x, y))
                for i, hp, st, am, fa, ac, x, y in self._columns(idx)]

    def refresh_updates(self, idx: Ints) -> list[Update]:
        """One more update of each of `idx` where it stands (its volatile fields as they
        are): new state for a snapshot to find, without moving the world on."""
        self.seq[idx] += 1
        return [Update(i, s, self._state(hp, st, am, fa, ac), (x, y))
                for (i, hp, st, am, fa, ac, x, y), s in zip(
                    self._columns(idx), self.seq[idx].tolist(), strict=True)]

    # playing ----------------------------------------------------------------------------

    def due(self, until: float) -> Ints:
        """Open sessions whose next update falls before `until`."""
        return np.flatnonzero(self.opened & (self.next_t < until))

    def advance(self, idx: Ints,
                share: Share = WHOLE) -> tuple[list[Update], list[tuple[int, str]]]:
        """Move each of `idx` to its update time, change its volatile fields, and return the
        updates of those in `share` plus those of them that crossed into another region.
        Every session of `idx` moves whatever the share: each game server keeps the whole
        world as the others see it, and draws the same numbers from the generator."""
        if not len(idx):
            return [], []
        at = self.next_t[idx]
        self._move(idx, at)
        self._change_volatile(idx)
        interval = self.rng.uniform(0.8, 1.2, len(idx)) / self.hz[self.activity[idx]]
        self.next_t[idx] = at + interval
        self.last_t[idx] = at
        self.seq[idx] += 1
        region = self.world.region_of(self.x[idx], self.y[idx])
        crossed = region != self.region[idx]
        self.region[idx] = region
        mine = np.flatnonzero(idx % share.count == share.index)
        idx, at, region, crossed = idx[mine], at[mine], region[mine], crossed[mine]
        moves = [(int(idx[j]), self.world.name(int(region[j])))
                 for j in np.flatnonzero(crossed).tolist()]
        updates = [Update(i, s, self._state(hp, st, am, fa, ac), (x, y), when)
                   for (i, hp, st, am, fa, ac, x, y), s, when in zip(
                       self._columns(idx), self.seq[idx].tolist(), at.tolist(), strict=True)]
        return updates, moves

    def _move(self, idx: Ints, at: Floats) -> None:
        size, rng = self.world.size, self.rng
        dt = at - self.last_t[idx]
        heading = self.heading[idx] + rng.normal(0.0, HEADING_NOISE, len(idx))
        speed = self.speeds[self.activity[idx]]
        x = self.x[idx] + speed * np.cos(heading) * dt
        y = self.y[idx] + speed * np.sin(heading) * dt
        heading = np.where((x < 0) | (x > size), math.pi - heading, heading)
        heading = np.where((y < 0) | (y > size), -heading, heading)
        x = np.clip(np.abs(x), 0.0, size)
        y = np.clip(np.abs(y), 0.0, size)
        x, y = self._travel(idx, at, x, y)
        self.x[idx], self.y[idx], self.heading[idx] = x, y, heading % (2 * math.pi)

    def _travel(self, idx: Ints, at: Floats, x: Floats, y: Floats) -> tuple[Floats, Floats]:
        going = np.flatnonzero(self.travel_t0[idx] <= at)
        if not len(going):
            return x, y
        who = idx[going]
        t0, t1 = self.travel_t0[who], self.travel_t1[who]
        frac = np.clip((at[going] - t0) / np.maximum(t1 - t0, 1e-9), 0.0, 1.0)
        path = self.travel_to[who] - self.travel_from[who]
        x[going] = self.travel_from[who, 0] + path[:, 0] * frac
        y[going] = self.travel_from[who, 1] + path[:, 1] * frac
        self.travel_t0[who[frac >= 1.0]] = np.inf
        return x, y

    def _change_volatile(self, idx: Ints) -> None:
        rng, m = self.rng, len(idx)
        hit = rng.random(m) < 0.08
        heal = ~hit & (rng.random(m) < 0.3)
        hp = self.hp[idx] - np.where(hit, rng.integers(1, 25, m), 0) + np.where(heal, 5, 0)
        self.hp[idx] = np.clip(hp, 1, 100)
        moving = self.speeds[self.activity[idx]] > 1.0
        self.stamina[idx] = np.clip(self.stamina[idx] + np.where(moving, -2, 3), 0, 100)
        ammo = self.ammo[idx] - (rng.random(m) < 0.1)
        self.ammo[idx] = np.where(ammo <= 0, 30, ammo)
        change = rng.random(m) < 0.15
        self.action[idx] = np.where(change, rng.integers(0, len(ACTIONS), m), self.action[idx])
        self.score[idx] += np.where(rng.random(m) < 0.02, 10, 0)

    def _columns(self, idx: Ints) -> zip[tuple[Any, ...]]:
        facing = np.degrees(self.heading[idx]).astype(np.int64) % 360
        return zip(idx.tolist(), self.hp[idx].tolist(), self.stamina[idx].tolist(),
                   self.ammo[idx].tolist(), facing.tolist(), self.action[idx].tolist(),
                   self.x[idx].tolist(), self.y[idx].tolist(), strict=True)

    @staticmethod
    def _state(hp: int, stamina: int, ammo: int, facing: int, action: int) -> dict[str, Any]:
        return {"hp": hp, "stamina": stamina, "ammo": ammo, "facing": facing,
                "action": ACTIONS[action]}

    def _profile(self, index: int) -> dict[str, Any]:
        return {"name": f"player{index}", "class": CLASSES[index % len(CLASSES)],
                "level": 1 + (index * 7) % 60, "guild": f"guild{index % 97}",
                "skin": index % 12, "team": index % 2, "score": int(self.score[index])}

    # world events -----------------------------------------------------------------------

    def churn(self, share: float) -> None:
        """A `share` of the open sessions change activity class (drawn by the shares)."""
        open_idx = np.flatnonzero(self.opened)
        count = self.rng.binomial(len(open_idx), share) if len(open_idx) else 0
        if count:
            chosen = self.rng.choice(open_idx, size=count, replace=False)
            self.activity[chosen] = self.rng.choice(
                len(self.activity_shares), size=count, p=self.activity_shares)

    def start_influx(self, at: float, within_s: float, share: float, region: int) -> Ints:
        """Send a `share` of the open sessions to `region`, arriving within `within_s`."""
        open_idx = np.flatnonzero(self.opened)
        chosen = self.rng.choice(open_idx, size=round(share * len(open_idx)), replace=False)
        cx, cy = self.world.centre(region)
        half = self.world.cell * 0.45
        k = len(chosen)
        self.travel_from[chosen] = np.column_stack([self.x[chosen], self.y[chosen]])
        self.travel_to[chosen] = np.column_stack(
            [cx + self.rng.uniform(-half, half, k), cy + self.rng.uniform(-half, half, k)])
        self.travel_t0[chosen] = at
        self.travel_t1[chosen] = at + self.rng.uniform(0.1, within_s, k)
        self.next_t[chosen] = np.minimum(self.next_t[chosen], at + within_s)
        return np.asarray(chosen, dtype=np.int64)

    def occupancy(self) -> Ints:
        """Players per region among the open sessions."""
        return np.bincount(self.region[self.opened], weights=self.players[self.opened],
                           minlength=self.world.regions).astype(np.int64)

    def open_specs(self, share: Share = WHOLE) -> list[SessionSpec]:
        """The open sessions of `share` as they stand (region where they are now)."""
        return self.specs(share.of(np.flatnonzero(self.opened)))

    def members(self) -> list[Ints]:
        """The open sessions of each region."""
        open_idx = np.flatnonzero(self.opened)
        order = open_idx[np.argsort(self.region[open_idx], kind="stable")]
        bounds = np.searchsorted(self.region[order], np.arange(self.world.regions + 1))
        return [order[bounds[r]:bounds[r + 1]] for r in range(self.world.regions)]
