"""Regions too costly for a frame that cannot split are slowed, never one with players: the
rule, its hysteresis, the director publishing it, the stores, and the rates it gives."""

from __future__ import annotations

import pytest
import redis

from app.errors import InvalidRequest
from app.physics.detail import DetailRates, frame_steps, region_rates
from app.physics.director import Director, split_depth
from app.physics.engine import StepResult
from app.physics.handover import MemoryHandover
from app.physics.notes import MemoryRegionNotes
from app.physics.owners import MemoryOwnerMap
from app.physics.slowed import (
    RELEASE_BELOW,
    SLOW_FLOOR,
    MemorySlowedRegions,
    RedisSlowedRegions,
    slowed,
)
from app.physics.units import Links
from app.physics.world import World
from app.protocol import keys

DEEPEST = "w01230"  # depth 5: the deepest a 10,000-wide world splits to (four halos)


def _never(region: str) -> bool:
    return False


def test_a_region_that_cannot_split_is_slowed_by_the_budget_over_its_cost() -> None:
    costs = {"deep": 8.0, "cheap": 1.0, "pileup": 400.0, "splits": 50.0}
    got = slowed(costs, lambda r: r == "splits", 4.0, {})
    assert got == {"deep": 0.5, "pileup": SLOW_FLOOR}  # 4 / 400 is under the floor


def test_a_slowed_region_keeps_its_factor_until_its_cost_falls_under_the_release_bar() -> None:
    previous = {"deep": 0.5}
    assert slowed({"deep": 3.5}, _never, 4.0, previous) == {"deep": 0.5}  # under, not by much
    assert slowed({"deep": RELEASE_BELOW * 4.0 - 0.1}, _never, 4.0, previous) == {}
    assert slowed({"deep": 3.5}, _never, 4.0, {}) == {}  # never slowed: not slowed now
    assert slowed({"deep": 5.0}, _never, 4.0, previous) == {"deep": 0.8}  # the newest cost


def _links(world: World) -> Links:
    return Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), 2, world=world)


def _steps(costs: dict[str, float], steps: int = 1) -> list[StepResult]:
    return [StepResult(region, steps, 100, steps, ms, cost_ms=ms)
            for region, ms in costs.items()]


def test_the_director_slows_a_costly_region_at_the_deepest_level_and_splits_the_others(
        ) -> None:
    world = World(size=10_000.0)
    assert split_depth(world) == len(DEEPEST) - 1
    links = _links(world)
    links.notes.note(0, _steps({DEEPEST: 16.0, "w2": 16.0, "w3": 0.5, "dungeon-1": 12.0}))
    director = Director(2, reshape_every_s=0.0)
    move = director.direct(links)
    assert links.slowed.read() == {DEEPEST: 0.25, "dungeon-1": pytest.approx(1 / 3)}
    assert links.notes.totals()["slowed"] == 2  # the simulator's physics.regions_slowed
    assert move is not None and "w2" in move.plan.splits  # it can split: it does
    settled = {DEEPEST: 0.5, "dungeon-1": 0.5}  # the pile-ups are over
    links.notes.note(0, _steps(settled, 2))
    director.direct(links)  # the smoothed cost falls, still above the release bar
    assert set(links.slowed.read()) == {DEEPEST, "dungeon-1"}
    for steps in range(3, 12):
        links.notes.note(0, _steps(settled, steps))
        director.direct(links)
    assert links.slowed.read() == {}


def test_a_costly_region_with_players_is_never_slowed() -> None:
    links = _links(World(size=10_000.0))
    links.players.report("game-1", {DEEPEST: 3})
    links.notes.note(0, _steps({DEEPEST: 16.0}))
    Director(2, reshape_every_s=0.0).direct(links)
    assert links.slowed.read() == {}


def test_a_slowed_region_without_players_steps_at_its_factor_of_its_rate() -> None:
    rates = DetailRates(frame_hz=60.0, near_hz=20.0, far_hz=2.0)
    got = region_rates(["w00", "w01", "w33"], {"w00": 1}, rates,
                       slowed={"w00": 0.1, "w01": 0.5, "w33": 0.5})
    assert got == {"w00": 60.0, "w01": 10.0, "w33": 1.0}  # players in w00: every frame
    counts = {"w0": 0, "w1": 0, "w2": 0}
    frames = [frame_steps({"w0": 5, "w1": 5, "w2": 5}, {"w0": 1}, frame=f, dt_ms=16.0,
                          rates=rates, slowed={"w1": 0.25}) for f in range(60)]
    for steps in frames:
        for region in steps:
            counts[region] += 1
    assert counts == {"w0": 60, "w1": 5, "w2": 20}  # w1 at a quarter of the near rate
    assert {steps["w1"][1] for steps in frames if "w1" in steps} == {min(12 * 16.0, 100.0)}


def test_the_memory_store_refuses_a_factor_outside_zero_to_one_naming_the_region() -> None:
    store = MemorySlowedRegions()
    store.publish({"w0": 0.5})
    with pytest.raises(InvalidRequest, match=r"slowed\.w1"):
        store.publish({"w0": 0.25, "w1": 1.5})
    assert store.read() == {"w0": 0.5}  # nothing of the refused publish


def test_the_redis_store_replaces_the_slowed_regions_and_reads_past_a_bad_field(
        redis_client: redis.Redis) -> None:
    store = RedisSlowedRegions(redis_client)
    assert store.read() == {}
    store.publish({"w0": 0.5, "w1": 0.25})
    store.publish({"w1": 0.1})
    assert store.read() == {"w1": 0.1}
    redis_client.hset(keys.PHYSICS_SLOWED, mapping={"w2": "fast", "w3": "2"})
    assert store.read() == {"w1": 0.1}
    store.publish({})
    assert redis_client.exists(keys.PHYSICS_SLOWED) == 0
