"""Physics service: step a region's pymunk space by one frame, or every region of a frame.

Each worker process keeps the spaces of the regions it has stepped, so a region's bodies
persist between frames on the unit that owns it.  A frame of many regions is one task: what
a Celery task costs a worker however little it does (delivery, claim, acknowledgement)
outweighs stepping a region of a few dozen bodies (docs/measurements.md).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Iterable
from dataclasses import dataclass

import pymunk

_SPACES: dict[str, pymunk.Space] = {}
_LOCK = threading.Lock()  # pymunk spaces are not thread-safe; thread pools share them
REGION_SIZE = 1000.0


@dataclass(frozen=True)
class StepResult:
    """What one step did."""

    region: str
    frame: int
    bodies: int


def step_region(region: str, frame: int, dt_ms: float, bodies: int) -> StepResult:
    """Advance `region` by `dt_ms`, topping its space up to `bodies` dynamic bodies.

    Idempotent per frame only in effect: stepping a frame twice advances the space twice.
    """
    with _LOCK:
        space = _SPACES.get(region) or _new_space(region)
        _SPACES[region] = space
        _top_up(space, region, bodies)
        space.step(dt_ms / 1000.0)
        return StepResult(region=region, frame=frame, bodies=len(space.bodies))


def step_regions(regions: Iterable[tuple[str, int]], frame: int,
                 dt_ms: float) -> list[StepResult]:
    """Advance each ``(region, bodies)`` by `dt_ms` in turn, as `step_region`."""
    return [step_region(region, frame, dt_ms, bodies) for region, bodies in regions]


def _new_space(region: str) -> pymunk.Space:
    space = pymunk.Space()
    space.gravity = (0.0, -900.0)
    floor = pymunk.Segment(space.static_body, (0.0, 0.0), (REGION_SIZE, 0.0), 5.0)
    floor.friction = 0.8
    space.add(floor)
    return space


def _top_up(space: pymunk.Space, region: str, bodies: int) -> None:
    rng = random.Random(f"{region}:{len(space.bodies)}")
    for _ in range(max(0, bodies - len(space.bodies))):
        body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, 10.0))
        body.position = (rng.uniform(20.0, REGION_SIZE - 20.0), rng.uniform(20.0, 400.0))
        shape = pymunk.Circle(body, 10.0)
        shape.friction = 0.5
        space.add(body, shape)
