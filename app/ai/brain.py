"""NPC decisions: the `Brain` protocol a game's own AI can implement, and the default
brain, a py-trees behaviour tree over grid paths.

The default tree, tried in order:

1. **attack** a player within `ATTACK_RANGE`;
2. **chase** the nearest player within `AGGRO_RANGE`, along a path;
3. **patrol** the corners of a square of `PATROL_RADIUS` around where the NPC was first
   seen, along a path;
4. else **hold**: stay (the tree's floor: every decision has an answer).

How a path is found follows the NPC's tier (`app.ai.tiers`): searched anew (full), a kept
route while it holds (reduced), or steering without a search (minimal).  What an NPC
remembers between decisions (its home, its patrol corner, its route) is kept per process
for at most `MEMORY_MAX` NPCs, the least recently decided forgotten first: a forgotten or
elsewhere-decided NPC starts afresh, which costs a search, never a wrong answer.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import py_trees
from py_trees.common import Status

from app.ai.navgrid import NavGrid, Point
from app.ai.paths import Path, PathStatus, Route, find_path, steer
from app.ai.tiers import Tier

AGGRO_RANGE = 300.0
ATTACK_RANGE = 30.0
PATROL_RADIUS = 400.0
MEMORY_MAX = 100_000  # NPCs remembered per process


@dataclass(frozen=True)
class Npc:
    """One NPC to decide: where it is, the players it sees, its tier."""

    npc_id: str
    position: Point
    players: tuple[Point, ...] = ()
    tier: Tier = Tier.FULL


@dataclass(frozen=True)
class Decision:
    """What an NPC does next: its action, the point it heads for (its own when it stays),
    and the path query behind it, if any (status and cells searched)."""

    action: str
    target: Point
    path: PathStatus | None = None
    searched: int = 0

    def wire(self) -> list[object]:
        """The task result form: ``[action, x, y]``."""
        return [self.action, round(self.target[0], 3), round(self.target[1], 3)]


class Brain(Protocol):
    """Decides NPCs; a game's own AI implements this to replace the default."""

    def decide(self, npc: Npc) -> Decision:
        """What `npc` does next."""


@dataclass
class Memory:
    """What the default brain keeps of one NPC between decisions."""

    home: Point
    corner: int = 0
    route: Route | None = None


@dataclass
class _Context:
    """The NPC a tree is deciding now, shared by the tree's behaviours."""

    nav: NavGrid
    npc: Npc = field(default_factory=lambda: Npc("", (0.0, 0.0)))
    memory: Memory = field(default_factory=lambda: Memory((0.0, 0.0)))
    decision: Decision | None = None

    def nearest_player(self) -> tuple[float, Point] | None:
        return min(((math.dist(self.npc.position, p), p) for p in self.npc.players),
                   default=None)


class TreeBrain:
    """The default brain (see the module), safe to share between threads: each thread
    ticks a tree of its own, and the NPCs' memories are shared."""

    def __init__(self, nav: NavGrid, memory_max: int = MEMORY_MAX) -> None:
        self.nav = nav
        self.memory_max = memory_max
        self._memories: OrderedDict[str, Memory] = OrderedDict()
        self._lock = threading.Lock()
        self._local = threading.local()

    def decide(self, npc: Npc) -> Decision:
        """What `npc` does next."""
        tree, ctx = self._tree()
        ctx.npc, ctx.memory, ctx.decision = npc, self._remember(npc), None
        tree.tick_once()
        return ctx.decision or Decision("hold", npc.position)

    def remembered(self) -> int:
        """How many NPCs this brain remembers."""
        return len(self._memories)

    def _remember(self, npc: Npc) -> Memory:
        with self._lock:
            memory = self._memories.pop(npc.npc_id, None) or Memory(npc.position)
            self._memories[npc.npc_id] = memory
            while len(self._memories) > self.memory_max:
                self._memories.popitem(last=False)
            return memory

    def _tree(self) -> tuple[py_trees.behaviour.Behaviour, _Context]:
        kept: tuple[py_trees.behaviour.Behaviour, _Context] | None = getattr(
            self._local, "tree", None)
        if kept is None:
            ctx = _Context(self.nav)
            kept = self._local.tree = (npc_tree(ctx), ctx)
        return kept


