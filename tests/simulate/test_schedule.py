"""The simulator's schedule: seeded, reproducible, and faithful to the scenario's rates."""

from __future__ import annotations

import math
from collections import Counter

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.partition import Partition
from app.simulate.population import World
from app.simulate.scenarios import SCENARIOS, STEADY, scenario
from app.simulate.schedule import AI_TICK_S, NPC_SIGHT, SKUS, Schedule, TickPlan, _distinct


def plans(schedule: Schedule, seconds: float) -> list[TickPlan]:
    schedule.initial_sessions()
    schedule.join_updates()
    return [schedule.plan(k) for k in range(round(seconds / schedule.tick_s))]


def test_the_same_seed_gives_the_same_schedule() -> None:
    first = Schedule(STEADY, 300, seed=7, duration_s=10.0)
    second = Schedule(STEADY, 300, seed=7, duration_s=10.0)
    assert first.initial_sessions() == second.initial_sessions()
    assert first.join_updates() == second.join_updates()
    a = [first.plan(k) for k in range(600)]
    b = [second.plan(k) for k in range(600)]
    assert a == b
    assert sum(len(p.updates) for p in a) > 1000  # the comparison covered real work


def test_another_seed_gives_another_schedule() -> None:
    a = plans(Schedule(STEADY, 300, seed=1, duration_s=10.0), 1.0)
    b = plans(Schedule(STEADY, 300, seed=2, duration_s=10.0), 1.0)
    assert [p.updates for p in a] != [p.updates for p in b]


def test_activity_classes_and_session_types_have_the_scenario_shares() -> None:
    schedule = Schedule(STEADY, 1000, seed=3, duration_s=10.0)
    population = schedule.population
    assert Counter(population.activity.tolist()) == {0: 400, 1: 400, 2: 200}
    kinds = Counter(population.type_names[k] for k in population.kind.tolist())
    assert kinds == {"ranked": 200, "casual": 400, "coop": 150, "spectator": 100, "lobby": 150}
    specs = schedule.initial_sessions()
    assert len(specs) == 1000
    assert all(s.players == 1 or s.session_type == "coop" for s in specs)


def test_updates_arrive_at_the_scenario_rate() -> None:
    players, seconds = 1000, 10.0
    schedule = Schedule(STEADY, players, seed=4, duration_s=seconds)
    # 40 % at 10/s, 40 % at 1/s, 20 % at 0.2/s; 1 % of sessions change class each second.
    expected = players * (0.4 * 10 + 0.4 * 1 + 0.2 * 0.2) * seconds
    sent = sum(len(p.updates) for p in plans(schedule, seconds))
    assert sent == pytest.approx(expected, rel=0.03)


def test_each_session_counts_its_updates_up_by_one_inside_the_world() -> None:
    schedule = Schedule(STEADY, 200, seed=5, duration_s=5.0)
    first = schedule.population.first_updates(np.arange(0))  # nothing, but allowed
    assert first == []
    last: dict[int, int] = dict.fromkeys(range(200), 0)
    schedule.initial_sessions()
    for update in schedule.join_updates():
        last[update.index] = update.seq
        assert "name" in update.state  # the first update carries the whole profile
    for plan in [schedule.plan(k) for k in range(1000)]:
        for update in plan.updates:
            assert update.seq == last[update.index] + 1
            last[update.index] = update.seq
            assert 0 <= update.position[0] <= 10_000 and 0 <= update.position[1] <= 10_000
            assert set(update.state) == {"hp", "stamina", "ammo", "facing", "action"}


def test_updates_carry_the_moment_their_player_acted_inside_their_tick() -> None:
    schedule = Schedule(STEADY, 500, seed=8, duration_s=1.0)
    schedule.initial_sessions()
    for plan in plans(schedule, 1.0):
        assert plan.due == pytest.approx(plan.at + schedule.tick_s)
        assert all(plan.at <= u.at < plan.due for u in plan.updates)


