"""A region's pymunk space: how it starts, how the caller's body count tops it up, and
how one frame steps it with its anomalies contained.

A space counts its own steps (``gs_steps``), and the count travels with it when the region
moves to another unit, so a region's history is one sequence wherever it runs.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass

import pymunk

from app.physics.anomalies import Anomaly, Limits, step_contained
from app.physics.partition import Bounds

REGION_SIZE = 1000.0
SPACE_BOUNDS = Bounds(0.0, 0.0, REGION_SIZE, REGION_SIZE)  # a space's own frame
SLEEP_AFTER_S = 0.5


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


def new_space() -> pymunk.Space:
    """A region's empty space: gravity, a floor and a wall on either side, so that piled
    bodies stay in it.  Bodies at rest for half a second sleep (pymunk wakes them when
    touched), so a settled pile costs about half of what it costs awake."""
    space = pymunk.Space()
    space.gravity = (0.0, -900.0)
    space.sleep_time_threshold = SLEEP_AFTER_S
    space.gs_steps = 0  # type: ignore[attr-defined]  # travels with the pickled space
    s = REGION_SIZE
    for a, b in (((0.0, 0.0), (s, 0.0)), ((0.0, 0.0), (0.0, s)), ((s, 0.0), (s, s))):
        wall = pymunk.Segment(space.static_body, a, b, 5.0)
        wall.friction = 0.8
        space.add(wall)
    return space


def step_space(space: pymunk.Space, region: str, *, frame: int, dt_ms: float, bodies: int,
               limits: Limits) -> StepResult:
    """Top `space` up to `bodies` dynamic bodies, then advance it by `dt_ms` with its
    anomalies contained (`app.physics.anomalies`).  Stepping a frame twice advances the
    space twice: a frame's task is not retried."""
    top_up(space, region, bodies)
    started, cpu_started = time.perf_counter(), time.thread_time()
    found = step_contained(space, dt_ms / 1000.0, region, SPACE_BOUNDS, limits)
    took_ms = (time.perf_counter() - started) * 1000.0
    cpu_ms = (time.thread_time() - cpu_started) * 1000.0
    steps = getattr(space, "gs_steps", 0) + 1
    space.gs_steps = steps  # type: ignore[attr-defined]
    return StepResult(region, frame, _dynamic(space), steps, took_ms, tuple(found),
                      cpu_ms=cpu_ms)


def top_up(space: pymunk.Space, region: str, bodies: int) -> None:
    """Add dynamic bodies until `space` has `bodies`, at places seeded by the region and
    the count (the same region tops up the same way in every process)."""
    count = _dynamic(space)
    rng = random.Random(f"{region}:{count}")
    for _ in range(max(0, bodies - count)):
        body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, 10.0))
        body.position = (rng.uniform(20.0, REGION_SIZE - 20.0), rng.uniform(20.0, 400.0))
        shape = pymunk.Circle(body, 10.0)
        shape.friction = 0.5
        space.add(body, shape)


@dataclass(frozen=True)
class BodySpawn:
    """A body to add to a region's space, in the space's own coordinates."""

    body_id: str
    position: tuple[float, float]
    velocity: tuple[float, float] = (0.0, 0.0)
    radius: float = 10.0
    mass: float = 1.0


def spawn(space: pymunk.Space, spec: BodySpawn) -> pymunk.Body:
    """Add the ball `spec` describes to `space`, named by its id (``gs_id``, which travels
    with it)."""
    body = pymunk.Body(spec.mass, pymunk.moment_for_circle(spec.mass, 0.0, spec.radius))
    body.position, body.velocity = spec.position, spec.velocity
    body.gs_id = spec.body_id
    shape = pymunk.Circle(body, spec.radius)
    shape.friction = 0.5
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


def _dynamic(space: pymunk.Space) -> int:
    return sum(1 for body in space.bodies if body.body_type == pymunk.Body.DYNAMIC)
