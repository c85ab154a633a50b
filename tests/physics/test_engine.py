"""A region's space: topped up to the caller's count, stepped with its steps counted, and
walled so a pile stays in it."""

from __future__ import annotations

import pytest

from app.physics.anomalies import Limits
from app.physics.engine import new_space, step_space


@pytest.mark.parametrize("hz", [60, 20])  # a frame of 50 ms steps in three parts
def test_a_crowded_region_piles_up_inside_its_walls_and_counts_its_steps(hz: int) -> None:
    space = new_space()
    anomalies = []
    for frame in range(1, 5 * hz + 1):  # five seconds
        result = step_space(space, "w0", frame=frame, dt_ms=1000 / hz, bodies=200,
                            limits=Limits(step_budget_ms=1e6))
        anomalies += result.anomalies
    assert anomalies == []  # nobody fell off the edge, through the floor, or blew up
    assert (result.bodies, result.steps) == (200, 5 * hz)


def test_a_top_up_adds_only_what_is_missing_and_the_same_way_everywhere() -> None:
    one, two = new_space(), new_space()
    for space in (one, two):
        step_space(space, "w3", frame=1, dt_ms=16.0, bodies=5, limits=Limits())
    again = step_space(one, "w3", frame=2, dt_ms=16.0, bodies=3, limits=Limits())
    assert again.bodies == 5  # bodies are never removed to meet a lower count
    assert sorted(tuple(b.position) for b in two.bodies) == sorted(
        tuple(b.position) for b in _stepped_once("w3"))


def _stepped_once(region: str) -> list[object]:
    space = new_space()
    step_space(space, region, frame=1, dt_ms=16.0, bodies=5, limits=Limits())
    return list(space.bodies)


def test_a_settled_pile_sleeps_and_wakes_when_a_body_lands_on_it() -> None:
    space = new_space()
    for frame in range(1, 721):  # twelve seconds at 60 Hz: every body settles
        step_space(space, "w1", frame=frame, dt_ms=1000 / 60, bodies=30, limits=Limits())
    pile = list(space.bodies)
    assert all(b.is_sleeping for b in pile)
    woken = set()
    for frame in range(721, 781):  # one more body (seeded: it lands on a pile) for a second
        step_space(space, "w1", frame=frame, dt_ms=1000 / 60, bodies=31, limits=Limits())
        woken |= {id(b) for b in pile if not b.is_sleeping}
    assert woken  # the pile it landed on woke up