def npc_tree(ctx: _Context) -> py_trees.behaviour.Behaviour:
    """The default behaviour tree, deciding the NPC in `ctx` (see the module): a selector
    of three guarded behaviours, each failing when its guard does not hold (a guard as a
    node of its own, under a sequence, ticked three more nodes per decision: a third of
    a minimal decision's time, docs/measurements.md)."""
    def player_within(reach: float) -> Callable[[], Point | None]:
        def nearest() -> Point | None:
            near = ctx.nearest_player()
            return near[1] if near is not None and near[0] <= reach else None
        return nearest

    return py_trees.composites.Selector("npc", memory=False, children=[
        _Attack(ctx, player_within(ATTACK_RANGE)),
        _MoveTo("chase", ctx, player_within(AGGRO_RANGE)),
        _MoveTo("patrol", ctx, lambda: _patrol_goal(ctx)),
    ])


class _Attack(py_trees.behaviour.Behaviour):
    """Attack the player `target()` gives; fails when there is none."""

    def __init__(self, ctx: _Context, target: Callable[[], Point | None]) -> None:
        super().__init__("attack")
        self.ctx, self.target = ctx, target

    def update(self) -> Status:
        player = self.target()
        if player is None:
            return Status.FAILURE
        self.ctx.decision = Decision("attack", player)
        return Status.SUCCESS


class _MoveTo(py_trees.behaviour.Behaviour):
    """Head for the goal `goal()` gives, by the NPC's tier; fails when there is no goal or
    no way toward it."""

    def __init__(self, action: str, ctx: _Context, goal: Callable[[], Point | None]) -> None:
        super().__init__(action)
        self.action, self.ctx, self.goal = action, ctx, goal

    def update(self) -> Status:
        goal = self.goal()
        if goal is None:
            return Status.FAILURE
        decision = head_for(self.ctx.nav, self.ctx.npc, self.ctx.memory, goal, self.action)
        if decision is None:
            return Status.FAILURE
        self.ctx.decision = decision
        return Status.SUCCESS


def head_for(nav: NavGrid, npc: Npc, memory: Memory, goal: Point,
             action: str) -> Decision | None:
    """Where `npc` heads toward `goal` at its tier: the next cell of a path searched now
    (full), of its kept route while that holds and still leads to the goal's cell
    (reduced), or the way steering gives (minimal); None when no way leads on."""
    if npc.tier is Tier.MINIMAL:
        return Decision(action, steer(nav, npc.position, goal))
    route = memory.route
    if npc.tier is Tier.REDUCED and route is not None and route.goal == nav.cell_of(goal):
        ahead = route.next_point(nav, npc.position) if route.holds(nav) else None
        if ahead is not None:
            return Decision(action, ahead, route.status)
    path = find_path(nav, npc.position, goal)
    memory.route = Route.of(nav, path, goal)
    return _along(nav, npc, path, goal, action)


def _along(nav: NavGrid, npc: Npc, path: Path, goal: Point, action: str) -> Decision | None:
    if not path.cells:
        return None
    if path.status is PathStatus.ARRIVED:
        return Decision(action, goal, path.status, path.searched)
    step = path.cells[1] if len(path.cells) > 1 else path.cells[0]
    return Decision(action, nav.centre(step), path.status, path.searched)


def _patrol_goal(ctx: _Context) -> Point:
    """The corner of the NPC's patrol square it walks to, the next once it is there."""
    memory, nav = ctx.memory, ctx.nav
    corners = _corners(memory.home, nav.size)
    if nav.cell_of(ctx.npc.position) == nav.cell_of(corners[memory.corner]):
        memory.corner = (memory.corner + 1) % len(corners)
        memory.route = None
    return corners[memory.corner]


def _corners(home: Point, size: float) -> Sequence[Point]:
    r = PATROL_RADIUS

    def inside(v: float) -> float:
        return min(max(v, 0.0), size)

    return [(inside(home[0] + dx), inside(home[1] + dy))
            for dx, dy in ((r, 0.0), (r, r), (0.0, r), (0.0, 0.0))]
