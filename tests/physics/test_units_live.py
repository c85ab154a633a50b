"""Two physics units as real worker processes on Redis: each frame goes to the unit owning
its region, and a region moved between them mid-run carries its bodies on."""

from __future__ import annotations

import itertools

import redis

from app.client import GameClient
from app.physics.attention import RedisPlayerCounts
from app.physics.director import Director
from app.physics.handover import RedisHandover
from app.physics.notes import RedisRegionNotes, RegionNote
from app.physics.owners import RedisOwnerMap
from app.physics.units import Links
from app.physics.world import World
from app.protocol import keys
from app.settings import Settings
from app.tasking.factory import create_app
from tests.subprocesses import StartWorker
from tests.waiting import wait_for

BODIES = 12


def _noted(notes: RedisRegionNotes, region: str, unit: int, frame: int) -> RegionNote | None:
    note = notes.read().get(region)
    return note if note is not None and note.unit == unit and note.frame >= frame else None


def test_a_region_moves_between_two_units_mid_run_and_its_bodies_carry_on(
        live_settings: Settings, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    for unit in (0, 1):
        start_worker("physics", f"physics-u{unit}", unit=unit)
    owners, notes = RedisOwnerMap(redis_client), RedisRegionNotes(redis_client)
    owners.publish({"arena": 0, "docks": 1})
    settings = live_settings.model_copy(update={  # the map read and every region stepped
        "physics_map_ttl_ms": 0.0, "physics_near_hz": 60.0, "physics_far_hz": 60.0})
    client = GameClient(create_app(settings), settings)
    for frame in range(1, 11):
        client.submit_physics_frame(frame, {"arena": BODIES, "docks": 3})
    before = wait_for(lambda: _noted(notes, "arena", 0, 10), what="arena's frame 10 on unit 0")
    assert (before.steps, before.bodies) == (10, BODIES)
    assert _noted(notes, "docks", 1, 1) is not None  # the other region on the other unit

    owners.publish({"arena": 1, "docks": 1}, moving={"arena": 0})
    frame = 10
    while _noted(notes, "arena", 1, 11) is None:  # until unit 1 has stepped it
        frame += 1
        client.submit_physics_frame(frame, {"arena": BODIES, "docks": 3})
        wait_for(lambda f=frame: _noted(notes, "docks", 1, f), what=f"frame {frame}")
    after = notes.read()["arena"]
    # unit 1 stepped it once (each frame is awaited), on the space unit 0 left after ten
    # steps: a restart would count from one
    assert (after.unit, after.frame, after.bodies, after.steps) == (1, frame, BODIES, 11)
    assert owners.read().moving == {}
    assert not redis_client.exists(keys.physics_handover("arena"))
    client.close()



def test_spawned_bodies_reach_the_regions_unit_even_through_a_stale_owner_map(
        live_settings: Settings, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    for unit in (0, 1):
        start_worker("physics", f"physics-u{unit}", unit=unit)
    owners, notes = RedisOwnerMap(redis_client), RedisRegionNotes(redis_client)
    owners.publish({"arena": 1})
    fresh = live_settings.model_copy(update={
        "physics_map_ttl_ms": 0.0, "physics_near_hz": 60.0, "physics_far_hz": 60.0})
    stale = fresh.model_copy(update={"physics_map_ttl_ms": 600_000.0})  # keeps its first map
    client, late = GameClient(create_app(fresh), fresh), GameClient(create_app(stale), stale)
    crates = [{"id": f"crate-{i}", "x": 100.0 * i, "y": 50.0} for i in range(1, 4)]
    frames = itertools.count(1)
    client.change_bodies("arena", spawn=crates)
    # each change is applied before the next is sent: two threads of the unit may take
    # changes sent together, and a removal that ran first would find nothing to remove
    wait_for(lambda: _frame_with(client, notes, next(frames), bodies=3, unit=1),
             what="the spawn in arena on unit 1")
    late.change_bodies("arena", remove=["crate-3"])  # `late` reads the map: arena on unit 1
    wait_for(lambda: _frame_with(client, notes, next(frames), bodies=2, unit=1),
             what="the removal in arena on unit 1")

    owners.publish({"arena": 0}, moving={"arena": 1})
    frame = next(frames)
    while _noted(notes, "arena", 0, 2) is None:  # until unit 0 has stepped it
        frame += 1
        client.submit_physics_frame(frame, {"arena": 0})
        wait_for(lambda f=frame: (n := notes.read().get("arena")) and n.frame >= f - 1,
                 what=f"frame {frame}")
    # `late` still sends to unit 1, which knows the region left: it forwards to unit 0
    late.change_bodies("arena", spawn=[{"id": "crate-9", "x": 900.0, "y": 50.0}])
    frames = itertools.count(frame + 1)
    wait_for(lambda: _frame_with(client, notes, next(frames), bodies=3), timeout=20,
             what="the forwarded spawn in arena on unit 0")
    client.close()
    late.close()


def _frame_with(client: GameClient, notes: RedisRegionNotes, frame: int, bodies: int,
                unit: int = 0) -> bool:
    """Send `frame` of arena and report whether `unit` has noted `bodies` bodies there."""
    client.submit_physics_frame(frame, {"arena": 0})
    note = wait_for(lambda: (n := notes.read().get("arena")) and n.frame >= frame - 1 and n,
                    what=f"frame {frame}")
    return bool(note.unit == unit and note.bodies == bodies)


def _links(client: redis.Redis, settings: Settings) -> Links:
    return Links(RedisOwnerMap(client), RedisHandover(client), RedisRegionNotes(client),
                 units=2, players=RedisPlayerCounts(client), world=World(size=settings.world_size))


def test_a_body_crosses_to_a_region_of_the_other_unit_and_a_crowded_region_splits(
        live_settings: Settings, redis_client: redis.Redis, start_worker: StartWorker) -> None:
    for unit in (0, 1):
        start_worker("physics", f"physics-u{unit}", unit=unit)
    links = _links(redis_client, live_settings)
    links.owners.publish({"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    settings = live_settings.model_copy(update={
        "physics_map_ttl_ms": 0.0, "physics_near_hz": 60.0, "physics_far_hz": 60.0})
    client = GameClient(create_app(settings), settings)
    border = settings.world_size / 2  # w0 is west of it, w1 east
    client.change_bodies("w0", spawn=[{"id": "ball", "x": border - 5, "y": 100.0,
                                       "vx": 600.0, "vy": 0.0}])
    frames = itertools.count(1)

    def sent(regions: dict[str, int], stepping: list[str] | None = None) -> int:
        """Send a frame of `regions`; return it once `stepping` (they) noted it."""
        frame = next(frames)
        client.submit_physics_frame(frame, regions)
        wait_for(lambda: all((n := links.notes.read().get(r)) and n.frame >= frame
                             for r in stepping or regions), what=f"frame {frame}")
        return frame

    while links.notes.read().get("w1") is None or links.notes.read()["w1"].bodies == 0:
        assert sent({"w0": 0, "w1": 0}) < 60, "the ball never reached w1"
    assert links.notes.read()["w0"].bodies == 0  # it left w0 (unit 0) for w1 (unit 1)

    sent({"w1": 450})  # crowded: 450 bodies > 400
    steps_before = links.notes.read()["w1"].steps
    move = Director(2, hold_s=0.0, split_above=400, merge_below=200).direct(links)
    assert move is not None and move.plan.splits == ("w1",)
    quarters = [f"w1{q}" for q in "0123"]
    frame = sent({"w1": 450}, stepping=quarters)  # the game server still names w1
    notes = links.notes.read()
    assert all(notes[q].unit == 1 and notes[q].frame == frame for q in quarters)
    assert sum(notes[q].bodies for q in quarters) >= 451  # every body, the ball included
    assert all(notes[q].steps == steps_before + 1 for q in quarters)  # stepping on
    client.close()
