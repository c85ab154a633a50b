"""A region's pymunk space: how the caller's count of filler bodies keeps it loaded, and
how one frame steps it with its neighbours' ghosts and its anomalies contained.

A space lives in world coordinates (`app.physics.world`).  A space counts its own steps
(``gs_steps``), and the count travels with it when the region moves to another unit, so a
region's history is one sequence wherever it runs.
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import pymunk

from app.physics.anomalies import ESCAPED, NON_FINITE, Anomaly, Found, Limits, step_contained
from app.physics.bulk import States
from app.physics.world import GhostPool, GhostRow, World

FILLER_RADIUS = 10.0
REMOVED = (NON_FINITE, ESCAPED)  # anomalies whose body is taken out
FILLER_SPEED = 50.0  # a filler body starts moving at up to this, in a direction of its own


@dataclass(frozen=True)
class StepResult:
    """What one step of one region did: its bodies after it, the steps its space has
    taken in all (on every unit it ran on), how long it took, what had to be contained."""

    region: str
    frame: int
    bodies: int
    steps: int = 0
    step_ms: float = 0.0  # wall time
    anomalies: tuple[Anomaly, ...] = ()
    cost_ms: float = 0.0  # a typical step of the region lately (set by its unit)
    cpu_ms: float = 0.0  # the step's CPU time: what it cost, however busy the machine
    rested: bool = False  # nothing moved or could have: the step was skipped (`at_rest`)
    # The bodies' state read after the step, while it still holds (`anomalies.Found`):
    # for the step's caller, not for the record.
    seen: States | None = field(default=None, compare=False, repr=False)


def new_space(region: str, world: World) -> pymunk.Space:
    """`region`'s empty space in `world`, counting its steps from 0."""
    space = world.new_space(region)
    space.gs_steps = 0  # type: ignore[attr-defined]  # travels with the pickled space
    return space


def step_space(space: pymunk.Space, region: str, *, frame: int, dt_ms: float,
               bodies: int, limits: Limits, world: World,
               ghosts: Sequence[GhostRow] = (), pool: GhostPool | None = None) -> StepResult:
    """Bring `space`'s filler bodies to `bodies` (`fill`), then advance it by `dt_ms` with
    `ghosts` of its neighbours' bodies and its anomalies contained
    (`app.physics.anomalies`).  Stepping a frame twice advances the space twice: a frame's
    task is not retried.

    A space at rest (`at_rest`) is not stepped: its step would change nothing, and most of
    a world is at rest most of the time."""
    fill(space, region, bodies, world)
    started, cpu_started = time.perf_counter(), time.thread_time()
    rested = at_rest(space, ghosts)
    found = Found() if rested else step_contained(space, dt_ms / 1000.0, region,
                                             world.edges(region), limits, ghosts, pool,
                                             bounds=world.bounds(region))
    if any(a.kind in REMOVED for a in found):
        forget_fillers(space)
    if not rested:
        _note_rest(space, ghosts)
    took_ms = (time.perf_counter() - started) * 1000.0
    cpu_ms = (time.thread_time() - cpu_started) * 1000.0
    steps = getattr(space, "gs_steps", 0) + 1
    space.gs_steps = steps  # type: ignore[attr-defined]
    return StepResult(region, frame, len(space.bodies), steps, took_ms, tuple(found),
                      cpu_ms=cpu_ms, rested=rested, seen=found.seen)


def at_rest(space: pymunk.Space, ghosts: Sequence[GhostRow]) -> bool:
    """Whether a step of `space` with `ghosts` would change nothing: after its last step
    every body slept, and now the same number of bodies is there, every one asleep (a
    body added since is awake; one removed changes the count), with the same ghosts as
    then (which woke nothing then, so they wake nothing now).  A sleeping body is not
    moved by a step, so skipping it is exact."""
    rest: tuple[int, list[GhostRow]] | None = getattr(space, "gs_rest", None)
    if rest is None:
        return False
    bodies = space.bodies
    return (len(bodies) == rest[0] and list(ghosts) == rest[1]
            and all(body.is_sleeping for body in bodies))


def _note_rest(space: pymunk.Space, ghosts: Sequence[GhostRow]) -> None:
    """After a step: note whether every body of `space` sleeps, and with which ghosts."""
    bodies = space.bodies
    asleep = all(body.is_sleeping for body in bodies)
    space.gs_rest = (len(bodies), list(ghosts)) if asleep else None  # type: ignore[attr-defined]


