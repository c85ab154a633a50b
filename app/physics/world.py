"""The world the regions' spaces live in, and what passes between neighbouring regions.

A region named in the quadtree (``w``, ``w0``, ``w31``: `app.physics.partition`) is a
rectangle of the world, and its space holds the bodies whose centres lie in it, in world
coordinates, with the world's walls along the edges it shares with the world.  The world is
seen from above (no gravity unless a scenario sets one) and walled on all four sides.  Any
other name is an instance (an arena, a dungeon): a world of its own, `ARENA_SIZE` square,
walled, with no neighbours.

Two things cross a border between frames:

- **a body whose centre has left its region** (an emigrant) goes to the region holding it
  now, with its whole state (`app.physics.handover.take_body`);
- **a region's halo**: the bodies within `World.halo` of its border, as rows of their
  state.  A region steps with a dynamic copy (a ghost) of each of its neighbours' halo
  bodies near it and drops them after the step.  A contact across a border is thus solved
  on both sides, each side keeping its own body's result, so two bodies meeting at a
  border push each other as they would in one space.  An emigrant is in its old region's
  halo too, marked with the region it is bound for: for one frame it is a body there and a
  ghost everywhere else near it (its old region included), never missing and never twice.
  The halo covers a contact when it is at least two of the largest radius (`MAX_RADIUS`)
  plus how far a body moves in a frame: 64 world units leave 16 a frame, 960 units a
  second at 60 Hz.  Ghosts are balls, the shape every body of the fleet and of a scenario
  has.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from itertools import chain
from operator import itemgetter

import numpy as np
import pymunk

from app.physics.bulk import States, bodies_by_id, states
from app.physics.partition import (
    ROOT,
    Bounds,
    is_region_name,
    locate,
    region_bounds,
    touching,
)

ARENA_SIZE = 1000.0
HALO = 64.0
MAX_RADIUS = 24.0
MAX_DEPTH = 16  # the deepest region name taken as a place in the world
GhostRow = list[float | str]  # id, x, y, vx, vy, angle, spin, mass, moment, radius,
# friction, elasticity, and the region it is bound for ("" if it stays)
BOUND_FOR = 12
Ghost = tuple[pymunk.Body, pymunk.Circle]


@dataclass(frozen=True)
class World:
    """The world's size, its gravity, the halo regions show each other, its walls, how
    fast bodies slow down (a world seen from above has ground friction: a crate pushed
    slides to a stop), and when a body at rest sleeps (a body asleep costs a step little:
    the world's resting bodies are most of it)."""

    size: float = 10_000.0  # GAMESCHED_WORLD_SIZE's default
    gravity: tuple[float, float] = (0.0, 0.0)
    halo: float = HALO
    wall_radius: float = 2.0
    wall_elasticity: float = 0.5
    wall_friction: float = 0.5
    sleep_after_s: float = 0.5  # a body at rest this long sleeps until touched (inf: never)
    damping: float = 0.5  # the share of its speed a body keeps after a second (ground friction)
    idle_speed: float = 5.0  # slower than this, a body is at rest (without gravity pymunk
    # would take only a speed of exactly zero)

    def bounds(self, region: str) -> Bounds:
        """Where `region` lies: its rectangle of the world, or its arena's whole square."""
        if in_world(region):
            return region_bounds(region, self.size)
        return Bounds(0.0, 0.0, ARENA_SIZE, ARENA_SIZE)

    def edges(self, region: str) -> Bounds:
        """The whole world `region` is part of: the world, or its arena."""
        side = self.size if in_world(region) else ARENA_SIZE
        return Bounds(0.0, 0.0, side, side)

    def new_space(self, region: str) -> pymunk.Space:
        """An empty space for `region`: the world's gravity, and a wall along each edge it
        shares with its world."""
        space = pymunk.Space()
        space.gravity = self.gravity
        space.sleep_time_threshold = self.sleep_after_s
        space.damping = self.damping
        space.idle_speed_threshold = self.idle_speed
        mine, edges = self.bounds(region), self.edges(region)
        x0, y0, x1, y1, top, right = mine.x0, mine.y0, mine.x1, mine.y1, edges.y1, edges.x1
        sides = [((x0, 0.0), (x1, 0.0), y0 == 0.0), ((x0, top), (x1, top), y1 == top),
                 ((0.0, y0), (0.0, y1), x0 == 0.0), ((right, y0), (right, y1), x1 == right)]
        for a, b, walled in sides:
            if walled:
                wall = pymunk.Segment(space.static_body, a, b, self.wall_radius)
                wall.elasticity, wall.friction = self.wall_elasticity, self.wall_friction
                space.add(wall)
        return space


@lru_cache(maxsize=8192)
def in_world(region: str) -> bool:
    """Whether `region` names a place in the world (else it is an arena of its own)."""
    return is_region_name(region, MAX_DEPTH)


def holds(bounds: Bounds, edges: Bounds, x: float, y: float) -> bool:
    """Whether ``(x, y)`` lies in `bounds`, half-open but closed on the far `edges`."""
    return ((bounds.x0 <= x < bounds.x1 or x == bounds.x1 == edges.x1)
            and (bounds.y0 <= y < bounds.y1 or y == bounds.y1 == edges.y1))


@dataclass(frozen=True)
class Leaves:
    """The regions a unit knows of, as a partition of the world: which holds a position,
    and which touch a region."""

    names: frozenset[str]
    world: World
    _near: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False, compare=False)

    @cached_property
    def _prefixes(self) -> frozenset[str]:
        return frozenset(n[:k] for n in self.names if in_world(n) for k in range(1, len(n)))

    def find(self, x: float, y: float) -> str | None:
        """The known region holding ``(x, y)``, None if none does (or it is off the world)."""
        edges = self.world.edges(ROOT)
        if not holds(edges, edges, x, y):
            return None
        return locate(x, y, self.world.size, self.names, self._prefixes)

    def resolve(self, name: str) -> tuple[str, ...]:
        """The known regions `name` stands for (`resolve`)."""
        return resolve(name, self.names)

    def neighbours(self, region: str) -> tuple[str, ...]:
        """The known regions of the world touching the known `region`, in name order (none
        for an arena)."""
        near = self._near.get(region)
        if near is None:
            touch = touching(self._ordered, MAX_DEPTH).get(region, frozenset())
            near = self._near[region] = tuple(sorted(touch))
        return near

    @cached_property
    def _ordered(self) -> tuple[str, ...]:
        return tuple(sorted(self.names))


