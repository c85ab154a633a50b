"""A region's space: kept at the caller's count of filler bodies, stepped with its steps
counted, walled where it meets the world's edge, and asleep when nothing moves."""

from __future__ import annotations

import pymunk
import pytest

from app.physics.anomalies import Limits
from app.physics.engine import (
    BodySpawn,
    fill,
    fillers,
    new_space,
    release,
    remove,
    spawn,
    step_space,
)
from app.physics.handover import take_body
from app.physics.world import GhostRow, World

WORLD = World(size=2000.0)


@pytest.mark.parametrize("hz", [60, 20])  # a frame of 50 ms steps in three parts
def test_a_crowded_corner_region_keeps_its_bodies_in_the_world_and_counts_its_steps(
        hz: int) -> None:
    space = new_space("w0", WORLD)  # the south-west quarter: walls on two sides
    anomalies = []
    for frame in range(1, 5 * hz + 1):  # five seconds
        result = step_space(space, "w0", frame=frame, dt_ms=1000 / hz, bodies=200,
                            limits=Limits(step_budget_ms=1e6), world=WORLD)
        anomalies += result.anomalies
    assert anomalies == []  # nothing went through a wall or blew up
    assert (result.bodies, result.steps) == (200, 5 * hz)
    assert all(b.position.x >= 0 and b.position.y >= 0 for b in space.bodies)


def test_fillers_are_topped_up_the_same_way_everywhere_and_named_bodies_stay() -> None:
    one, two = new_space("w3", WORLD), new_space("w3", WORLD)
    spawn(one, BodySpawn("crate", (1500.0, 1500.0)))
    for space in (one, two):
        fill(space, "w3", 5, WORLD)
    fillers = [tuple(b.position) for b in one.bodies if not hasattr(b, "gs_id")]
    assert fillers == [tuple(b.position) for b in two.bodies]  # seeded by region and count
    bounds = WORLD.bounds("w3")
    assert all(bounds.x0 < x < bounds.x1 and bounds.y0 < y < bounds.y1 for x, y in fillers)
    fill(one, "w3", 2, WORLD)
    assert len(one.bodies) == 6  # none removed to meet a lower count
    assert {getattr(b, "gs_id", None) for b in one.bodies} == {"crate", None}


def test_a_body_at_rest_sleeps_and_wakes_when_another_hits_it() -> None:
    space = new_space("arena", WORLD)
    still = spawn(space, BodySpawn("still", (500.0, 500.0)))
    for frame in range(1, 61):  # one second: more than the half second a rest needs
        step_space(space, "arena", frame=frame, dt_ms=1000 / 60, bodies=0, limits=Limits(),
                   world=WORLD)
    assert still.is_sleeping
    spawn(space, BodySpawn("ball", (400.0, 500.0), velocity=(200.0, 0.0)))
    for frame in range(61, 121):
        step_space(space, "arena", frame=frame, dt_ms=1000 / 60, bodies=0, limits=Limits(),
                   world=WORLD)
    assert still.position.x > 500.0  # woken, and pushed east


def _settle(space: pymunk.Space, region: str, frames: range,
            ghosts: list[GhostRow] | None = None) -> list[bool]:
    """Step `space` over `frames` (60 Hz); returns whether each step rested."""
    return [step_space(space, region, frame=frame, dt_ms=1000 / 60, bodies=0, limits=Limits(),
                       world=WORLD, ghosts=ghosts or []).rested for frame in frames]


def test_a_space_at_rest_is_not_stepped_until_something_changes() -> None:
    space = new_space("arena", WORLD)
    crate = spawn(space, BodySpawn("crate", (500.0, 500.0), velocity=(15.0, 0.0)))
    rested = _settle(space, "arena", range(1, 181))  # three seconds
    assert rested[:30] == [False] * 30 and rested[-1]  # moving first, then at rest
    at = tuple(crate.position)
    assert _settle(space, "arena", range(181, 241)) == [True] * 60
    assert tuple(crate.position) == at and space.gs_steps == 240  # counted, not moved
    ball = spawn(space, BodySpawn("ball", (400.0, 500.0), velocity=(300.0, 0.0)))
    assert _settle(space, "arena", range(241, 242)) == [False]  # a new body is awake
    _settle(space, "arena", range(242, 302))
    assert crate.position.x > at[0] and ball.position.x < crate.position.x  # hit, pushed


def test_a_space_at_rest_steps_again_when_a_body_leaves_or_its_ghosts_change() -> None:
    space = new_space("arena", WORLD)
    spawn(space, BodySpawn("a", (500.0, 500.0)))
    spawn(space, BodySpawn("b", (520.0, 500.0)))  # touching a
    ghost: GhostRow = ["g", 900.0, 900.0, 0.0, 0.0, 0.0, 0.0, 1.0, 50.0, 10.0, 0.5, 0.5, ""]
    assert _settle(space, "arena", range(1, 61), [ghost])[-1]
    assert _settle(space, "arena", range(61, 62), [ghost]) == [True]
    moved = [*ghost[:1], 901.0, *ghost[2:]]
    assert _settle(space, "arena", range(62, 63), [moved]) == [False]  # other ghosts
    _settle(space, "arena", range(63, 123), [moved])
    assert remove(space, {"a"}) == {"a"}
    assert _settle(space, "arena", range(123, 124), [moved]) == [False]  # one body fewer


def test_fillers_that_crossed_out_leave_the_count_and_are_topped_up_again() -> None:
    space = new_space("w3", WORLD)
    spawn(space, BodySpawn("crate", (1500.0, 1500.0)))
    fill(space, "w3", 5, WORLD)
    leaving = [b for b in space.bodies if not hasattr(b, "gs_id")][:2]
    crate = next(b for b in space.bodies if hasattr(b, "gs_id"))
    for body in [*leaving, crate]:
        take_body(body, space)
    release(space, [*leaving, crate])
    assert len(fillers(space)) == 3 and all(b.space is space for b in fillers(space))
    fill(space, "w3", 5, WORLD)
    assert len(fillers(space)) == 5 and len(space.bodies) == 5
