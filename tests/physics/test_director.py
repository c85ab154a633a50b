"""The director: regions move between units only when one carries too much, as few as the
cut allows, and their spaces go with them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.director import Director
from app.physics.handover import MemoryHandover
from app.physics.notes import MemoryRegionNotes, RegionNote
from app.physics.owners import MemoryOwnerMap, OwnerView
from app.physics.units import FrameWork, Links, Unit
from app.physics.world import World

NOW = 1_000.0
QUARTETS = [f"w{a}{b}" for a in "0123" for b in "0123"]  # a 4 x 4 grid, as the simulator's


def _with_dt(regions: dict[str, int], dt_ms: float) -> list[tuple[str, int, float]]:
    return [(region, bodies, dt_ms) for region, bodies in regions.items()]


def _notes(costs: dict[str, float], unit: int = 0, at: float = NOW) -> dict[str, RegionNote]:
    return {r: RegionNote(unit, 1, 10, 1, ms, at) for r, ms in costs.items()}


def _director(costs: dict[str, float], units: int = 2, **kwargs: float) -> Director:
    director = Director(units, **{"hold_s": 0.0, **kwargs})  # type: ignore[arg-type]
    director.observe(_notes(costs))
    return director


def test_regions_too_costly_for_one_unit_are_cut_into_equal_runs_along_the_curve() -> None:
    costs = {f"w{q}": 2.0 for q in "0123"}  # 8 ms a frame: two units of 4 ms
    plan = _director(costs).plan(OwnerView(1, dict.fromkeys(costs, 0)), NOW)
    assert plan is not None
    assert (plan.before, plan.after) == (1.0, 1.0)  # over the units in use, each time
    on_1 = sorted(r for r, u in plan.owners.items() if u == 1)
    assert len(on_1) == 2 and plan.moving == dict.fromkeys(on_1, 0)
    # neighbours stay together: the curve visits w0, w2, w3, w1, so unit 1 has w3 and w1
    assert on_1 == ["w1", "w3"]


def test_a_placement_within_the_tolerance_stands() -> None:
    costs = {"w0": 1.0, "w1": 1.05, "w2": 1.0, "w3": 1.05}
    view = OwnerView(1, {"w0": 0, "w2": 0, "w1": 1, "w3": 1})
    assert _director(costs).plan(view, NOW) is None


def test_one_region_costlier_than_a_fair_share_is_not_moved_back_and_forth() -> None:
    costs = {"w0": 10.0, "w1": 1.0, "w2": 1.0, "w3": 1.0}
    view = OwnerView(1, {"w0": 0, "w1": 1, "w2": 1, "w3": 1})  # as good as it gets
    assert _director(costs).plan(view, NOW) is None


def test_after_a_move_the_costs_settle_before_the_next() -> None:
    costs = {f"w{q}": 2.0 for q in "0123"}
    links = Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), units=2)
    links.owners.publish(dict.fromkeys(costs, 0))
    director = Director(2, settle_s=5.0, hold_s=0.0)
    director.observe(_notes(costs))
    assert director.plan(links.owners.read(), NOW) is not None
    move = director.direct(links, now=NOW)
    assert move is not None and move.epoch == 2
    links.owners.settle("w1")
    links.owners.settle("w3")
    links.owners.publish(dict.fromkeys(costs, 0))  # someone put them all back
    assert director.plan(links.owners.read(), NOW + 4.9) is None
    assert director.plan(links.owners.read(), NOW + 5.1) is not None


def test_nothing_moves_while_a_region_is_still_in_transit() -> None:
    costs = {f"w{q}": 2.0 for q in "0123"}
    view = OwnerView(3, dict.fromkeys(costs, 0), moving={"w0": 1})
    assert _director(costs).plan(view, NOW) is None


def test_idle_regions_and_names_off_the_quadtree_are_left_where_they_are() -> None:
    director = Director(2, idle_s=10.0, hold_s=0.0)
    director.observe(_notes({"w0": 2.0, "w1": 2.0}, at=NOW - 11))  # not stepped lately
    director.observe(_notes({"w2": 3.0, "w3": 3.0, "arena": 50.0}))
    plan = director.plan(OwnerView(1, {"w0": 0, "w1": 0, "w2": 0, "w3": 0, "arena": 0}), NOW)
    assert plan is not None
    assert set(plan.moving) <= {"w2", "w3"} and len(plan.moving) == 1
    assert plan.owners["arena"] == 0 and plan.owners["w0"] == plan.owners["w1"] == 0


def test_a_cost_follows_the_newest_steps_smoothly_and_a_note_counts_once() -> None:
    director = Director(2, smoothing=0.5)
    director.observe({"w0": RegionNote(0, 1, 5, 1, 4.0, NOW)})
    director.observe({"w0": RegionNote(0, 1, 5, 1, 4.0, NOW)})  # the same note again
    director.observe({"w0": RegionNote(0, 2, 5, 2, 8.0, NOW + 1)})
    assert director.costs["w0"] == 6.0
    # the unit's typical step, when it gives one, rather than the last (a preempted one)
    director.observe({"w0": RegionNote(0, 3, 5, 3, 90.0, NOW + 2, cost_ms=6.0)})
    assert director.costs["w0"] == 6.0


@pytest.mark.parametrize(("field", "kwargs"), [
    ("units", {"units": 0}), ("tolerance", {"units": 2, "tolerance": -0.1}),
    ("unit_budget_ms", {"units": 2, "unit_budget_ms": 0.0})])
def test_a_bad_director_is_refused_naming_the_field(field: str, kwargs: dict[str, float]) -> None:
    with pytest.raises(InvalidRequest) as caught:
        Director(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


@settings(max_examples=200, deadline=None)
@given(costs=st.lists(st.floats(min_value=0.01, max_value=50.0), min_size=16, max_size=16),
       units=st.integers(min_value=2, max_value=5),
       start=st.lists(st.integers(min_value=0, max_value=4), min_size=16, max_size=16))
def test_a_rebalance_holds_the_balance_bound_and_moves_only_what_it_must(
        costs: list[float], units: int, start: list[int]) -> None:
    """After a rebalance no unit carries more than the mean plus the costliest region; a
    region moves only if its unit changes; nothing moves if the placement is within 10 %."""
    by_region = dict(zip(QUARTETS, costs, strict=True))
    owners = {r: u % units for r, u in zip(QUARTETS, start, strict=True)}
    director = _director(by_region, units=units, unit_budget_ms=1e-3)  # every unit needed
    plan = director.plan(OwnerView(1, owners), NOW)
    load = [0.0] * units
    for region, unit in owners.items():
        load[unit] += by_region[region]
    if min(load) > 0 and max(load) / (sum(load) / units) <= 1.10:
        assert plan is None
        return
    if plan is None:
        return  # no cut was better by more than the tolerance
    after = [0.0] * units
    for region, unit in plan.owners.items():
        after[unit] += by_region[region]
    assert max(after) <= sum(after) / units + max(costs) + 1e-9
    if len(set(owners.values())) == units:  # else it moves to use every unit
        assert plan.after < plan.before
    assert plan.moving == {r: owners[r] for r in QUARTETS if plan.owners[r] != owners[r]}


def test_a_rebalance_moves_the_spaces_and_they_step_on() -> None:
    """The director, two units and the owner map together, in memory."""
    links = Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), units=2)
    regions = {f"w{q}": 6 for q in "0123"}
    links.owners.publish(dict.fromkeys(regions, 0))
    units = [Unit(0), Unit(1)]
    for frame in range(1, 6):
        units[0].step(FrameWork(frame, _with_dt(regions, 16.0), epoch=1), links)
    director = Director(2, unit_budget_ms=1.0, hold_s=0.0,  # 4 ms of steps: both units
                        merge_below=0.0)  # (light: its quarters would merge otherwise)
    director.observe(links.notes.read())
    director.costs.update(dict.fromkeys(regions, 1.0))  # equal: cut by count, whatever the timing
    move = director.direct(links)
    assert move is not None and sorted(move.plan.moving) == ["w1", "w3"]
    for unit in units:  # the next frame, split by the new map, reaches both units
        mine = [(r, n) for r, n in regions.items() if move.plan.owners[r] == unit.number]
        done = unit.step(FrameWork(6, [(r, n, 16.0) for r, n in mine], move.epoch), links)
        assert done.skipped == ()
    assert {r: n.unit for r, n in links.notes.read().items()} == move.plan.owners
    assert all(n.steps == 6 for n in links.notes.read().values())  # none restarted


def test_a_light_load_spread_over_two_units_is_packed_onto_one() -> None:
    costs = {f"w{q}": 0.5 for q in "0123"}  # 2 ms a frame: one unit's budget is 4
    view = OwnerView(1, {"w0": 0, "w1": 1, "w2": 0, "w3": 1})
    plan = _director(costs).plan(view, NOW)
    assert plan is not None and set(plan.owners.values()) == {0}
    assert plan.moving == {"w1": 1, "w3": 1}


def test_a_second_unit_is_taken_when_the_load_outgrows_one_and_kept_near_the_boundary(
        ) -> None:
    one = OwnerView(1, dict.fromkeys((f"w{q}" for q in "0123"), 0))
    assert _director({f"w{q}": 0.9 for q in "0123"}).plan(one, NOW) is None  # 3.6 of 4 ms
    grown = _director({f"w{q}": 1.2 for q in "0123"}).plan(one, NOW)  # 4.8 ms
    assert grown is not None and set(grown.owners.values()) == {0, 1}
    two = OwnerView(2, grown.owners)
    assert _director({f"w{q}": 0.8 for q in "0123"}).plan(two, NOW) is None  # 3.2 > 2.8
    shrunk = _director({f"w{q}": 0.6 for q in "0123"}).plan(two, NOW)  # 2.4: 70 % of one
    assert shrunk is not None and set(shrunk.owners.values()) == {0}


@settings(max_examples=200, deadline=None)
@given(costs=st.lists(st.floats(min_value=0.01, max_value=5.0), min_size=16, max_size=16),
       units=st.integers(min_value=1, max_value=5))
def test_a_plan_uses_as_many_units_as_the_load_needs_and_no_more(costs: list[float],
                                                                  units: int) -> None:
    by_region = dict(zip(QUARTETS, costs, strict=True))
    spread = OwnerView(1, {r: i % units for i, r in enumerate(QUARTETS)})
    plan = _director(by_region, units=units).plan(spread, NOW)
    owners = plan.owners if plan is not None else spread.owners
    need = max(1, min(units, math.ceil(sum(costs) / 4.0)))
    assert len(set(owners.values())) in {need, units}  # kept at `units` only by hysteresis
    if need < units and sum(costs) <= (units - 1) * 4.0 * 0.7:
        assert len(set(owners.values())) == need


def test_a_unit_is_taken_only_once_the_load_has_asked_for_it_for_a_while() -> None:
    one = OwnerView(1, dict.fromkeys((f"w{q}" for q in "0123"), 0))
    director = _director({f"w{q}": 1.2 for q in "0123"}, hold_s=3.0)  # 4.8 ms: two units
    assert director.plan(one, NOW) is None
    assert director.plan(one, NOW + 2.9) is None
    director.costs.update(dict.fromkeys(director.costs, 0.9))  # a dip: one unit will do
    assert director.plan(one, NOW + 3.5) is None  # and the clock starts again after it
    director.costs.update(dict.fromkeys(director.costs, 1.2))
    assert director.plan(one, NOW + 4.0) is None
    grown = director.plan(one, NOW + 7.0)
    assert grown is not None and set(grown.owners.values()) == {0, 1}


def test_regions_the_map_does_not_name_are_named_where_they_are_without_a_move() -> None:
    costs = {"w0": 0.5, "w1": 0.5, "w2": 0.5, "w3": 0.5}  # one unit's load
    view = OwnerView(1, {"w0": 0, "w2": 0})  # w1 and w3 run where their names put them
    director = _director(costs)
    plan = director.plan(view, NOW)
    assert plan is not None and plan.moving == {}
    assert plan.owners == {r: view.owner_of(r, 2) for r in costs}
    assert director.plan(OwnerView(2, plan.owners), NOW) is None  # named: nothing more


BIG = World(size=10_000.0)  # regions down to 312.5 wide: depth 5 (no narrower than 4 halos)


def _bodies(counts: dict[str, int], at: float = NOW) -> dict[str, RegionNote]:
    return {r: RegionNote(0, 1, n, 1, 0.1, at) for r, n in counts.items()}


def test_a_crowded_region_splits_on_its_unit_and_its_cooled_quarters_merge_back() -> None:
    director = Director(2, split_above=400, merge_below=200, reshape_every_s=2.0)
    view = OwnerView(1, {"w0": 0, "w1": 1, "w2": 0, "w3": 1})
    notes = _bodies({"w0": 10, "w1": 300, "w2": 10, "w3": 10})
    plan = director.reshape(view, notes, {"w1": 150}, BIG, NOW)  # 300 bodies + 150 players
    assert plan is not None and (plan.splits, plan.merges, plan.moving) == (("w1",), (), {})
    assert plan.owners == {"w0": 0, "w2": 0, "w3": 1, **{f"w1{q}": 1 for q in "0123"}}
    split = OwnerView(2, plan.owners)
    crowded = _bodies({"w10": 100, "w11": 100, "w12": 50, "w13": 50, "w0": 10, "w2": 10,
                       "w3": 10}, NOW + 1)
    assert director.reshape(split, crowded, {"w1": 150}, BIG, NOW + 1) is None  # too soon
    assert director.reshape(split, crowded, {"w1": 150}, BIG, NOW + 3) is None  # 450 > 200
    quiet = _bodies({f"w1{q}": 20 for q in "0123"} | {"w0": 10, "w2": 10, "w3": 10}, NOW + 5)
    merged = director.reshape(split, quiet, {}, BIG, NOW + 5)
    assert merged is not None and merged.merges == ("w1",)
    assert merged.owners == {"w0": 0, "w1": 1, "w2": 0, "w3": 1}


def test_quarters_on_two_units_do_not_merge_and_no_region_gets_narrower_than_four_halos(
        ) -> None:
    director = Director(2, split_above=400, merge_below=200, reshape_every_s=0.0)
    view = OwnerView(1, {"w0": 0, "w1": 0, "w2": 1, "w3": 1})
    assert director.reshape(view, _bodies(dict.fromkeys(view.owners, 1)), {}, BIG, NOW) is None
    deepest = OwnerView(2, {"w01230": 0})  # 312.5 wide: halving it would leave 156 < 256
    plan = director.reshape(deepest, _bodies({"w01230": 5000}), {}, BIG, NOW + 1)
    assert plan is not None and "w01230" in plan.owners and "w01230" not in plan.splits


def test_players_reported_under_a_split_region_are_shared_among_its_quarters() -> None:
    director = Director(1, split_above=400, merge_below=200, reshape_every_s=0.0)
    view = OwnerView(1, {"w0": 0, "w2": 0, "w3": 0, **{f"w1{q}": 0 for q in "0123"}})
    notes = _bodies(dict.fromkeys(view.owners, 0))
    plan = director.reshape(view, notes, {"w1": 2000}, BIG, NOW)  # 500 a quarter: all split
    assert plan is not None and plan.splits == ("w10", "w11", "w12", "w13")


def test_regions_named_finer_than_the_director_would_split_are_kept_not_refused() -> None:
    director = Director(1, split_above=400, merge_below=200, reshape_every_s=0.0)
    fine = "w0123012"  # seven levels: 78 units wide in this world
    plan = director.reshape(OwnerView(1, {}), _bodies({fine: 1000}), {}, BIG, NOW)
    assert plan is not None and fine in plan.owners and plan.splits == ()


def test_a_region_whose_step_costs_more_than_a_units_budget_splits_whatever_it_holds(
        ) -> None:
    director = Director(2, split_above=400, merge_below=200, reshape_every_s=0.0,
                        unit_budget_ms=4.0)
    view = OwnerView(1, {"w0": 0, "w1": 0, "w2": 1, "w3": 1})
    notes = {r: RegionNote(0, 1, 40, 1, 0.5, NOW, cost_ms=0.5) for r in view.owners}
    notes["w3"] = RegionNote(1, 1, 60, 1, 6.0, NOW, cost_ms=6.0)  # a pile-up: 6 ms a step
    director.observe(notes)
    plan = director.reshape(view, notes, {}, BIG, NOW)
    assert plan is not None and plan.splits == ("w3",)
    assert all(plan.owners[f"w3{q}"] == 1 for q in "0123")