def resolve(name: str, names: AbstractSet[str]) -> tuple[str, ...]:
    """The regions of `names` that `name` stands for: itself if among them, else those
    inside it (it was split), else the one it lies in (it was merged), else itself (nobody
    knows it yet, or it is an arena)."""
    if name in names or not in_world(name):
        return (name,)
    inside = tuple(sorted(n for n in names if n.startswith(name)))
    if inside:
        return inside
    around = next((name[:k] for k in range(len(name) - 1, 0, -1) if name[:k] in names), None)
    return (around,) if around is not None else (name,)


@dataclass
class Crossings:
    """What a region's step leaves at its border: its halo and its emigrants (each with the
    region it goes to)."""

    halo: list[GhostRow] = field(default_factory=list)
    emigrants: list[tuple[str, pymunk.Body]] = field(default_factory=list)


def crossings(space: pymunk.Space, region: str, leaves: Leaves,
              seen: States | None = None) -> Crossings:
    """The bodies of `space` near `region`'s border (its halo) and those that have left it
    for another known region (its emigrants; a body off every known region stays), in
    order of position, so the order does not depend on pymunk's.  The bodies' state is
    read at once (`app.physics.bulk`; `seen`, when the caller has just read it); only those
    near the border are looked at further."""
    world = leaves.world
    if not in_world(region):
        return Crossings()
    mine, edges, halo = world.bounds(region), world.edges(region), world.halo
    seen = states(space) if seen is None else seen
    x, y = seen.x, seen.y
    inner = ((x > mine.x0 + halo) & (x < mine.x1 - halo)
             & (y > mine.y0 + halo) & (y < mine.y1 - halo))
    near = np.flatnonzero(~inner)
    near = near[np.lexsort((y[near], x[near]))]
    found = Crossings()
    for body, state in zip(bodies_by_id(space, seen.ids[near]), seen.rows[near].tolist(),
                           strict=True):
        if body is None:  # static or kinematic: not handed over, not a ghost
            continue
        bound_for = ""
        if not holds(mine, edges, state[0], state[1]):
            target = leaves.find(state[0], state[1])
            if target is not None and target != region:
                found.emigrants.append((target, body))
                bound_for = target
        found.halo.append(_row(body, state, bound_for))
    return found


def ghost_row(body: pymunk.Body, bound_for: str = "") -> GhostRow:
    """`body`'s state as a halo row (a ball: its first shape's radius and material)."""
    x, y = body.position
    vx, vy = body.velocity
    return _row(body, [x, y, body.angle, vx, vy, body.angular_velocity], bound_for)


def _row(body: pymunk.Body, state: list[float], bound_for: str) -> GhostRow:
    """The halo row of `body` in `state` (``x, y, angle, vx, vy, spin``).  What a body is
    made of never changes: it is read once and kept on it (``gs_material``)."""
    x, y, angle, vx, vy, spin = state
    material = body.__dict__.get("gs_material") or _material(body)
    return [material[0], x, y, vx, vy, angle, spin, *material[1:], bound_for]


