"""Level of detail: players' regions every frame whatever the load, their neighbours at the
near rate, the rest at the far rate, spread over the frames."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.detail import DetailRates, due, step_rates
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
