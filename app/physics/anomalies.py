"""Anomalies in a region's space, found after a step and contained so the frame goes on.

Three kinds are found on the bodies, and one on the step:

- ``non_finite``: a position, velocity, angle or spin that is NaN or infinite.  The body
  is removed: nothing useful can be recovered from it.
- ``escaped``: a body beyond the world's edge by more than its margin (tunnelled through a
  wall, or flung out).  The body is removed.
- ``too_fast``: a body faster than `Limits.max_speed`.  Its velocity is clamped to that
  speed, direction kept (a fast projectile that would tunnel next step).
- ``over_budget``: the step itself took longer than `Limits.step_budget_ms` (a pile-up of
  contacts).  Reported here; the director splits such a region, or slows it when it cannot
  split (`app.physics.slowed`).

Each anomaly is logged at warning with its region and returned to the caller, which counts
it.  Static and kinematic bodies are left alone.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pymunk

from app.errors import InvalidRequest
from app.physics.bulk import States, bodies_by_id, states
from app.physics.partition import Bounds
from app.physics.world import GhostPool, GhostRow, reachable

log = logging.getLogger(__name__)
NON_FINITE, ESCAPED, TOO_FAST, OVER_BUDGET = "non_finite", "escaped", "too_fast", "over_budget"


@dataclass(frozen=True)
class Limits:
    """What a region's bodies and steps may do."""

    max_speed: float = 5000.0  # world units per second
    margin: float = 50.0  # how far past the world's edge a body may stray
    step_budget_ms: float = 16.0

    def __post_init__(self) -> None:
        for name in ("max_speed", "margin", "step_budget_ms"):
            value = getattr(self, name)
            if not value > 0 or math.isinf(value):
                raise InvalidRequest(name, value, "expected a positive finite number")


@dataclass(frozen=True)
class Anomaly:
    """One anomaly found and contained."""

    region: str
    kind: str
    body: str | None
    detail: str


MAX_SUBSTEP_S = 1 / 60  # a longer frame steps in equal parts no longer than this


class Found(list[Anomaly]):
    """The anomalies a step found, and its bodies' state read after it (`seen`: None when
    containing them changed a body, so the read no longer holds), for whoever looks at
    the bodies next (what crosses a border) without reading them again."""

    seen: States | None = None


def step_contained(space: pymunk.Space, dt: float, region: str, world: Bounds,  # noqa: PLR0917
                   limits: Limits, ghosts: Sequence[GhostRow] = (),
                   pool: GhostPool | None = None, *,
                   bounds: Bounds | None = None) -> Found:
    """Step `space` by `dt` (in equal substeps of at most `MAX_SUBSTEP_S`: a body slower
    than its radius per substep cannot pass through a wall; a faster one, such as a
    projectile, may, and is then found `escaped` and removed), with
    its neighbours' `ghosts` that a body of the region at `bounds` could reach in it for
    the step (`app.physics.world`; all of them without `bounds`), then find and contain
    its anomalies (see the module)."""
    parts = max(1, math.ceil(dt / MAX_SUBSTEP_S - 1e-9))
    started = time.perf_counter()
    pool = pool or GhostPool()
    added = pool.add(space, ghosts if bounds is None else reachable(space, ghosts, dt, bounds))
    for _ in range(parts):
        space.step(dt / parts)
    pool.drop(space, added)
    took_ms = (time.perf_counter() - started) * 1000.0
    seen = states(space)
    found = Found(contain(space, region, world, limits, seen))
    found.seen = None if found else seen
    if took_ms > limits.step_budget_ms:
        found.append(_report(Anomaly(region, OVER_BUDGET, None,
                                     f"step took {took_ms:.1f} ms of {limits.step_budget_ms:g}")))
    return found


def contain(space: pymunk.Space, region: str, world: Bounds, limits: Limits,
            seen: States | None = None) -> list[Anomaly]:
    """Remove the non-finite and escaped bodies of `space`, clamp the too fast ones.

    Every body of every step passes through here, so the bodies' state is read in one
    call (`app.physics.bulk`; `seen`, when the caller has read it) and tested at once;
    only a body failing the test is looked at closely (by its Python object)."""
    found: list[Anomaly] = []
    seen = states(space) if seen is None else seen
    if not len(seen.ids):
        return found
    m = limits.margin
    with np.errstate(invalid="ignore", over="ignore"):  # NaNs and infinities fail the tests
        fine = (np.isfinite(seen.rows).all(axis=1)
                & (seen.x >= world.x0 - m) & (seen.x <= world.x1 + m)
                & (seen.y >= world.y0 - m) & (seen.y <= world.y1 + m)
                & (seen.vx * seen.vx + seen.vy * seen.vy <= limits.max_speed ** 2))
    if fine.all():
        return found
    for body in bodies_by_id(space, seen.ids[~fine]):
        if body is None:  # static or kinematic: left alone
            continue
        anomaly = _inspect(body, region, world, limits)
        if anomaly is None:
            continue
        if anomaly.kind == TOO_FAST:
            body.velocity = body.velocity.scale_to_length(limits.max_speed)
        else:
            space.remove(body, *body.shapes)
        found.append(_report(anomaly))
    return found


def _inspect(body: pymunk.Body, region: str, world: Bounds, limits: Limits) -> Anomaly | None:
    name = str(getattr(body, "gs_id", id(body)))
    state = (*body.position, *body.velocity, body.angle, body.angular_velocity)
    if not all(math.isfinite(v) for v in state):
        return Anomaly(region, NON_FINITE, name, f"state {state}")
    x, y = body.position
    m = limits.margin
    if not (world.x0 - m <= x <= world.x1 + m and world.y0 - m <= y <= world.y1 + m):
        return Anomaly(region, ESCAPED, name, f"at ({x:.1f}, {y:.1f})")
    speed = body.velocity.length
    if speed > limits.max_speed:
        return Anomaly(region, TOO_FAST, name, f"speed {speed:.1f} clamped to {limits.max_speed:g}")
    return None


def _report(anomaly: Anomaly) -> Anomaly:
    log.warning("physics anomaly in region %s: %s %s: %s", anomaly.region, anomaly.kind,
                anomaly.body or "", anomaly.detail)
    return anomaly
