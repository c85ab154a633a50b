"""Spaces split and merged to the director's partition: every body moves whole to the
region holding it, steps carry on, and names used after the change still reach a region."""

from __future__ import annotations

import pymunk

from app.physics.engine import BodySpawn, fill, fillers, new_space, spawn
from app.physics.handover import MemoryHandover
from app.physics.notes import MemoryRegionNotes
from app.physics.owners import MemoryOwnerMap
from app.physics.reshape import divide, reshape
from app.physics.units import FrameWork, Links, Unit
from app.physics.world import Leaves, World

WORLD = World(size=2000.0)


def _state(body: pymunk.Body) -> tuple[float, ...]:
    return (*body.position, *body.velocity, body.angle, body.angular_velocity, body.mass)


def test_a_split_moves_every_body_whole_to_its_quarter_and_a_merge_brings_them_back() -> None:
    space = new_space("w1", WORLD)  # x 1000 to 2000, y 0 to 1000
    space.gs_steps = 42
    spots = {"sw": (1100.0, 100.0), "se": (1900.0, 100.0), "nw": (1100.0, 900.0),
             "ne": (1900.0, 900.0), "edge": (1500.0, 500.0)}
    for name, spot in spots.items():
        spawn(space, BodySpawn(name, spot, velocity=(1.0, 2.0))).angular_velocity = 0.5
    fill(space, "w1", 3, WORLD)
    before = {b.gs_id: _state(b) for b in space.bodies if hasattr(b, "gs_id")}
    spaces = {"w1": space}
    quarters = Leaves(frozenset({"w0", "w10", "w11", "w12", "w13", "w2", "w3"}), WORLD)
    assert reshape(spaces, quarters, WORLD) == {"w1": ("w10", "w11", "w12", "w13")}
    where = {b.gs_id: r for r, s in spaces.items() for b in s.bodies if hasattr(b, "gs_id")}
    assert where == {"sw": "w10", "se": "w11", "nw": "w12", "ne": "w13", "edge": "w13"}
    after = {b.gs_id: _state(b) for s in spaces.values() for b in s.bodies if hasattr(b, "gs_id")}
    assert after == before  # whole: nothing about a body changed
    assert all(s.gs_steps == 42 for s in spaces.values())
    assert sum(len(fillers(s)) for s in spaces.values()) == 3

    whole = Leaves(frozenset({"w0", "w1", "w2", "w3"}), WORLD)
    assert reshape(spaces, whole, WORLD) == {f"w1{q}": ("w1",) for q in "0123"}
    assert set(spaces) == {"w1"} and len(spaces["w1"].bodies) == 8
    assert len(fillers(spaces["w1"])) == 3  # counted once each, not topped up again
    fill(spaces["w1"], "w1", 3, WORLD)
    assert len(spaces["w1"].bodies) == 8


def test_a_count_is_shared_as_evenly_as_counts_go() -> None:
    assert divide(10, ["a", "b", "c", "d"]) == [3, 3, 2, 2]
    assert divide(2, ["a", "b", "c"]) == [1, 1, 0]


def test_a_unit_steps_the_quarters_of_a_name_split_after_its_sender_read_the_map() -> None:
    links = Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), units=1, world=WORLD)
    epoch = links.owners.publish({"w0": 0, "w1": 0, "w2": 0, "w3": 0})
    unit = Unit(0)
    unit.step(FrameWork(1, [("w1", 8, 16.0)], epoch), links)
    unit.change("w1", [BodySpawn("crate", (1900.0, 900.0))], [], epoch, links)
    split = links.owners.publish({"w0": 0, "w2": 0, "w3": 0, **{f"w1{q}": 0 for q in "0123"}})
    done = unit.step(FrameWork(2, [("w1", 8, 16.0)], split), links)  # the old name
    assert sorted(s.region for s in done.stepped) == ["w10", "w11", "w12", "w13"]
    assert done.skipped == () and "w1" not in unit.spaces
    assert all(len(fillers(unit.spaces[f"w1{q}"])) >= 2 for q in "0123")  # its share of 8
    # a change still naming w1 lands in the quarter holding its body
    done_change = unit.change("w1", [BodySpawn("barrel", (1100.0, 100.0))], [], split, links)
    assert done_change is not None and done_change.spawned == ("barrel",)
    assert "barrel" in {getattr(b, "gs_id", None) for b in unit.spaces["w10"].bodies}
    assert "crate" in {getattr(b, "gs_id", None) for b in unit.spaces["w13"].bodies}
