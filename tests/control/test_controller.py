"""The controller: its ladder, forecast, AI tier and pool, and the log of what it changed."""

from __future__ import annotations

import pytest

from app.ai.tiers import Tier
from app.control.controller import (
    AI_FLOOR,
    HORIZON_TICKS,
    PHYSICS_DETAIL_FLOOR,
    Decision,
    Load,
    ai_slots,
    background_slots,
    changed,
    decide,
    read_decision,
    write_decision,
)
from app.players.hotstore import MemoryHotStore


def test_below_the_cap_ai_runs_at_full_rate() -> None:
    decision = decide(Load(depths={}, cpu=0.5), cpu_cap=0.8)
    assert decision.ai_level == 1.0 and not decision.shed_background


def test_over_the_cap_ai_is_throttled_in_proportion() -> None:
    decision = decide(Load(depths={}, cpu=0.9), cpu_cap=0.8)
    assert decision.ai_level == 0.5 and decision.shed_background


def test_throttle_never_goes_below_the_floor() -> None:
    assert decide(Load(depths={}, cpu=1.0), cpu_cap=0.8).ai_level == AI_FLOOR


def test_past_halfway_to_a_full_machine_the_detail_of_empty_regions_falls_to_a_floor() -> None:
    assert decide(Load(depths={}, cpu=0.5), cpu_cap=0.8).physics_detail == 1.0
    assert decide(Load(depths={}, cpu=0.9), cpu_cap=0.8).physics_detail == 1.0  # AI only
    assert decide(Load(depths={}, cpu=0.95), cpu_cap=0.8).physics_detail == 0.5
    assert decide(Load(depths={}, cpu=1.0), cpu_cap=0.8).physics_detail == PHYSICS_DETAIL_FLOOR


@pytest.mark.parametrize(("cpu", "background", "ai", "physics"), [
    (0.50, False, False, False),
    (0.75, True, False, False),  # near the cap: background gives way first
    (0.85, True, True, False),  # over it: then AI
    (0.97, True, True, True),  # far over: then the detail of empty regions
])
def test_the_ladder_degrades_background_then_ai_then_physics_detail(
        cpu: float, background: bool, ai: bool, physics: bool) -> None:
    decision = decide(Load(depths={"player": 40, "transactions": 9}, cpu=cpu), cpu_cap=0.8)
    assert decision.shed_background is background and (decision.background_level < 1) is background
    assert (decision.ai_level < 1, decision.ai_tier != "full") == (ai, ai)
    assert (decision.physics_detail < 1) is physics


def test_decision_round_trips_through_the_hot_store() -> None:
    hot = MemoryHotStore()
    assert read_decision(hot) is None
    decision = decide(Load(depths={"ai": 7}, cpu=0.2), cpu_cap=0.8)
    write_decision(hot, decision)
    assert read_decision(hot) == decision


def test_the_ai_tier_cap_falls_at_once_and_climbs_back_a_tier_a_tick_once_cool() -> None:
    trace = [0.5, 0.85, 0.97, 0.85, 0.78, 0.70, 0.70, 0.70, 0.97]  # CPU each tick, cap 0.8
    tiers = [d.ai_tier for d in replay(trace, horizon=0.0)]  # reactive: hysteresis alone
    assert tiers == ["full", "reduced", "minimal",
                     "minimal",  # over the cap still: wants reduced, not cool: holds
                     "minimal",  # under the cap but within the hysteresis: holds
                     "reduced", "full", "full",  # cool: a tier a tick
                     "minimal"]  # a spike: straight down


def replay(trace: list[float], horizon: float = HORIZON_TICKS,
           background_slots_max: int = 0) -> list[Decision]:
    """The controller's decisions on a recorded CPU trace (one value a tick, cap 0.8)."""
    decisions: list[Decision] = []
    for cpu in trace:
        previous = decisions[-1] if decisions else None
        decisions.append(decide(Load(depths={}, cpu=cpu), cpu_cap=0.8, previous=previous,
                                horizon=horizon, background_slots_max=background_slots_max))
    return decisions


def first_below_full(decisions: list[Decision]) -> int:
    return next(k for k, d in enumerate(decisions) if d.ai_tier != "full")


# Recorded traces: CPU a tick, as the controller read it.
SPIKE = [0.50, 0.52, 0.50, 0.55, 0.62, 0.69, 0.76, 0.83, 0.90, 0.95, 0.96, 0.94,
         0.80, 0.65, 0.55, 0.50, 0.50, 0.50, 0.50]
