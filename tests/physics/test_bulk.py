"""Bodies' state read in bulk: every body but the space's own static one, the values the
properties give, and each body found again by its id, also after the space changed."""

from __future__ import annotations

import pickle

import numpy as np
import pymunk

from app.physics.bulk import bodies_by_id, states
from app.physics.engine import BodySpawn, new_space, spawn
from app.physics.world import World

WORLD = World(size=2000.0)


def test_states_are_those_the_bodies_properties_give_for_every_body() -> None:
    space = new_space("w0", WORLD)  # walled on two sides: the static body has shapes
    bodies = [spawn(space, BodySpawn(f"b{i}", (100.0 + i, 200.0 - i), (3.0 * i, -1.0)))
              for i in range(5)]
    bodies[2].angle, bodies[3].angular_velocity = 0.7, -2.5
    seen = states(space)
    assert sorted(seen.ids.tolist()) == sorted(b.id for b in bodies)
    by_id = dict(zip(seen.ids.tolist(), seen.rows.tolist(), strict=True))
    for body in bodies:
        assert by_id[body.id] == [*body.position, body.angle, *body.velocity,
                                  body.angular_velocity]


def test_bodies_are_found_by_id_in_the_order_asked_also_after_the_space_changed() -> None:
    space = new_space("arena", WORLD)
    first = spawn(space, BodySpawn("first", (10.0, 10.0)))
    assert bodies_by_id(space, np.array([first.id], dtype=np.uintp)) == [first]
    later = spawn(space, BodySpawn("later", (20.0, 10.0)))  # not in the map made above
    wanted = np.array([later.id, first.id], dtype=np.uintp)
    assert bodies_by_id(space, wanted) == [later, first]
    copy = pickle.loads(pickle.dumps(space))  # a copy's bodies have ids of their own
    found = [b for b in bodies_by_id(copy, states(copy).ids) if b is not None]
    assert sorted(b.gs_id for b in found) == ["first", "later"]
    assert all(b.space is copy for b in found)


def test_an_id_of_a_body_that_is_not_dynamic_or_not_there_finds_none() -> None:
    space = new_space("arena", WORLD)
    ball = spawn(space, BodySpawn("ball", (10.0, 10.0)))
    lift = pymunk.Body(body_type=pymunk.Body.KINEMATIC)
    space.add(lift, pymunk.Circle(lift, 5.0))
    wanted = np.array([lift.id, ball.id, pymunk.Body().id], dtype=np.uintp)
    assert bodies_by_id(space, wanted) == [None, ball, None]


def test_the_map_of_ids_forgets_bodies_gone_once_it_holds_twice_the_space() -> None:
    space = new_space("arena", WORLD)
    balls = [spawn(space, BodySpawn(f"b{i}", (10.0 + i, 10.0))) for i in range(100)]
    bodies_by_id(space, states(space).ids)  # the map is made: 100 bodies
    for ball in balls[:95]:
        space.remove(ball, *ball.shapes)
    fresh = [spawn(space, BodySpawn(f"c{i}", (50.0 + i, 50.0))) for i in range(10)]
    found = bodies_by_id(space, np.array([b.id for b in fresh], dtype=np.uintp))
    assert found == fresh  # 100 seen, more than twice the 15 there (and 64): made afresh
    assert bodies_by_id(space, np.array([balls[0].id], dtype=np.uintp)) == [None]