def fill(space: pymunk.Space, region: str, bodies: int, world: World) -> None:
    """Add filler bodies (unnamed balls: the load a caller asks for by count) until
    `space` has at least `bodies` of them.  None is removed to meet a lower count: a
    region's count changes with which of the names it stands for are due in a frame
    (`app.physics.reshape`), and bodies that crossed in stay.  New fillers go at places and
    speeds seeded by the region and the count, so the same region fills the same way in
    every process."""
    have = fillers(space)
    bounds, margin = world.bounds(region), 2 * FILLER_RADIUS
    for count in range(len(have), bodies):
        rng = random.Random(f"{region}:{count}")
        heading, speed = rng.uniform(0.0, 2 * math.pi), rng.uniform(0.0, FILLER_SPEED)
        body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, FILLER_RADIUS))
        body.position = (rng.uniform(bounds.x0 + margin, bounds.x1 - margin),
                         rng.uniform(bounds.y0 + margin, bounds.y1 - margin))
        body.velocity = (speed * math.cos(heading), speed * math.sin(heading))
        shape = pymunk.Circle(body, FILLER_RADIUS)
        shape.friction, shape.elasticity = 0.5, 0.5
        space.add(body, shape)
        have.append(body)


def fillers(space: pymunk.Space) -> list[pymunk.Body]:
    """The filler bodies of `space`, oldest first: a list the space keeps (``gs_fillers``,
    travelling with it), so a frame does not look at every body to count them.  A filler
    that crossed a border leaves it by `release`, one removed as an anomaly once
    `forget_fillers` says so; one that arrives is added by `adopt`."""
    kept: list[pymunk.Body] | None = getattr(space, "gs_fillers", None)
    if kept is None or getattr(space, "gs_fillers_stale", False):
        kept = [b for b in space.bodies
                if b.body_type == pymunk.Body.DYNAMIC and getattr(b, "gs_id", None) is None]
        space.gs_fillers, space.gs_fillers_stale = kept, False  # type: ignore[attr-defined]
    return kept


def forget_fillers(space: pymunk.Space) -> None:
    """Bodies left `space` (crossed a border, or removed as anomalies): its filler list is
    counted again when next asked for."""
    space.gs_fillers_stale = True  # type: ignore[attr-defined]


def release(space: pymunk.Space, bodies: Sequence[pymunk.Body]) -> None:
    """`bodies` have left `space` (crossed a border): the fillers among them leave its
    filler list (without counting every body again)."""
    gone = {id(body) for body in bodies if getattr(body, "gs_id", None) is None}
    if gone:
        kept = fillers(space)
        kept[:] = [body for body in kept if id(body) not in gone]


def adopt(space: pymunk.Space, body: pymunk.Body) -> None:
    """Count `body`, just added to `space`, among its fillers if it is one."""
    kept = fillers(space)  # (which may have just counted it, if the list was new)
    if getattr(body, "gs_id", None) is None and body not in kept:
        kept.append(body)


@dataclass(frozen=True)
class BodySpawn:
    """A ball to add to a region's space, in world coordinates."""

    body_id: str
    position: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    radius: float = 10.0
    mass: float = 1.0
    friction: float = 0.5
    elasticity: float = 0.5


def spawn(space: pymunk.Space, spec: BodySpawn) -> pymunk.Body:
    """Add the ball `spec` describes to `space`, named by its id (``gs_id``, which travels
    with it)."""
    body = pymunk.Body(spec.mass, pymunk.moment_for_circle(spec.mass, 0.0, spec.radius))
    body.position, body.velocity = spec.position, spec.velocity
    body.gs_id = spec.body_id
    shape = pymunk.Circle(body, spec.radius)
    shape.friction, shape.elasticity = spec.friction, spec.elasticity
    space.add(body, shape)
    return body


def remove(space: pymunk.Space, body_ids: set[str]) -> set[str]:
    """Remove the bodies of `space` named in `body_ids`; returns the names removed."""
    removed = set()
    for body in list(space.bodies):
        name = getattr(body, "gs_id", None)
        if name in body_ids:
            space.remove(body, *body.shapes)
            removed.add(name)
    return removed


def named(space: pymunk.Space) -> set[str]:
    """The names of the bodies of `space` that have one."""
    return {b.gs_id for b in space.bodies if getattr(b, "gs_id", None) is not None}
