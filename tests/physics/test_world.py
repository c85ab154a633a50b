"""The world regions live in: walls where a region meets the world's edge, which known
region holds a position and which touch a region, and what a step leaves at a border."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.physics.engine import BodySpawn, spawn
from app.physics.partition import Partition
from app.physics.world import (
    BOUND_FOR,
    GhostPool,
    Leaves,
    World,
    crossings,
    ghost_row,
    reachable,
)

WORLD = World(size=2000.0)
LEAVES = Leaves(frozenset({"w0", "w1", "w2", "w30", "w31", "w32", "w33"}), WORLD)
coordinate = st.floats(min_value=0.0, max_value=WORLD.size, allow_nan=False)


@pytest.mark.parametrize(("region", "walls"), [("w", 4), ("arena", 4), ("w0", 2), ("w31", 1),
                                               ("w33", 2), ("w30", 0), ("w03", 0)])
def test_a_region_is_walled_only_where_it_meets_the_worlds_edge(region: str,
                                                                walls: int) -> None:
    assert len(WORLD.new_space(region).shapes) == walls


@settings(max_examples=80, deadline=None)
@given(st.lists(st.sampled_from(["w", "w0", "w3", "w31", "w312", "w2"]), max_size=6),
       coordinate, coordinate)
def test_the_known_region_holding_a_position_is_the_partitions(
        splits: list[str], x: float, y: float) -> None:
    partition = Partition(WORLD.size, split_above=1, merge_below=0)
    for region in splits:
        if region in partition.regions():
            partition.split(region)
    leaves = Leaves(frozenset(partition.regions()), WORLD)
    assert leaves.find(x, y) == partition.region_of(x, y)


def test_neighbours_are_the_known_regions_touching_even_at_a_corner() -> None:
    assert LEAVES.neighbours("w1") == ("w0", "w2", "w30", "w31")
    assert LEAVES.neighbours("w33") == ("w30", "w31", "w32")
    assert "w1" in LEAVES.neighbours("w30") and "w30" in LEAVES.neighbours("w1")
    assert LEAVES.neighbours("arena") == ()  # an arena is a world of its own


def test_a_position_no_known_region_holds_has_no_region() -> None:
    partial = Leaves(frozenset({"w0", "w1"}), WORLD)
    assert partial.find(500.0, 500.0) == "w0"
    assert partial.find(500.0, 1500.0) is None  # the north half is nobody's yet
    assert LEAVES.find(-1.0, 10.0) is None and LEAVES.find(2000.0, 2000.0) == "w33"


def test_a_step_leaves_its_emigrants_and_the_bodies_near_its_border() -> None:
    space = WORLD.new_space("w1")  # x 1000 to 2000, y 0 to 1000
    inside = spawn(space, BodySpawn("inside", (1500.0, 500.0)))
    near = spawn(space, BodySpawn("near", (1010.0, 500.0)))
    gone = spawn(space, BodySpawn("gone", (990.0, 500.0), velocity=(-5.0, 1.0)))
    found = crossings(space, "w1", LEAVES)
    assert found.emigrants == [("w0", gone)]
    rows = {row[0]: row for row in found.halo}
    assert set(rows) == {"near", "gone"} and inside is not None and near is not None
    assert rows["gone"][BOUND_FOR] == "w0" and rows["near"][BOUND_FOR] == ""
    assert rows["gone"][1:5] == [990.0, 500.0, -5.0, 1.0]
    assert crossings(space, "arena", LEAVES).halo == []  # an arena has no border


def test_a_pooled_ghost_takes_every_part_of_its_row() -> None:
    source = WORLD.new_space("w0")
    body = spawn(source, BodySpawn("b", (10.0, 20.0), velocity=(3.0, 4.0), radius=7.0,
                                   mass=2.0, friction=0.1, elasticity=0.9))
    body.angle, body.angular_velocity = 0.5, 2.0
    pool, target = GhostPool(), WORLD.new_space("w1")
    first = pool.add(target, [ghost_row(spawn(source, BodySpawn("x", (1.0, 1.0))))])
    pool.drop(target, first)
    (ghost, shape), = pool.add(target, [ghost_row(body)])
    assert ghost is first[0][0]  # the same pymunk body, reused
    assert (tuple(ghost.position), tuple(ghost.velocity), ghost.angle,
            ghost.angular_velocity) == ((10.0, 20.0), (3.0, 4.0), 0.5, 2.0)
    assert (ghost.mass, ghost.moment, shape.radius, shape.friction, shape.elasticity) == (
        2.0, body.moment, 7.0, 0.1, 0.9)


def test_a_name_stands_for_the_regions_that_replaced_it() -> None:
    assert LEAVES.resolve("w1") == ("w1",)
    assert LEAVES.resolve("w3") == ("w30", "w31", "w32", "w33")  # split
    assert LEAVES.resolve("w012") == ("w0",)  # inside a coarser region
    assert LEAVES.resolve("arena") == ("arena",)
    assert Leaves(frozenset(), WORLD).resolve("w3") == ("w3",)  # nobody knows it: itself


def _ghost_at(name: str, x: float, y: float, vx: float = 0.0) -> list[float | str]:
    source = WORLD.new_space("arena")
    return ghost_row(spawn(source, BodySpawn(name, (x, y), (vx, 0.0), radius=5.0)))


def test_only_the_ghosts_a_body_could_reach_in_the_step_are_added() -> None:
    space = WORLD.new_space("w0")  # x and y from 0 to 1000
    spawn(space, BodySpawn("resting", (990.0, 500.0), radius=5.0))
    spawn(space, BodySpawn("runner", (990.0, 100.0), (600.0, 0.0), radius=5.0))
    spawn(space, BodySpawn("inland", (500.0, 500.0), (0.0, 0.0), radius=5.0))
    rows = [_ghost_at("touching", 1012.0, 500.0), _ghost_at("beyond", 1050.0, 300.0),
            _ghost_at("ahead", 1045.0, 100.0), _ghost_at("incoming", 1060.0, 700.0, -2000.0)]
    dt = 1 / 20
    kept = [row[0] for row in reachable(space, rows, dt, WORLD.bounds("w0"))]
    # "beyond" is 50 units past the border and 200 from any body; "ahead" is in the
    # runner's path (30 units a step); "incoming" comes 100 units in a step, nobody there
    assert kept == ["touching", "ahead"]
    assert reachable(space, rows, 1.0, WORLD.bounds("w0"))[-1][0] == "incoming"
    assert reachable(WORLD.new_space("w0"), rows, dt, WORLD.bounds("w0")) == []
