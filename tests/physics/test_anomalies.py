"""Anomalies injected on real pymunk spaces are found, contained and reported, and the
region's other bodies step on."""

from __future__ import annotations

import logging

import pymunk
import pytest

from app.errors import InvalidRequest
from app.physics.anomalies import (
    ESCAPED,
    NON_FINITE,
    OVER_BUDGET,
    TOO_FAST,
    Limits,
    contain,
    step_contained,
)
from app.physics.partition import Bounds

WORLD = Bounds(0.0, 0.0, 1000.0, 1000.0)
DT = 1 / 60


def _space() -> pymunk.Space:
    space = pymunk.Space()
    corners = [(0.0, 0.0), (1000.0, 0.0), (1000.0, 1000.0), (0.0, 1000.0)]
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        space.add(pymunk.Segment(space.static_body, a, b, 1.0))
    return space


def _body(space: pymunk.Space, name: str, position: tuple[float, float],
          velocity: tuple[float, float] = (0.0, 0.0)) -> pymunk.Body:
    body = pymunk.Body(1.0, pymunk.moment_for_circle(1.0, 0.0, 2.0))
    body.position, body.velocity, body.gs_id = position, velocity, name
    space.add(body, pymunk.Circle(body, 2.0))
    return body


def test_a_body_gone_non_finite_is_removed_and_the_others_step_on(
        caplog: pytest.LogCaptureFixture) -> None:
    space = _space()
    calm = _body(space, "calm", (100.0, 100.0), (10.0, 0.0))
    bad = _body(space, "bad", (500.0, 500.0))
    bad.velocity = (float("nan"), 0.0)
    with caplog.at_level(logging.WARNING, logger="app.physics.anomalies"):
        found = step_contained(space, DT, "w03", WORLD, Limits())
    assert [(a.region, a.kind, a.body) for a in found] == [("w03", NON_FINITE, "bad")]
    assert list(space.bodies) == [calm] and not set(bad.shapes) & set(space.shapes)
    assert "w03" in caplog.text and NON_FINITE in caplog.text
    before = calm.position
    space.step(DT)
    assert calm.position.x > before.x


def test_an_infinite_position_is_removed_too() -> None:
    space = _space()
    _body(space, "far", (float("inf"), 10.0))
    assert [a.kind for a in contain(space, "w", WORLD, Limits())] == [NON_FINITE]
    assert not space.bodies


def test_a_projectile_past_the_speed_limit_is_clamped_keeping_its_direction() -> None:
    space = _space()
    bullet = _body(space, "bullet", (500.0, 500.0), (3e5, 4e5))
    found = contain(space, "w", WORLD, Limits(max_speed=1000.0))
    assert [(a.kind, a.body) for a in found] == [(TOO_FAST, "bullet")]
    assert bullet.velocity.length == pytest.approx(1000.0)
    assert tuple(bullet.velocity.normalized()) == pytest.approx((0.6, 0.8))
    assert bullet in space.bodies


def test_a_body_that_tunnels_through_a_wall_is_found_out_of_the_world_and_removed() -> None:
    space = _space()
    _body(space, "stays", (500.0, 500.0))
    _body(space, "tunneller", (990.0, 500.0), (6e4, 0.0))  # 1,000 units a frame
    limits = Limits(max_speed=1e6)  # not clamped first: it really crosses the wall
    found = step_contained(space, DT, "w1", WORLD, limits)
    assert [(a.kind, a.body) for a in found] == [(ESCAPED, "tunneller")]
    assert [b.gs_id for b in space.bodies] == ["stays"]


def test_a_step_over_its_budget_is_reported_and_one_within_it_is_not() -> None:
    space = _space()
    for k in range(300):  # a pile-up: every body on the same spot
        _body(space, f"b{k}", (500.0 + k * 1e-3, 500.0))
    slow = step_contained(space, DT, "w2", WORLD, Limits(step_budget_ms=1e-6))
    assert [a.kind for a in slow if a.kind == OVER_BUDGET] == [OVER_BUDGET]
    easy = step_contained(space, DT, "w2", WORLD, Limits(step_budget_ms=1e9))
    assert all(a.kind != OVER_BUDGET for a in easy)


def test_static_and_kinematic_bodies_are_left_alone() -> None:
    space = _space()
    mover = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    mover.position, mover.velocity = (5000.0, 5000.0), (1e9, 0.0)
    space.add(mover, pymunk.Circle(mover, 1.0))
    assert contain(space, "w", WORLD, Limits()) == [] and mover in space.bodies


@pytest.mark.parametrize("field", ["max_speed", "margin", "step_budget_ms"])
@pytest.mark.parametrize("value", [0.0, -1.0, float("inf"), float("nan")])
def test_bad_limits_are_refused_naming_the_field(field: str, value: float) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Limits(**{field: value})
    assert caught.value.field == field
