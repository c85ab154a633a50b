"""The seeded schedule: what the simulated game servers hand over in each tick.

``Schedule.plan(k)`` returns the work of tick `k` (sim time ``k * tick_s``).  The plans are
a pure function of the scenario, the player count and the seed: the driver may emit them
late when it falls behind, but never different ones.  Background jobs and purchases are
pure functions of their number; the driver offers them by the wall clock (see driver).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from app.protocol.vocab import BackgroundKind
from app.simulate.combat import Blasts, BodyChange
from app.simulate.population import WHOLE, Ints, Population, SessionSpec, Share, Update, World
from app.simulate.scenarios import Scenario

TICK_S = 0.005
AI_TICK_S = 0.1  # a game server's AI thinks at 10 Hz: the NPCs due since go as one task
SNAPSHOT_SESSIONS = 500  # sessions per snapshot task: few, heavy background tasks
ANALYTICS_EVENTS = 2000  # events per analytics task
SNAPSHOTS_PER_ANALYTICS_BATCH = 4  # the cycle: three snapshots, then one analytics batch
NPC_SIGHT = 8  # players an NPC decision considers
NPC_WANDER = 15.0  # how far an NPC wanders in a second (the deviation of its random walk)
MEMBERS_REFRESH_S = 0.05
EVENT_KINDS = ("kill", "death", "loot", "quest", "chat", "trade", "level_up")
PURCHASE_STREAM = 7  # seeds each purchase's generator beside the run's seed and its number
SIGHT_STREAM = 13  # seeds what the NPCs of an AI tick see, beside the seed and the tick
SKUS = (("sword", 500), ("shield", 350), ("potion", 20), ("skin", 1200), ("mount", 3000))


@dataclass(frozen=True)
class PhysicsFrame:
    """One frame of the world's regions: region -> bodies (the client picks those due by
    level of detail); `at` is its scheduled start in seconds of simulated time."""

    frame: int
    dt_ms: float
    regions: dict[str, int]
    at: float = 0.0


@dataclass(frozen=True)
class AiRequest:
    """One NPC decision and the players it sees."""

    npc: int
    position: tuple[float, float]
    players: list[tuple[float, float]]


@dataclass(frozen=True)
class BackgroundJob:
    """A snapshot of some sessions, or a batch of analytics events."""

    number: int
    kind: BackgroundKind
    sessions: list[int] = field(default_factory=list)
    events: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True)
class PurchaseRequest:
    """A purchase by session `index`, sent `copies` times with the same key."""

    number: int
    index: int
    sku: str
    price: int
    copies: int


@dataclass
class TickPlan:
    """Everything handed to the client API in one tick: what happened during it (the
    players' updates, with the moment each acted) and the frames that start by its end.
    The driver hands it over at `due`, the tick's end."""

    tick: int
    at: float
    due: float = 0.0
    opens: list[SessionSpec] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    moves: list[tuple[int, str]] = field(default_factory=list)
    physics: list[PhysicsFrame] = field(default_factory=list)
    ai: list[AiRequest] = field(default_factory=list)  # every NPC, in an AI tick of this share
    ai_tick: int | None = None  # that AI tick's number
    bodies: list[BodyChange] = field(default_factory=list)


class Npcs:
    """NPCs that wander their region, each seeing some of the players there; the game
    server hands them all to the client every AI tick, which decides those due at their
    tier's rate (`GameClient.ai_tick`).  Every share moves them (the world moves on whole);
    what they see is drawn only by the share that owns the tick, from a generator of the
    tick's own (seed, stream, tick)."""

    def __init__(self, count: int, world: World, rng: np.random.Generator, seed: int) -> None:
        self.world, self.rng, self.seed = world, rng, seed
        self.x = rng.uniform(0.0, world.size, count)
        self.y = rng.uniform(0.0, world.size, count)

    def wander(self) -> None:
        """Move every NPC by one AI tick's random walk."""
        size, n = self.world.size, len(self.x)
        step = NPC_WANDER * math.sqrt(AI_TICK_S)  # a random walk of NPC_WANDER a second
        self.x = np.clip(self.x + self.rng.normal(0.0, step, n), 0.0, size)
        self.y = np.clip(self.y + self.rng.normal(0.0, step, n), 0.0, size)

    def seen(self, tick: int, members: list[Ints],
             population: Population) -> list[AiRequest]:
        """Every NPC where it is, with the players it sees in AI tick `tick`: up to
        NPC_SIGHT distinct players of its region, drawn for all the region's NPCs at once
        (one draw per NPC cost the game server a millisecond and a half per AI tick)."""
        rng = np.random.default_rng([self.seed, SIGHT_STREAM, tick])
        regions = self.world.region_of(self.x, self.y)
        sights: list[list[tuple[float, float]]] = [[] for _ in range(len(self.x))]
        # the regions with NPCs (np.unique would import numpy.ma on its first call: 35 ms)
        for region in np.flatnonzero(np.bincount(regions)).tolist():
            npcs = np.flatnonzero(regions == region)
            pool = members[region]
            if not len(pool):
                continue
            chosen = pool[_distinct(rng, len(pool), len(npcs), NPC_SIGHT)]
            xs, ys = population.x[chosen].tolist(), population.y[chosen].tolist()
            for row, npc in enumerate(npcs.tolist()):
                sights[npc] = list(zip(xs[row], ys[row], strict=True))
        return [AiRequest(i, (x, y), sights[i])
                for i, (x, y) in enumerate(zip(self.x.tolist(), self.y.tolist(), strict=True))]


def _distinct(rng: np.random.Generator, pool: int, rows: int, k: int) -> Ints:
    """`rows` rows of min(k, pool) distinct indices below `pool`, each row uniform over
    such sets: rows drawn whole and drawn again while they repeat an index (rare when the
    pool is much larger than k; a small pool takes a permutation per row)."""
    if pool < 4 * k:
        return np.array([rng.permutation(pool)[:k] for _ in range(rows)], dtype=np.int64)
    picks = rng.integers(0, pool, (rows, k))
    while True:
        ordered = np.sort(picks, axis=1)
        repeats = (ordered[:, 1:] == ordered[:, :-1]).any(axis=1)
        if not repeats.any():
            return picks
        picks[repeats] = rng.integers(0, pool, (int(repeats.sum()), k))


class Schedule:
    """The seeded workload of one scenario; call `plan(k)` for k = 0, 1, 2, ... in order.

    With a `share`, the plans hold only that game server's part of the work (its sessions,
    its frames, its AI ticks); the world moves on whole in every share, so that the shares
    of one seed partition the whole plan."""

    def __init__(self, scenario: Scenario, players: int, seed: int, duration_s: float, *,
                 world_size: float = 10_000.0, tick_s: float = TICK_S,
                 share: Share = WHOLE) -> None:
        self.scenario, self.duration_s, self.tick_s = scenario, duration_s, tick_s
        self.rng = np.random.default_rng(seed)
        self.world = World(world_size, scenario.regions_per_side)
        surge_at = scenario.surge.at * duration_s if scenario.surge else 0.0
        self.population = Population(scenario, players, self.rng, self.world, surge_at)
        npcs = round(players * scenario.npcs_per_player * scenario.ai_factor)
        self.npcs = Npcs(npcs, self.world, self.rng, seed)
        self.seed = seed
        self.share = share
        self.blasts = (Blasts(scenario.combat, self.world, seed, players)
                       if scenario.combat else None)
        self._members: list[Ints] = []
        self._members_at = -math.inf
        self._next_tick = 0

    @property
    def size(self) -> int:
        """Sessions over the whole run (initial and joining)."""
        return self.population.size

    @property
    def ticks(self) -> int:
        """Ticks in the run."""
        return math.ceil(self.duration_s / self.tick_s - 1e-9)

    def initial_sessions(self) -> list[SessionSpec]:
        """The sessions open when play starts (marks them open)."""
        return self.population.specs(self.population.joining(0.0 + 1e-12))

    def join_updates(self) -> list[Update]:
        """The first update (the whole profile) of every session open before play."""
        return self.population.first_updates(np.flatnonzero(self.population.opened))

    def background_job(self, number: int) -> BackgroundJob:
        """Background job `number`: three snapshots, then one analytics batch.  Pure.

        Jobs are few and heavy (each send costs the game server about as much whatever its
        size), and snapshots take turns over the sessions."""
        if number % SNAPSHOTS_PER_ANALYTICS_BATCH == SNAPSHOTS_PER_ANALYTICS_BATCH - 1:
            events = [{"kind": EVENT_KINDS[(number + j) % len(EVENT_KINDS)], "n": j}
                      for j in range(ANALYTICS_EVENTS)]
            return BackgroundJob(number, BackgroundKind.ANALYTICS, events=events)
        sessions = max(1, self.population.initial)
        size = min(sessions, SNAPSHOT_SESSIONS)
        turn = number - number // SNAPSHOTS_PER_ANALYTICS_BATCH
        start = turn * size % sessions
        return BackgroundJob(number, BackgroundKind.SNAPSHOT,
                             sessions=[(start + j) % sessions for j in range(size)])

    def plan(self, k: int) -> TickPlan:
        """The work of tick `k`; ticks must be planned in order."""
        if k != self._next_tick:
            raise ValueError(f"tick {k} planned out of order (expected {self._next_tick})")
        self._next_tick += 1
        t0, t1 = k * self.tick_s, (k + 1) * self.tick_s
        plan = TickPlan(tick=k, at=t0, due=t1)
        self._world_events(t0, t1)
        pop, share = self.population, self.share
        plan.opens = pop.specs(share.of(pop.joining(t1)))
        plan.updates, plan.moves = pop.advance(pop.due(t1), share)
        plan.physics = [f for f in self._physics(t0, t1) if share.owns(f.frame)]
        if self.blasts is not None:
            plan.bodies = [c for c in self.blasts.due(t0, t1, pop) if share.owns(c.blast)]
        ai_tick = _crosses(t0, t1, AI_TICK_S)
        if len(self.npcs.x) and ai_tick is not None:
            self.npcs.wander()
            if share.owns(ai_tick):
                plan.ai = self.npcs.seen(ai_tick, self._region_members(t0), pop)
                plan.ai_tick = ai_tick
        return plan

    def purchase_rate(self) -> float:
        """Purchases per second now: the scenario's rate per open session (a surge of
        sessions brings a surge of purchases)."""
        return self.scenario.purchases_per_player_s * int(
            np.count_nonzero(self.population.opened))

    def purchase(self, number: int) -> PurchaseRequest:
        """Purchase `number` of the run, by one of its sessions.  Pure."""
        rng = np.random.default_rng([self.seed, PURCHASE_STREAM, number])
        sku, price = SKUS[int(rng.integers(len(SKUS)))]
        twice = rng.random() < self.scenario.duplicate_share
        copies = int(rng.integers(2, 4)) if twice else 1
        return PurchaseRequest(number, int(rng.integers(self.size)), sku, price, copies)

    def _world_events(self, t0: float, t1: float) -> None:
        if self.scenario.activity_churn and math.floor(t1) > math.floor(t0) and t0 > 0:
            self.population.churn(self.scenario.activity_churn)
        influx = self.scenario.influx
        if influx is not None and t0 <= influx.at * self.duration_s < t1:
            centre = self.world.per_side // 2
            region = centre * self.world.per_side + centre
            self.population.start_influx(t0, influx.within_s, influx.share, region)

    def frames_due(self, ticks: int) -> int:
        """Physics frames of this share scheduled in the first `ticks` ticks (each starts by
        its tick's end: frames 1, 2, ... at ``frame / physics_hz`` seconds)."""
        frames = _frames_in(0.0, ticks * self.tick_s, self.scenario.physics_hz)
        return sum(1 for f in frames if self.share.owns(f))

    def _physics(self, t0: float, t1: float) -> list[PhysicsFrame]:
        hz = self.scenario.physics_hz
        frames = _frames_in(t0, t1, hz)
        if not frames:
            return []
        occupied = self.population.occupancy()
        base, per = self.scenario.bodies_base, self.scenario.bodies_per_player
        # every region, the empty ones too: the client steps each at its level of detail
        regions = {self.world.name(r): min(5000, base + int(per * players))
                   for r, players in enumerate(occupied.tolist())}
        return [PhysicsFrame(f, 1000.0 / hz, regions, f / hz) for f in frames]

    def _region_members(self, t0: float) -> list[Ints]:
        if t0 - self._members_at >= MEMBERS_REFRESH_S:
            self._members, self._members_at = self.population.members(), t0
        return self._members


def _frames_in(t0: float, t1: float, hz: float) -> range:
    """The frames whose start ``frame / hz`` lies in ``(t0, t1]``: a frame is handed over
    at the end of the tick it starts in, which is its start when it falls on a tick."""
    if hz <= 0:
        return range(0)
    return range(math.floor(t0 * hz + 1e-9) + 1, math.floor(t1 * hz + 1e-9) + 1)


def _crosses(t0: float, t1: float, period: float) -> int | None:
    """The number `n` of the multiple ``n * period`` falling in ``[t0, t1)``, or None."""
    first = math.ceil(t0 / period - 1e-9)
    return first if first < math.ceil(t1 / period - 1e-9) else None
