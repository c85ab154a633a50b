"""The world's partition: every position in exactly one region, neighbours symmetric, a
split undone by a merge, hysteresis, and bad input named."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.physics.partition import ROOT, Partition

SIZE = 1000.0
coordinate = st.floats(min_value=0.0, max_value=SIZE, allow_nan=False)
positions = st.lists(st.tuples(coordinate, coordinate), max_size=120)
# crowds: positions bunched around a few centres, so that some regions split deep
crowds = st.lists(st.tuples(coordinate, coordinate, st.integers(1, 60),
                            st.floats(min_value=0.0, max_value=30.0)), max_size=4)


def _crowd(centres: list[tuple[float, float, int, float]]) -> list[tuple[float, float]]:
    out = []
    for x, y, count, spread in centres:
        for k in range(count):
            dx, dy = spread * ((k * 7919) % 13 / 13 - 0.5), spread * ((k * 104729) % 11 / 11 - 0.5)
            out.append((min(SIZE, max(0.0, x + dx)), min(SIZE, max(0.0, y + dy))))
    return out


def _adapted(points: list[tuple[float, float]], rounds: int = 6) -> Partition:
    partition = Partition(SIZE, split_above=8, merge_below=4)
    for _ in range(rounds):
        partition.adapt(partition.tally(points))
    return partition


@settings(max_examples=60, deadline=None)
@given(crowds, positions)
def test_every_position_lies_in_exactly_one_region(
        centres: list[tuple[float, float, int, float]],
        probes: list[tuple[float, float]]) -> None:
    partition = _adapted(_crowd(centres))
    regions = partition.regions()
    corners = [(x, y) for b in map(partition.bounds, regions)
               for x in (b.x0, b.x1) for y in (b.y0, b.y1)]  # every border, exactly
    for x, y in probes + corners:
        holding = [r for r in regions if _contains(partition, r, x, y)]
        assert holding == [partition.region_of(x, y)]


@settings(max_examples=60, deadline=None)
@given(crowds)
def test_the_regions_tile_the_world(centres: list[tuple[float, float, int, float]]) -> None:
    partition = _adapted(_crowd(centres))
    boxes = [partition.bounds(r) for r in partition.regions()]
    assert sum(b.area for b in boxes) == pytest.approx(SIZE * SIZE)
    for a, b in itertools.combinations(boxes, 2):
        overlap_x = min(a.x1, b.x1) - max(a.x0, b.x0)
        overlap_y = min(a.y1, b.y1) - max(a.y0, b.y0)
        assert overlap_x <= 0 or overlap_y <= 0


@settings(max_examples=60, deadline=None)
@given(crowds)
def test_neighbours_are_symmetric_and_exactly_the_regions_that_touch(
        centres: list[tuple[float, float, int, float]]) -> None:
    partition = _adapted(_crowd(centres))
    regions = partition.regions()
    for region in regions:
        near = partition.neighbours(region)
        assert region not in near
        for other in near:
            assert region in partition.neighbours(other)
        mine = partition.bounds(region)
        assert near == [r for r in regions if r != region and mine.touches(partition.bounds(r))]
        assert near or regions == [ROOT]


@settings(max_examples=60, deadline=None)
@given(crowds, st.data())
def test_a_split_followed_by_a_merge_restores_the_region(
        centres: list[tuple[float, float, int, float]], data: st.DataObject) -> None:
    partition = _adapted(_crowd(centres))
    before = partition.regions()
    region = data.draw(st.sampled_from(before))
    children = partition.split(region)
    assert region not in partition.regions() and set(children) <= set(partition.regions())
    assert all(partition.region_of(*_centre(partition, c)) == c for c in children)
    partition.merge(region)
    assert partition.regions() == before


@settings(max_examples=60, deadline=None)
@given(crowds)
def test_the_same_load_again_changes_nothing(
        centres: list[tuple[float, float, int, float]]) -> None:
    points = _crowd(centres)
    partition = _adapted(points, rounds=12)  # settled: every crowd as deep as it goes
    changes = partition.adapt(partition.tally(points))
    assert changes.splits == () and changes.merges == ()


def test_a_crowd_splits_its_regions_and_merges_them_once_it_leaves() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4, max_depth=3)
    crowd = [(100.0 + k, 100.0 + k) for k in range(20)]  # one corner of the world
    first = partition.adapt(partition.tally(crowd))
    assert first.splits == (ROOT,) and first.merges == ()
    for _ in range(5):
        partition.adapt(partition.tally(crowd))
    assert partition.region_of(110.0, 110.0) == "w000"  # as deep as max_depth lets it
    assert len(partition.regions()) == 10  # the corner split twice more, the rest not
    gone: list[tuple[float, float]] = []
    for _ in range(3):  # the crowd left: one level merged per call
        partition.adapt(partition.tally(gone))
    assert partition.regions() == [ROOT]


def test_a_load_between_the_thresholds_holds_either_way() -> None:
    partition = Partition(SIZE, split_above=10, merge_below=4)
    partition.split(ROOT)
    six = {"w0": 2.0, "w1": 2.0, "w2": 1.0, "w3": 1.0}  # 6: under the split, over the merge
    assert partition.adapt(six).merges == ()
    partition.merge(ROOT)
    assert partition.adapt({ROOT: 6.0}).splits == ()


def test_weights_count_in_the_tally() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4)
    partition.split(ROOT)
    load = partition.tally([(10.0, 10.0), (900.0, 900.0), (20.0, 20.0)], [1.0, 5.0, 2.5])
    assert load == {"w0": 3.5, "w3": 5.0}


@pytest.mark.parametrize(("kwargs", "field"), [
    ({"size": 0.0}, "size"),
    ({"split_above": -1.0}, "split_above"),
    ({"merge_below": 6.0}, "merge_below"),  # over half of split_above: it would flap
    ({"max_depth": 21}, "max_depth"),
])
def test_bad_settings_are_refused_naming_the_field(kwargs: dict[str, float], field: str) -> None:
    args = {"size": SIZE, "split_above": 10.0, "merge_below": 4.0} | kwargs
    with pytest.raises(InvalidRequest) as caught:
        Partition(**args)  # type: ignore[arg-type]
    assert caught.value.field == field


def test_bad_regions_and_positions_are_refused_and_change_nothing() -> None:
    partition = Partition(SIZE, split_above=8, merge_below=4, max_depth=1)
    partition.split(ROOT)
    for call, arg, field in [
        (partition.region_of, (SIZE + 1, 5.0), "position"),
        (partition.region_of, (float("nan"), 5.0), "position"),
        (partition.split, ("w0",), "region"),  # at max_depth
        (partition.split, ("w9",), "region"),
        (partition.merge, ("w0",), "region"),
        (partition.neighbours, ("w",), "region"),
        (partition.bounds, ("x1",), "region"),
    ]:
        with pytest.raises(InvalidRequest) as caught:
            call(*arg)
        assert caught.value.field == field
    assert partition.regions() == ["w0", "w1", "w2", "w3"]


def _contains(partition: Partition, region: str, x: float, y: float) -> bool:
    b = partition.bounds(region)
    inside_x = b.x0 <= x < b.x1 or (x == b.x1 == SIZE)
    inside_y = b.y0 <= y < b.y1 or (y == b.y1 == SIZE)
    return inside_x and inside_y


def _centre(partition: Partition, region: str) -> tuple[float, float]:
    b = partition.bounds(region)
    return (b.x0 + b.x1) / 2, (b.y0 + b.y1) / 2
