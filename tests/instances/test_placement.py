"""Session placement with affinity and bounded loads: properties over any weights and any
order of sessions, joins and leaves (hypothesis), and the edge cases by name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InvalidRequest
from app.instances.placement import EPSILON, Move, Placement, score, weight

WEIGHTS = st.lists(st.floats(min_value=1.0, max_value=40.0), min_size=1, max_size=300)
INSTANCES = st.integers(min_value=1, max_value=8)


def placed(weights: list[float], instances: int, epsilon: float = EPSILON) -> Placement:
    placement = Placement(epsilon=epsilon)
    for n in range(instances):
        placement.join(f"i{n}")
    for k, load in enumerate(weights):
        placement.place(f"s{k}", load)
    return placement


def check(placement: Placement) -> None:
    """Every session on exactly one live instance; each instance's load is its sessions'."""
    assert set(placement.where.values()) <= set(placement.loads)
    assert set(placement.where) == set(placement.weights)
    for instance, load in placement.loads.items():
        mine = sum(w for s, w in placement.weights.items() if placement.where[s] == instance)
        assert load == pytest.approx(mine, abs=1e-6)


def bounded(placement: Placement) -> bool:
    heaviest = max(placement.weights.values(), default=0.0)
    top = (1 + placement.epsilon) * placement.mean + heaviest
    return max(placement.loads.values()) <= top + 1e-6


@settings(max_examples=150, deadline=None)
@given(WEIGHTS, INSTANCES)
def test_every_session_is_on_one_live_instance_within_the_load_bound(
        weights: list[float], instances: int) -> None:
    placement = placed(weights, instances)
    check(placement)
    assert bounded(placement)


@settings(max_examples=150, deadline=None)
@given(WEIGHTS, INSTANCES)
def test_a_join_moves_sessions_only_to_the_new_instance_about_its_share(
        weights: list[float], instances: int) -> None:
    placement = placed(weights, instances)
    before = dict(placement.where)
    moves = placement.join("new")
    check(placement)
    assert all(m.target == "new" and m.source == before[m.session] for m in moves)
    assert {s for s, i in placement.where.items() if before[s] != i} == {
        m.session for m in moves}
    moved = sum(placement.weights[m.session] for m in moves)
    assert moved <= placement.mean + 1e-6  # at most its share of the load


@settings(max_examples=150, deadline=None)
@given(WEIGHTS, st.integers(min_value=2, max_value=8), st.data())
def test_a_leave_moves_only_the_leavers_sessions_and_keeps_the_bound(
        weights: list[float], instances: int, data: st.DataObject) -> None:
    placement = placed(weights, instances)
    leaver = f"i{data.draw(st.integers(min_value=0, max_value=instances - 1))}"
    before = dict(placement.where)
    moves = placement.leave(leaver)
    check(placement)
    assert leaver not in placement.loads
    assert {m.session for m in moves} == {s for s, i in before.items() if i == leaver}
    assert all(placement.where[s] == before[s] for s in before if before[s] != leaver)
    assert bounded(placement)


@settings(max_examples=100, deadline=None)
@given(WEIGHTS, INSTANCES, st.data())
def test_after_closes_a_rebalance_brings_every_instance_back_under_the_bound(
        weights: list[float], instances: int, data: st.DataObject) -> None:
    placement = placed(weights, instances)
    closing = data.draw(st.sets(st.sampled_from(sorted(placement.where))))
    for session in closing:
        placement.close(session)
    placement.rebalance()
    check(placement)
    assert bounded(placement)


def test_a_placed_session_stays_on_its_instance_whatever_its_new_weight() -> None:
    placement = placed([1.0] * 40, 4)
    home = placement.where["s3"]
    assert placement.place("s3", 9.0) is None
    assert placement.where["s3"] == home and placement.weights["s3"] == 9.0
    check(placement)


def test_without_crowding_a_session_goes_to_the_instance_ranked_first() -> None:
    placement = placed([], 5)
    move = placement.place("alone", 1.0)
    assert move == Move("alone", None, max(placement.loads, key=lambda i: score("alone", i)))


def test_a_few_hot_sessions_do_not_overload_one_instance() -> None:
    loads = [weight(players=64, activity_hz=20.0)] * 6 + [weight(players=1)] * 600
    placement = placed(loads, 4)
    assert placement.max_over_mean() <= 1 + EPSILON + max(loads) / placement.mean


def test_ten_thousand_sessions_on_four_instances_balance_within_five_percent() -> None:
    placement = placed([weight(players=p % 8 + 1, activity_hz=p % 5)
                        for p in range(10_000)], 4)
    assert placement.max_over_mean() <= 1.05


def test_bad_requests_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match="instances"):
        Placement().place("s", 1.0)
    placement = placed([1.0, 1.0], 1)
    with pytest.raises(InvalidRequest, match="load"):
        placement.place("s9", 0.0)
    with pytest.raises(InvalidRequest, match="already"):
        placement.join("i0")
    with pytest.raises(InvalidRequest, match="not placed"):
        placement.leave("nope")
    with pytest.raises(InvalidRequest, match="last instance"):
        placement.leave("i0")
    with pytest.raises(InvalidRequest, match="epsilon"):
        Placement(epsilon=-1.0)
    assert placement.where == {"s0": "i0", "s1": "i0"}  # nothing lost
