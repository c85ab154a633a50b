"""Level of detail: players' regions every frame whatever the load, their neighbours at the
near rate, the rest at the far rate, spread over the frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.detail import (
    MAX_STEP_MS,
    DetailRates,
    due,
    frame_steps,
    region_rates,
    step_rates,
    touching,
)
from app.physics.partition import ROOT, Partition

SIZE = 1000.0
RATES = DetailRates(frame_hz=60.0, near_hz=20.0, far_hz=2.0, near_hops=1)


def _grid(levels: int) -> Partition:
    partition = Partition(SIZE, split_above=8, merge_below=4, max_depth=levels)
    for _ in range(levels):
        for region in partition.regions():
            partition.split(region)
    return partition


@settings(max_examples=60, deadline=None)
@given(st.sets(st.integers(0, 15), max_size=6), st.floats(min_value=0.01, max_value=1.0))
def test_a_region_with_players_steps_every_frame_however_far_detail_is_lowered(
        crowded: set[int], lowered: float) -> None:
    partition = _grid(2)  # 16 regions
    regions = partition.regions()
    players = {regions[i]: 3 for i in crowded}
    rates = step_rates(partition, players, RATES, lowered)
    for region in regions:
        if region in players:
            assert rates[region] == RATES.frame_hz
            assert all(region in due(rates, f, RATES.frame_hz) for f in range(120))
        else:
            near = any(n in players for n in partition.neighbours(region))
            assert rates[region] == (RATES.near_hz if near else RATES.far_hz) * lowered


def test_a_second_of_frames_steps_each_region_at_its_rate_spread_over_the_frames() -> None:
    partition = _grid(3)  # 64 regions
    corner = partition.region_of(10.0, 10.0)
    rates = step_rates(partition, {corner: 5}, RATES)
    counts = dict.fromkeys(rates, 0)
    per_frame = []
    for frame in range(60):
        stepping = due(rates, frame, RATES.frame_hz)
        per_frame.append(len(stepping))
        for region in stepping:
            counts[region] += 1
    assert counts[corner] == 60
    assert {counts[n] for n in partition.neighbours(corner)} == {20}
    far = [r for r in rates if r != corner and r not in partition.neighbours(corner)]
    assert {counts[r] for r in far} == {2}
    assert max(per_frame) < 1 + 3 + len(far)  # the far regions do not all share a frame


def test_near_hops_reach_further_and_a_far_rate_of_zero_sleeps() -> None:
    partition = _grid(3)
    corner = partition.region_of(10.0, 10.0)
    wide = step_rates(partition, {corner: 1}, DetailRates(near_hops=2, far_hz=0.0))
    assert sum(1 for r in wide.values() if r == 20.0) == 8  # two rings around a corner
    asleep = [r for r, hz in wide.items() if hz == 0.0]
    assert asleep and not any(r in due(wide, f, 60.0) for f in range(120) for r in asleep)


def test_an_empty_world_steps_its_regions_at_the_far_rate() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4)
    assert step_rates(partition, {}, RATES) == {ROOT: RATES.far_hz}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"frame_hz": 0.0}, "frame_hz"),
    ({"near_hz": 61.0}, "near_hz"),
    ({"far_hz": 30.0}, "far_hz"),
    ({"near_hops": -1}, "near_hops"),
])
def test_bad_rates_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        DetailRates(**kwargs)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_a_lowering_factor_outside_zero_to_one_is_refused() -> None:
    with pytest.raises(InvalidRequest) as caught:
        step_rates(_grid(1), {}, RATES, lowered=0.0)
    assert caught.value.field == "lowered"


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 3), st.sets(st.integers(0, 63), max_size=5))
def test_names_alone_give_the_partitions_neighbours_and_rates(levels: int,
                                                              crowded: set[int]) -> None:
    partition = _grid(levels)
    regions = partition.regions()
    assert touching(tuple(regions)) == {r: frozenset(partition.neighbours(r)) for r in regions}
    players = {regions[i % len(regions)]: 3 for i in crowded}
    assert region_rates(regions, players, RATES) == step_rates(partition, players, RATES)


def test_a_name_off_the_quadtree_has_no_neighbours() -> None:
    assert touching(("arena", "w0", "w1")) == {
        "arena": frozenset(), "w0": frozenset({"w1"}), "w1": frozenset({"w0"})}
    rates = region_rates(["arena", "docks"], {"arena": 2}, RATES)
    assert rates == {"arena": RATES.frame_hz, "docks": RATES.far_hz}


def test_a_frame_steps_the_due_regions_each_by_the_time_since_its_last_step() -> None:
    rates = DetailRates(frame_hz=20.0, near_hz=10.0, far_hz=2.0, near_hops=1)
    regions = {f"w{q}{r}": 10 for q in "0123" for r in "0123"}  # a 4 x 4 grid
    players = {"w00": 4}  # the south-west corner: w01, w02, w03 touch it
    seen: dict[str, list[tuple[int, float]]] = {}
    for frame in range(40):  # two seconds
        for region, (bodies, dt_ms) in frame_steps(regions, players, frame=frame, dt_ms=50.0,
                                                   rates=rates).items():
            assert bodies == 10
            seen.setdefault(region, []).append((frame, dt_ms))
    assert [f for f, _ in seen["w00"]] == list(range(40))  # every frame, 50 ms each
    assert {dt for _, dt in seen["w00"]} == {50.0}
    assert len(seen["w03"]) == 20 and {dt for _, dt in seen["w03"]} == {100.0}
    far = seen["w33"]  # every tenth frame: 500 ms of game time due, capped at 100 ms
    assert len(far) == 4 and {dt for _, dt in far} == {MAX_STEP_MS}
    assert set(seen) == set(regions)
