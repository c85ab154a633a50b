"""Physics units: each steps only the regions it owns, and a region moved to another unit
arrives whole and steps on from where it was, in memory and through Redis."""

from __future__ import annotations

import statistics
import threading
import time
from dataclasses import replace

import pymunk
import pytest
import redis

from app.physics import handover as handover_module
from app.physics import notes as notes_module
from app.physics import units as units_module
from app.physics.anomalies import Limits
from app.physics.borders import MemoryBorders, RedisBorders
from app.physics.engine import BodySpawn, StepResult, new_space, spawn, step_space
from app.physics.handover import MemoryHandover, RedisHandover, pack_space, unpack_space
from app.physics.notes import MemoryRegionNotes, RedisRegionNotes
from app.physics.owners import MemoryOwnerMap, RedisOwnerMap
from app.physics.units import BodiesChanged, FrameWork, Links, Unit
from app.physics.world import World
from app.protocol import keys
from tests.stores import STORES, memory_or_redis
from tests.waiting import wait_for

DT_MS = 1000 / 60


@pytest.fixture(params=STORES)
def links(request: pytest.FixtureRequest) -> Links:
    return memory_or_redis(
        request,
        lambda: Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), units=2,
                      borders=MemoryBorders()),
        lambda client: Links(RedisOwnerMap(client), RedisHandover(client),
                             RedisRegionNotes(client), units=2, borders=RedisBorders(client)))


def _with_dt(regions: dict[str, int], dt_ms: float) -> list[tuple[str, int, float]]:
    return [(region, bodies, dt_ms) for region, bodies in regions.items()]


def _frames(unit: Unit, links: Links, frames: range, regions: dict[str, int],
            epoch: int = 0) -> list[str]:
    """Step `frames` on `unit`; returns the regions skipped in any of them."""
    skipped = []
    for frame in frames:
        done = unit.step(FrameWork(frame, _with_dt(regions, DT_MS), epoch), links)
        skipped += done.skipped
    return skipped


def _positions(space: pymunk.Space) -> list[tuple[float, float]]:
    return sorted((b.position.x, b.position.y) for b in space.bodies)


def test_a_unit_steps_only_the_regions_the_owner_map_gives_it(links: Links) -> None:
    links.owners.publish({"arena": 0, "docks": 1})
    unit0 = Unit(0)
    done = unit0.step(FrameWork(1, [("arena", 5, DT_MS), ("docks", 5, DT_MS)], epoch=1), links)
    assert [s.region for s in done.stepped] == ["arena"] and done.skipped == ("docks",)
    assert set(unit0.spaces) == {"arena"}  # docks never started here
    assert (done.stepped[0].bodies, done.stepped[0].steps) == (5, 1)
    note = links.notes.read()["arena"]
    assert (note.unit, note.frame, note.bodies, note.steps) == (0, 1, 5, 1)