NOISY_CALM = [0.62, 0.66, 0.61, 0.67, 0.63, 0.60, 0.66, 0.64, 0.61, 0.65, 0.62, 0.66]


def test_the_forecast_throttles_a_rising_load_before_the_reactive_controller_would() -> None:
    predictive, reactive = replay(SPIKE), replay(SPIKE, horizon=0.0)
    assert first_below_full(predictive) < first_below_full(reactive) == 7  # 0.83 > 0.8
    assert predictive[6].cpu < 0.8 < predictive[6].cpu_ahead  # acted on what was coming
    assert min(d.ai_level for d in predictive[:9]) < min(d.ai_level for d in reactive[:9])


def test_both_recover_full_ai_once_the_load_has_fallen() -> None:
    for decisions in (replay(SPIKE), replay(SPIKE, horizon=0.0)):
        assert decisions[-1].ai_tier == "full" and decisions[-1].ai_level == 1.0
        assert decisions[-1].physics_detail == 1.0


def test_a_calm_load_with_noise_never_throttles() -> None:
    assert {d.ai_tier for d in replay(NOISY_CALM)} == {"full"}
    assert {d.ai_level for d in replay(NOISY_CALM)} == {1.0}


def test_a_run_of_ticks_with_late_player_batches_degrades_with_cpu_to_spare() -> None:
    # CPU calm all along; late batches (past the late bar) counted so far, tick by tick:
    # none, then 10 a tick for four ticks, then none again.
    late_totals = [0, 0, 10, 20, 30, 40, 40, 40, 40, 40, 40]
    decisions: list[Decision] = []
    for total in late_totals:
        load = Load(depths={}, cpu=0.4, late_total=total)
        decisions.append(decide(load, cpu_cap=0.8, previous=decisions[-1] if decisions else None))
    assert [d.late_streak for d in decisions] == [0, 0, 1, 2, 3, 4, 0, 0, 0, 0, 0]
    assert [d.ai_tier for d in decisions] == ["full", "full", "reduced", "reduced", "minimal",
                                              "minimal", "reduced", "full", "full", "full",
                                              "full"]
    assert decisions[4].physics_detail < 1.0 == decisions[3].physics_detail  # third rung
    assert all(d.shed_background for d in decisions[2:6])
    assert decisions[2].strain == pytest.approx(0.85) and decisions[-1].strain == 0.4


def test_the_ai_slots_follow_the_tier_when_managed() -> None:
    assert [ai_slots(tier, 4) for tier in (Tier.FULL, Tier.REDUCED, Tier.MINIMAL)] == [4, 2, 1]
    assert [ai_slots(tier, 1) for tier in (Tier.FULL, Tier.REDUCED, Tier.MINIMAL)] == [1, 1, 1]
    assert ai_slots(Tier.MINIMAL, 0) == 0  # not managed
    calm = decide(Load(depths={}, cpu=0.3), cpu_cap=0.8, ai_slots_max=4)
    hot = decide(Load(depths={}, cpu=1.0), cpu_cap=0.8, previous=calm, ai_slots_max=4)
    assert (calm.ai_slots, hot.ai_slots) == (4, 1)
    assert decide(Load(depths={}, cpu=1.0), cpu_cap=0.8).ai_slots == 0


def test_the_background_slots_drop_to_one_while_background_gives_way_and_come_back() -> None:
    decisions = replay(SPIKE, background_slots_max=3)
    shed = [d.shed_background for d in decisions]
    assert True in shed and not shed[0] and not shed[-1]
    assert [d.background_slots for d in decisions] == [1 if s else 3 for s in shed]
    line = changed(decisions[shed.index(True) - 1], decisions[shed.index(True)])
    assert line is not None and "background_slots 3 -> 1" in line
    assert {d.background_slots for d in replay(SPIKE)} == {0}  # not managed
    assert [background_slots(True, n) for n in (0, 1, 2)] == [0, 0, 1]  # one: nothing to take


def test_a_changed_action_is_named_with_the_inputs_it_acted_on() -> None:
    calm = decide(Load(depths={"ai": 3}, cpu=0.3), 0.8)
    assert changed(calm, decide(Load(depths={"ai": 3}, cpu=0.3), 0.8, calm)) is None
    hot = decide(Load(depths={"ai": 40}, cpu=0.97), 0.8, calm)
    line = changed(calm, hot)
    assert line is not None
    assert "shed_background False -> True" in line and "ai_tier full -> " in line
    assert "cpu 0.97" in line and "'ai': 40" in line
    first = changed(None, calm)
    assert first is not None and "ai_tier - -> full" in first
