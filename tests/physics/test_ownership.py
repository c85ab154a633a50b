"""Regions owned by physics units: one owner each, contiguous runs along the Hilbert curve,
the balance bound, and rebalancing that moves only what a cut passed over."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.ownership import Assignment, assign, curve_order, max_over_mean, rebalance
from app.physics.partition import ROOT, Partition

SIZE = 1000.0
coordinate = st.floats(min_value=0.0, max_value=SIZE, allow_nan=False)
crowd = st.lists(st.tuples(coordinate, coordinate), min_size=0, max_size=150)
cost = st.floats(min_value=0.0, max_value=100.0, allow_nan=False)


def _partition(points: list[tuple[float, float]]) -> Partition:
    partition = Partition(SIZE, split_above=6, merge_below=3, max_depth=5)
    for _ in range(6):
        partition.adapt(partition.tally(points))
    return partition


def _costs(partition: Partition, data: st.DataObject) -> dict[str, float]:
    return {r: data.draw(cost, label=r) for r in partition.regions()}


@settings(max_examples=80, deadline=None)
@given(crowd, st.integers(1, 7), st.data())
def test_every_region_has_one_owner_and_each_unit_a_run_along_the_curve(
        points: list[tuple[float, float]], units: int, data: st.DataObject) -> None:
    partition = _partition(points)
    assignment = assign(partition, _costs(partition, data), units)
    owners = assignment.owners(partition)
    assert sorted(owners) == partition.regions()
    along = [owners[region] for _, region in curve_order(partition)]
    assert all(0 <= unit < units for unit in along)
    assert along == sorted(along)  # contiguous runs, unit 0 first


@settings(max_examples=80, deadline=None)
@given(crowd, st.integers(1, 7), st.data())
def test_no_unit_carries_more_than_the_mean_plus_the_costliest_region(
        points: list[tuple[float, float]], units: int, data: st.DataObject) -> None:
    partition = _partition(points)
    costs = _costs(partition, data)
    load = assign(partition, costs, units).unit_costs(partition, costs)
    assert max(load) <= sum(costs.values()) / units + max(costs.values()) + 1e-9


@settings(max_examples=60, deadline=None)
@given(crowd, st.data())
def test_a_split_regions_quarters_take_its_place_on_the_curve(
        points: list[tuple[float, float]], data: st.DataObject) -> None:
    partition = _partition(points)
    region = data.draw(st.sampled_from([r for r in partition.regions()
                                        if len(r) - 1 < partition.max_depth]))
    before = [r for _, r in curve_order(partition)]
    children = partition.split(region)
    after = [r for _, r in curve_order(partition)]
    at = before.index(region)
    assert sorted(after[at:at + 4]) == list(children)
    assert after[:at] + after[at + 4:] == before[:at] + before[at + 1:]


def test_consecutive_regions_along_the_curve_share_an_edge() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4, max_depth=3)
    for _ in range(3):  # a uniform 8 x 8 grid
        for region in partition.regions():
            partition.split(region)
    order = [partition.bounds(r) for _, r in curve_order(partition)]
    assert len(order) == 64
    for a, b in itertools.pairwise(order):
        shared_x = min(a.x1, b.x1) - max(a.x0, b.x0)
        shared_y = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert (shared_x > 0 and shared_y == 0) or (shared_y > 0 and shared_x == 0)


@settings(max_examples=80, deadline=None)
@given(crowd, st.integers(2, 6), st.data())
def test_rebalancing_moves_only_the_regions_a_cut_passed_over(
        points: list[tuple[float, float]], units: int, data: st.DataObject) -> None:
    partition = _partition(points)
    old_costs, new_costs = _costs(partition, data), _costs(partition, data)
    current = assign(partition, old_costs, units)
    new, moved = rebalance(partition, current, new_costs, tolerance=0.10)
    if max_over_mean(partition, current, new_costs) <= 1.10:
        assert new is current and moved == []
        return
    crossed = [region for place, region in curve_order(partition)
               if any(min(a, b) <= place < max(a, b)
                      for a, b in zip(current.cuts, new.cuts, strict=True))]
    assert moved == crossed
    load = new.unit_costs(partition, new_costs)
    assert max(load) <= sum(new_costs.values()) / units + max(new_costs.values()) + 1e-9


def test_rebalancing_follows_a_crowd_that_moves_across_the_world() -> None:
    partition = Partition(SIZE, split_above=1000, merge_below=10, max_depth=3)
    for region in [ROOT, "w0", "w1", "w2", "w3"]:
        partition.split(region)
    west = {r: (10.0 if partition.bounds(r).x1 <= SIZE / 2 else 1.0) for r in partition.regions()}
    east = {r: (1.0 if partition.bounds(r).x1 <= SIZE / 2 else 10.0) for r in partition.regions()}
    current = assign(partition, west, 2)
    assert max_over_mean(partition, current, west) <= 1.10
    assert max_over_mean(partition, current, east) > 1.10  # the crowd went east
    new, moved = rebalance(partition, current, east)
    assert moved and max_over_mean(partition, new, east) <= 1.10
    assert rebalance(partition, new, east) == (new, [])  # settled: nothing moves again


def test_with_nothing_costing_anything_regions_are_shared_by_count() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4)
    partition.split(ROOT)
    owners = assign(partition, {}, 2).owners(partition)
    assert sorted(owners.values()) == [0, 0, 1, 1]
    assert assign(partition, {}, 6).units == 6  # more units than regions: some idle


@pytest.mark.parametrize(("call", "field"), [
    (lambda p: assign(p, {}, 0), "units"),
    (lambda p: assign(p, {"w": -1.0}, 2), "costs.w"),
    (lambda p: assign(p, {"w": float("nan")}, 2), "costs.w"),
    (lambda p: rebalance(p, Assignment(2, (0,)), {}, tolerance=-0.1), "tolerance"),
])
def test_bad_input_is_refused_naming_the_field(call: object, field: str) -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4)
    with pytest.raises(InvalidRequest) as caught:
        call(partition)  # type: ignore[operator]
    assert caught.value.field == field