def test_a_moved_region_steps_on_at_its_new_unit_exactly_where_it_left_off(
        links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0, unit1 = Unit(0), Unit(1)
    regions = {"arena": 12}
    assert _frames(unit0, links, range(1, 31), regions, epoch=1) == []
    reference = unit0.spaces["arena"].copy()  # the same space, stepped on in one place

    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    done = unit0.step(FrameWork(31, [], epoch), links)  # the new epoch reaches unit 0
    assert done.released == ("arena",) and unit0.spaces == {}
    assert _frames(unit1, links, range(31, 61), regions, epoch) == []

    for frame in range(31, 61):
        step_space(reference, "arena", frame=frame, dt_ms=DT_MS, bodies=12, limits=Limits(),
                   world=World())
    moved = unit1.spaces["arena"]
    assert moved.gs_steps == reference.gs_steps == 60  # one history, not a restart
    assert len(moved.bodies) == 12
    for (x, y), (rx, ry) in zip(_positions(moved), _positions(reference), strict=True):
        # the contact solver's cached impulses do not travel (app.physics.handover)
        assert abs(x - rx) < 1e-2 and abs(y - ry) < 1e-2
    assert links.owners.read().moving == {}  # settled
    assert links.notes.read()["arena"].unit == 1


def test_a_task_sent_before_the_move_steps_nothing_at_the_unit_left(links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0 = Unit(0)
    _frames(unit0, links, range(1, 4), {"arena": 4}, epoch=1)
    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    unit0.step(FrameWork(4, [], epoch), links)
    late = unit0.step(FrameWork(4, [("arena", 4, DT_MS)], epoch=1), links)  # the old epoch
    assert late.stepped == () and late.skipped == ("arena",)
    assert "arena" not in unit0.spaces  # not restarted behind the new owner's back


def test_the_new_owner_waits_for_the_space_and_never_starts_it_empty(links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0, unit1 = Unit(0), Unit(1)
    _frames(unit0, links, range(1, 6), {"arena": 4}, epoch=1)
    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    # unit 1 comes first: the space has not been handed over yet
    assert _frames(unit1, links, range(6, 8), {"arena": 4}, epoch) == ["arena", "arena"]
    assert "arena" not in unit1.spaces
    unit0.step(FrameWork(6, [], epoch), links)
    assert _frames(unit1, links, range(8, 9), {"arena": 4}, epoch) == []
    assert unit1.spaces["arena"].gs_steps == 6  # five on unit 0, then this one


def test_the_new_owner_takes_a_space_handed_over_while_it_waits(links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0, unit1 = Unit(0), Unit(1)
    _frames(unit0, links, range(1, 3), {"arena": 4}, epoch=1)
    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    waiting = threading.Thread(target=unit0.step, args=(FrameWork(3, [], epoch), links))
    waiting.start()  # unit 0 hands over while unit 1 may already be waiting
    skipped = _frames(unit1, links, range(3, 4), {"arena": 4}, epoch)
    waiting.join()
    skipped += _frames(unit1, links, range(4, 5), {"arena": 4}, epoch)
    assert len(skipped) <= 1 and unit1.spaces["arena"].gs_steps == 4 - len(skipped)


def test_a_space_that_never_comes_is_restarted_after_the_give_up_time(
        links: Links, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unit it left died before handing it over: the region steps again, empty."""
    monkeypatch.setattr(units_module, "HANDOVER_GIVE_UP_S", 0.05)
    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    unit1 = Unit(1)
    skipped = 0
    while _frames(unit1, links, range(1, 2), {"arena": 3}, epoch):
        skipped += 1
    assert skipped >= 1
    assert unit1.spaces["arena"].gs_steps == 1 and links.owners.read().moving == {}


def test_a_space_left_twice_keeps_only_the_latest(redis_client: redis.Redis) -> None:
    handover = RedisHandover(redis_client)
    older, newer = new_space("arena", World()), new_space("arena", World())
    older.gs_steps, newer.gs_steps = 3, 9
    handover.put("arena", pack_space(older))
    handover.put("arena", pack_space(newer))
    blob = handover.take("arena", 0.01)
    assert blob is not None and unpack_space(blob).gs_steps == 9
    assert handover.take("arena", 0.01) is None
    handover.put("docks", pack_space(older))  # nobody takes it: it expires
    assert 0 < redis_client.ttl(keys.physics_handover("docks")) <= handover_module.HANDOVER_TTL_S


def test_a_units_notes_reach_redis_at_most_every_quarter_second_and_none_is_lost(
        redis_client: redis.Redis, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(notes_module, "NOTES_EVERY_S", 0.3)
    writer, reader = RedisRegionNotes(redis_client), RedisRegionNotes(redis_client)
    started = time.monotonic()
    writer.note(0, [StepResult("w0", 1, 5, 1)])
    assert reader.read()["w0"].frame == 1  # the first goes at once
    writer.note(0, [StepResult("w0", 2, 5, 2), StepResult("w1", 2, 7, 2)])
    if time.monotonic() - started < 0.3:  # (a slow machine may already be past it)
        assert reader.read()["w0"].frame == 1 and writer.read()["w0"].frame == 2
    note = wait_for(lambda: reader.read().get("w1"), timeout=5, what="the timer's write")
    assert (note.frame, reader.read()["w0"].frame) == (2, 2)


def test_a_regions_cost_is_the_median_of_its_last_steps_cpu_times(links: Links) -> None:
    unit, times = Unit(0), []
    links.owners.publish({"arena": 0})
    for frame in range(1, 21):
        step = unit.step(FrameWork(frame, [("arena", 8, DT_MS)], epoch=1), links).stepped[0]
        times.append(step.cpu_ms)
        assert step.cpu_ms > 0
        assert step.cost_ms == statistics.median(times[-units_module.COST_STEPS:])
    assert links.notes.read()["arena"].cost_ms == pytest.approx(step.cost_ms, abs=1e-4)


def test_bodies_are_spawned_and_removed_by_id_on_the_owning_unit_only(links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0, unit1 = Unit(0), Unit(1)
    crate = BodySpawn("crate-1", (100.0, 50.0), velocity=(3.0, 0.0), radius=12.0, mass=4.0)
    done = unit0.change("arena", [crate, BodySpawn("crate-2", (200.0, 50.0))], [], 1, links)
    assert done == BodiesChanged(("crate-1", "crate-2"), ())
    body = next(b for b in unit0.spaces["arena"].bodies if b.gs_id == "crate-1")
    assert (tuple(body.position), tuple(body.velocity), body.mass) == ((100.0, 50.0), (3.0, 0.0),
                                                                        4.0)
    again = unit0.change("arena", [crate], ["crate-2", "crate-9"], 1, links)
    assert again == BodiesChanged((), ("crate-2",), already=("crate-1",), missing=("crate-9",))
    assert {b.gs_id for b in unit0.spaces["arena"].bodies} == {"crate-1"}
    assert unit1.change("arena", [crate], [], 1, links) is None  # not its region
    step = unit0.step(FrameWork(1, [("arena", 0, DT_MS)], epoch=1), links).stepped[0]
    assert step.bodies == 1  # a spawned body counts; nothing is topped up past it


def test_a_change_for_a_region_in_transit_waits_for_its_space(links: Links) -> None:
    links.owners.publish({"arena": 0})
    unit0, unit1 = Unit(0), Unit(1)
    unit0.change("arena", [BodySpawn("crate-1", (10.0, 10.0))], [], 1, links)
    epoch = links.owners.publish({"arena": 1}, moving={"arena": 0})
    assert unit1.change("arena", [BodySpawn("crate-2", (20.0, 10.0))], [], epoch, links) is None
    unit0.step(FrameWork(2, [], epoch), links)  # unit 0 learns of the move: hands over
    done = unit1.change("arena", [BodySpawn("crate-2", (20.0, 10.0))], [], epoch, links)
    assert done is not None and done.spawned == ("crate-2",)
    assert {b.gs_id for b in unit1.spaces["arena"].bodies} == {"crate-1", "crate-2"}


WIDE = World(size=2000.0)  # four regions of 1000 at depth 1
QUARTERS_BY_UNIT = {0: ["w0", "w2"], 1: ["w1", "w3"]}


def _lockstep(pair: list[Unit], links: Links, frames: range, epoch: int) -> None:
    """Step both units frame by frame, each sending only once both have stepped."""
    for frame in frames:
        done = [u.advance(FrameWork(frame, [(r, 0, DT_MS) for r in QUARTERS_BY_UNIT[u.number]],
                                    epoch), links) for u in pair]
        for unit, (_, outgoing) in zip(pair, done, strict=True):
            unit.send(outgoing, links)


def _one_space(balls: list[BodySpawn], frames: range) -> dict[str, pymunk.Body]:
    space = new_space("w", WIDE)
    bodies = {b.body_id: spawn(space, b) for b in balls}
    for frame in frames:
        step_space(space, "w", frame=frame, dt_ms=DT_MS, bodies=0, limits=Limits(), world=WIDE)
    return bodies


def _named(pair: list[Unit]) -> dict[str, tuple[str, pymunk.Body]]:
    return {b.gs_id: (region, b) for u in pair for region, space in u.spaces.items()
            for b in space.bodies if hasattr(b, "gs_id")}


def test_a_body_crossing_to_a_region_of_another_unit_keeps_its_whole_state(
        links: Links) -> None:
    links = replace(links, world=WIDE)
    epoch = links.owners.publish({"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    pair = [Unit(0), Unit(1)]
    ball = BodySpawn("ball", (980.0, 500.0), velocity=(120.0, 30.0), radius=5.0, mass=2.0)
    pair[0].change("w0", [ball], [], epoch, links)
    _named(pair)["ball"][1].angular_velocity = 3.0
    _lockstep(pair, links, range(1, 61), epoch)

    space = new_space("w", WIDE)
    reference = spawn(space, ball)
    reference.angular_velocity = 3.0
    for frame in range(1, 61):
        step_space(space, "w", frame=frame, dt_ms=DT_MS, bodies=0, limits=Limits(), world=WIDE)
    region, moved = _named(pair)["ball"]
    assert region == "w1"  # it went east, to unit 1
    assert (tuple(moved.position), tuple(moved.velocity), moved.angle,
            moved.angular_velocity) == (tuple(reference.position), tuple(reference.velocity),
                                        reference.angle, reference.angular_velocity)


def test_a_body_that_crossed_to_another_region_of_its_unit_is_removed_by_its_old_region(
        links: Links) -> None:
    links = replace(links, world=WIDE)
    epoch = links.owners.publish({"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    pair = [Unit(0), Unit(1)]
    pair[0].change("w0", [BodySpawn("north", (500.0, 980.0), velocity=(0.0, 150.0)),
                          BodySpawn("east", (980.0, 500.0), velocity=(150.0, 0.0))], [],
                   epoch, links)
    _lockstep(pair, links, range(1, 31), epoch)
    where = {name: region for name, (region, _) in _named(pair).items()}
    assert where == {"north": "w2", "east": "w1"}  # one stayed on unit 0, one left it
    done = pair[0].change("w0", [], ["north", "east"], epoch, links)
    assert done == BodiesChanged((), ("north",), missing=("east",))
    assert set(_named(pair)) == {"east"}  # on unit 1, out of unit 0's reach


def test_two_bodies_meeting_across_a_border_of_two_units_bounce_as_in_one_space(
        links: Links) -> None:
    links = replace(links, world=WIDE)
    epoch = links.owners.publish({"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    pair = [Unit(0), Unit(1)]
    west = BodySpawn("west", (960.0, 500.0), velocity=(100.0, 0.0))
    east = BodySpawn("east", (1040.0, 502.0), velocity=(-100.0, 0.0))
    pair[0].change("w0", [west], [], epoch, links)
    pair[1].change("w1", [east], [], epoch, links)
    _lockstep(pair, links, range(1, 61), epoch)
    expected = _one_space([west, east], range(1, 61))
    got = _named(pair)
    for name in ("west", "east"):
        assert got[name][1].position.get_distance(expected[name].position) < 0.05
    assert got["west"][1].velocity.x < 0 < got["east"][1].velocity.x  # they bounced


def test_a_region_at_rest_still_shows_its_halo_and_is_woken_from_across_a_border(
        links: Links) -> None:
    links = replace(links, world=WIDE)
    epoch = links.owners.publish({"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    pair = [Unit(0), Unit(1)]
    still = BodySpawn("still", (985.0, 500.0))
    pair[0].change("w0", [still], [], epoch, links)
    _lockstep(pair, links, range(1, 61), epoch)  # a second: w0 comes to rest
    w0 = pair[0].advance(FrameWork(61, [("w0", 0, DT_MS)], epoch), links)[0].stepped[0]
    assert w0.rested
    thrown = BodySpawn("thrown", (1100.0, 500.0), velocity=(-200.0, 0.0))
    pair[1].change("w1", [thrown], [], epoch, links)
    _lockstep(pair, links, range(62, 122), epoch)
    reference = new_space("w", WIDE)
    bodies = {b.body_id: spawn(reference, b) for b in (still,)}
    for frame in range(1, 62):
        step_space(reference, "w", frame=frame, dt_ms=DT_MS, bodies=0, limits=Limits(),
                   world=WIDE)
    bodies["thrown"] = spawn(reference, thrown)
    for frame in range(62, 122):
        step_space(reference, "w", frame=frame, dt_ms=DT_MS, bodies=0, limits=Limits(),
                   world=WIDE)
    got = _named(pair)
    assert got["still"][1].position.x < 985.0  # woken, and pushed west
    for name, body in bodies.items():
        assert got[name][1].position.get_distance(body.position) < 0.05, name