def _material(body: pymunk.Body) -> tuple[str, float, float, float, float, float]:
    """`body`'s id and what it is made of (mass, moment, radius, friction, elasticity),
    kept on it (``gs_material``)."""
    shape = next(iter(body.shapes))
    radius = shape.radius if isinstance(shape, pymunk.Circle) else 0.0
    material = (str(getattr(body, "gs_id", "")), body.mass, body.moment, radius,
                shape.friction, shape.elasticity)
    body.__dict__["gs_material"] = material
    return material


def ghosts_near(region: str, bounds: Bounds, rows: Iterable[GhostRow],
                reach: float) -> list[GhostRow]:
    """The rows of `rows` within `reach` of `bounds`, but those bound for `region` (it
    holds them now)."""
    x0, y0, x1, y1 = bounds.x0 - reach, bounds.y0 - reach, bounds.x1 + reach, bounds.y1 + reach
    return [row for row in rows if row[BOUND_FOR] != region
            and x0 <= float(row[1]) <= x1 and y0 <= float(row[2]) <= y1]


_REACH_COLUMNS = itemgetter(1, 2, 3, 4, 9)  # a halo row's x, y, vx, vy and radius
REACH_PAIRS_MAX = 250_000  # ghosts times bodies: above this every ghost is added


def reachable(space: pymunk.Space, rows: Sequence[GhostRow], dt: float,
              bounds: Bounds) -> list[GhostRow]:
    """The rows of `rows` whose ghost a body of `space` (the region at `bounds`) could
    touch within `dt`: their centres closer than the ghost's radius, the largest radius
    and both their travels at their speeds now.  A ghost no body can reach changes nothing
    in the step but what it would do to another ghost, and adding it costs about 20
    microseconds.  Only the bodies near the border are measured against the ghosts."""
    if not rows:
        return []
    seen = states(space)
    if not len(seen.ids):
        return []
    ghosts = np.fromiter(chain.from_iterable(map(_REACH_COLUMNS, rows)), np.float64,
                         count=5 * len(rows)).reshape(-1, 5)  # x, y, vx, vy, radius
    travel = np.hypot(seen.vx, seen.vy) * dt
    reach = ghosts[:, 4] + MAX_RADIUS + np.hypot(ghosts[:, 2], ghosts[:, 3]) * dt
    margin = float(reach.max()) + float(travel.max())  # ghosts lie outside: farther inside,
    # a body reaches none of them
    x, y = seen.x, seen.y
    edge = ~((x > bounds.x0 + margin) & (x < bounds.x1 - margin)
             & (y > bounds.y0 + margin) & (y < bounds.y1 - margin))
    if not edge.any():
        return []
    if int(edge.sum()) * len(rows) > REACH_PAIRS_MAX:
        return list(rows)
    gap = np.hypot(x[edge][None, :] - ghosts[:, 0:1], y[edge][None, :] - ghosts[:, 1:2])
    near = (gap - travel[edge][None, :]).min(axis=1) <= reach
    return [row for row, keep in zip(rows, near.tolist(), strict=True) if keep]


class GhostPool:
    """A region's ghost bodies, kept from one step to the next, so a step sets a ghost's
    state rather than building it (building a pymunk body and its shape took about 60 %
    of a partitioned replay).  One pool per region: a ghost keeps the bias velocity of
    its last contact (pymunk holds it out of reach), so a region's ghosts must depend on
    that region's history alone for a replay to end the same on any number of units."""

    def __init__(self) -> None:
        self._free: list[Ghost] = []
        self._material: dict[int, tuple[float | str, ...]] = {}  # a ghost's body -> as set

    def add(self, space: pymunk.Space, rows: Sequence[GhostRow]) -> list[Ghost]:
        """Add a dynamic copy of each row's body to `space`; returns them, for `drop`."""
        added = []
        for row in rows:
            _, x, y, vx, vy, angle, spin, mass, moment, radius, friction, elasticity, _ = row
            body, shape = self._free.pop() if self._free else _new_ghost()
            material = (mass, moment, radius, friction, elasticity)
            if self._material.get(id(body)) != material:  # (setting each costs a pymunk call)
                body.mass, body.moment = float(mass), float(moment)
                shape.unsafe_set_radius(float(radius))
                shape.friction, shape.elasticity = float(friction), float(elasticity)
                self._material[id(body)] = material
            body.position, body.velocity = (float(x), float(y)), (float(vx), float(vy))
            body.angle, body.angular_velocity = float(angle), float(spin)
            space.add(body, shape)
            added.append((body, shape))
        return added

    def drop(self, space: pymunk.Space, ghosts: Sequence[Ghost]) -> None:
        """Remove the ghosts `add` added to `space`, keeping them for the next step."""
        for body, shape in ghosts:
            space.remove(body, shape)
        self._free.extend(ghosts)


def _new_ghost() -> Ghost:
    body = pymunk.Body(1.0, 1.0)
    return body, pymunk.Circle(body, 1.0)