def test_physics_frames_come_at_the_physics_rate_with_every_occupied_region() -> None:
    schedule = Schedule(STEADY, 2000, seed=6, duration_s=5.0)
    frames = [f for p in plans(schedule, 2.0) for f in p.physics]
    regions = STEADY.regions_per_side ** 2  # 2,000 players occupy every region
    # frames 1, 2, ... each handed over at the end of the tick it starts in
    assert [f.frame for f in frames] == list(range(1, int(STEADY.physics_hz * 2) + 1))
    assert all(f.at == pytest.approx(f.frame / STEADY.physics_hz) for f in frames)
    assert schedule.frames_due(round(2.0 / schedule.tick_s)) == len(frames)
    assert {len(f.regions) for f in frames} == {regions}
    assert all(STEADY.bodies_base < b <= 5000 for f in frames for b in f.regions.values())


def test_a_frame_names_the_empty_regions_too_with_their_resting_bodies() -> None:
    """The client steps each region at its level of detail, so the world is sent whole."""
    schedule = Schedule(STEADY, 20, seed=6, duration_s=2.0)  # 20 players leave regions empty
    frames = [f for p in plans(schedule, 1.0) for f in p.physics]
    assert {len(f.regions) for f in frames} == {STEADY.regions_per_side ** 2}
    assert STEADY.bodies_base in frames[0].regions.values()  # an empty region's bodies


def test_background_jobs_cycle_three_snapshots_then_analytics_over_all_sessions() -> None:
    schedule = Schedule(STEADY, 1200, seed=8, duration_s=10.0)
    jobs = [schedule.background_job(n) for n in range(8)]
    assert [j.kind for j in jobs] == ["snapshot"] * 3 + ["analytics"] + ["snapshot"] * 3 + [
        "analytics"]
    covered = [i for j in jobs if j.kind == "snapshot" for i in j.sessions]
    assert sorted(set(covered)) == list(range(1200))  # every session takes its turn
    assert all(len(j.sessions) == 500 for j in jobs if j.kind == "snapshot")
    assert all(len(j.events) == 2000 for j in jobs if j.kind == "analytics")
    assert jobs == [Schedule(STEADY, 1200, seed=9, duration_s=1.0).background_job(n)
                    for n in range(8)]  # a pure function of the number


def test_an_influx_brings_half_the_players_into_one_region_within_two_seconds() -> None:
    influx = SCENARIOS["influx"]
    schedule = Schedule(influx, 1000, seed=9, duration_s=10.0)
    assert influx.influx is not None
    start = influx.influx.at * 10.0
    plans(schedule, start + influx.influx.within_s + 0.3)
    occupancy = schedule.population.occupancy()
    assert occupancy.max() >= 0.5 * 1000
    before = Schedule(influx, 1000, seed=9, duration_s=10.0)
    plans(before, start - 0.1)
    assert before.population.occupancy().max() < 0.25 * 1000


def test_a_promo_spike_triples_the_sessions_within_five_seconds() -> None:
    spike = SCENARIOS["promo-spike"]
    assert spike.surge is not None
    schedule = Schedule(spike, 100, seed=10, duration_s=10.0)
    assert schedule.size == 300
    opened = [(p.at, s.index) for p in plans(schedule, 10.0) for s in p.opens]
    assert len(opened) == 200
    start = spike.surge.at * 10.0
    assert all(start <= at <= start + spike.surge.within_s for at, _ in opened)
    assert sorted(i for _, i in opened) == list(range(100, 300))


def test_world_event_triples_ai_work() -> None:
    steady = plans(Schedule(STEADY, 1000, seed=11, duration_s=5.0), 3.0)
    event = plans(Schedule(SCENARIOS["world-event"], 1000, seed=11, duration_s=5.0), 3.0)
    calm = sum(len(p.ai) for p in steady)
    busy = sum(len(p.ai) for p in event)
    assert busy == pytest.approx(3 * calm, rel=0.1)


