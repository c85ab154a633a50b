"""Hand-over: a body keeps every part of its state, a region's space its whole future."""

from __future__ import annotations

import pickle

import pymunk
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.handover import move_body, pack_space, put_body, take_body, unpack_space

finite = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
positive = st.floats(min_value=0.01, max_value=100.0)
material = st.floats(min_value=0.0, max_value=1.0)
DT = 1 / 60


def _space() -> pymunk.Space:
    space = pymunk.Space()
    space.gravity = (0.0, -900.0)
    floor = pymunk.Segment(space.static_body, (-1e5, -1e4), (1e5, -1e4), 5.0)
    space.add(floor)
    return space


def _body(space: pymunk.Space, state: tuple[float, ...]) -> pymunk.Body:
    x, y, vx, vy, angle, spin, mass, radius, friction, bounce = state
    body = pymunk.Body(mass, pymunk.moment_for_circle(mass, 0.0, radius))
    body.position, body.velocity, body.angle, body.angular_velocity = (x, y), (vx, vy), angle, spin
    body.gs_id = f"b{len(space.bodies)}"
    shape = pymunk.Circle(body, radius)
    shape.friction, shape.elasticity = friction, bounce
    space.add(body, shape)
    return body


def _state(body: pymunk.Body) -> tuple[object, ...]:
    shapes = sorted((s.radius, s.friction, s.elasticity) for s in body.shapes)
    return (tuple(body.position), tuple(body.velocity), body.angle, body.angular_velocity,
            body.mass, body.moment, body.gs_id, shapes)


states = st.tuples(finite, finite, finite, finite, finite, finite, positive, positive,
                   material, material)


@settings(max_examples=100, deadline=None)
@given(states, st.integers(0, 20))
def test_a_body_handed_to_another_units_space_keeps_its_whole_state(
        state: tuple[float, ...], steps: int) -> None:
    source, target = _space(), _space()
    body = _body(source, state)
    for _ in range(steps):
        source.step(DT)
    before = _state(body)
    arrived = put_body(take_body(body, source), target)
    assert _state(arrived) == before
    assert (len(source.bodies), len(target.bodies), arrived.space) == (0, 1, target)


@settings(max_examples=50, deadline=None)
@given(st.lists(states, min_size=1, max_size=12), st.integers(0, 30))
def test_a_region_packed_for_another_unit_arrives_with_every_body_as_it_was(
        bodies: list[tuple[float, ...]], before: int) -> None:
    space = _space()
    for state in bodies:
        _body(space, state)
    for _ in range(before):
        space.step(DT)
    moved = unpack_space(pack_space(space))
    assert sorted(map(_state, moved.bodies)) == sorted(map(_state, space.bodies))
    assert (moved.gravity, moved.damping, len(moved.shapes)) == (
        space.gravity, space.damping, len(space.shapes))


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=8), st.integers(1, 60))
def test_a_region_without_contacts_steps_on_exactly_as_the_original(
        velocities: list[tuple[float, float]], after: int) -> None:
    space = _space()
    for k, (vx, vy) in enumerate(velocities):  # a column of bodies far apart, falling
        _body(space, (k * 1000.0, 0.0, vx, vy, 0.0, 0.0, 1.0, 1.0, 0.5, 0.0))
    moved = unpack_space(pack_space(space))
    for each in (space, moved):
        for _ in range(after):
            each.step(DT)
    assert sorted(map(_state, moved.bodies)) == sorted(map(_state, space.bodies))


def test_a_pile_moved_mid_rest_stays_within_the_stated_tolerance() -> None:
    # The contact solver's cached impulses do not travel (pymunk does not pickle them), so
    # bodies resting on each other may settle a little differently after a move.
    space = _space()
    for k in range(6):
        _body(space, (k * 15.0, -9990.0 + k * 25.0, 0.0, 0.0, 0.0, 0.0, 1.0, 10.0, 0.5, 0.0))
    for _ in range(60):
        space.step(DT)
    moved = unpack_space(pack_space(space))
    for each in (space, moved):
        for _ in range(60):
            each.step(DT)
    here = {b.gs_id: b.position for b in space.bodies}
    drift = max(abs(b.position - here[b.gs_id]) for b in moved.bodies)
    assert drift < 1e-2


def test_a_body_moved_within_a_unit_is_the_same_body() -> None:
    source, target = _space(), _space()
    body = _body(source, (1.0, 2.0, 3.0, 4.0, 0.5, 0.25, 2.0, 5.0, 0.3, 0.1))
    before = _state(body)
    move_body(body, source, target)
    assert body.space is target and _state(body) == before and not source.bodies


def test_a_body_not_in_the_source_space_is_refused_and_nothing_moves() -> None:
    source, elsewhere, target = _space(), _space(), _space()
    body = _body(elsewhere, (1.0, 2.0, 3.0, 4.0, 0.5, 0.25, 2.0, 5.0, 0.3, 0.1))
    for hand_over in (lambda: move_body(body, source, target), lambda: take_body(body, source)):
        with pytest.raises(InvalidRequest) as caught:
            hand_over()
        assert caught.value.field == "body" and caught.value.value == "b0"
    assert body.space is elsewhere and not target.bodies


def test_bytes_that_are_not_a_space_are_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        unpack_space(pickle.dumps([1, 2]))
    assert caught.value.field == "space"