def test_every_npc_is_handed_over_on_each_ai_tick_wandering_between_them() -> None:
    schedule = Schedule(STEADY, 2000, seed=13, duration_s=5.0)
    planned = plans(schedule, 3.0)
    thinking = [p for p in planned if p.ai]
    per_ai_tick = round(AI_TICK_S / schedule.tick_s)
    assert [p.ai_tick for p in thinking] == [p.tick // per_ai_tick for p in thinking]
    assert all(p.tick % per_ai_tick == 0 for p in thinking)
    assert len(thinking) == 3.0 / AI_TICK_S
    npcs = len(schedule.npcs.x)
    assert all([d.npc for d in p.ai] == list(range(npcs)) for p in thinking)
    first, last = thinking[0].ai[7].position, thinking[-1].ai[7].position
    assert 0 < math.dist(first, last) < 300  # a random walk of about 15 units a second
    assert any(d.players for p in thinking for d in p.ai)


def test_purchases_trickle_and_surge_with_duplicates() -> None:
    steady = Schedule(STEADY, 2000, seed=12, duration_s=10.0)
    steady.initial_sessions()
    assert steady.purchase_rate() == pytest.approx(2000 * STEADY.purchases_per_player_s)
    assert all(steady.purchase(n).copies == 1 for n in range(500))
    surge = SCENARIOS["purchase-surge"]
    schedule = Schedule(surge, 1000, seed=12, duration_s=10.0)
    many = [schedule.purchase(n) for n in range(3000)]
    twice = [r for r in many if r.copies > 1]
    assert len(twice) / len(many) == pytest.approx(surge.duplicate_share, abs=0.02)
    assert {r.copies for r in twice} == {2, 3}
    assert {r.sku for r in many} == {sku for sku, _ in SKUS}
    assert all(0 <= r.index < schedule.size for r in many)


def test_a_purchase_is_a_pure_function_of_the_seed_and_its_number() -> None:
    one, two = (Schedule(STEADY, 100, seed=5, duration_s=1.0) for _ in range(2))
    for k in range(50):  # ticks planned on one only do not change its purchases
        one.plan(k)
    assert [one.purchase(n) for n in (9, 3, 0)] == [two.purchase(n) for n in (9, 3, 0)]
    other = Schedule(STEADY, 100, seed=6, duration_s=1.0)
    assert [one.purchase(n) for n in range(20)] != [other.purchase(n) for n in range(20)]


def test_purchases_grow_with_the_sessions_open() -> None:
    schedule = Schedule(SCENARIOS["promo-spike"], 1000, seed=2, duration_s=10.0)
    schedule.initial_sessions()
    before = schedule.purchase_rate()
    for k in range(schedule.ticks):
        schedule.plan(k)
    assert schedule.purchase_rate() == pytest.approx(3 * before, rel=0.05)


def test_ticks_are_planned_in_order_only() -> None:
    schedule = Schedule(STEADY, 10, seed=1, duration_s=1.0)
    schedule.plan(0)
    with pytest.raises(ValueError, match="out of order"):
        schedule.plan(2)


def test_an_unknown_scenario_names_the_choices() -> None:
    with pytest.raises(InvalidRequest, match="steady"):
        scenario("stedy")


@pytest.mark.parametrize("per_side", [1, 2, 4, 8])
def test_a_power_of_two_grid_names_its_regions_as_the_partition_does(per_side: int) -> None:
    """The simulator's regions are quadtree regions, so the director can balance them."""
    world = World(10_000.0, per_side)
    partition = Partition(10_000.0, split_above=1.0, merge_below=0.0)
    while len(partition.regions()) < per_side**2:
        for region in partition.regions():
            partition.split(region)
    for region in range(world.regions):
        assert partition.region_of(*world.centre(region)) == world.name(region)
    assert World(10_000.0, 3).name(5) == "r2-1"  # not a quadtree: plain names


@given(st.integers(1, 3000), st.integers(1, 40), st.integers(0, 2**32 - 1))
def test_each_npc_sees_distinct_players_of_its_region(pool: int, rows: int, seed: int) -> None:
    picks = _distinct(np.random.default_rng(seed), pool, rows, NPC_SIGHT)
    assert picks.shape == (rows, min(NPC_SIGHT, pool))
    assert all(len(set(row)) == len(row) for row in picks.tolist())
    assert picks.min() >= 0 and picks.max() < pool
