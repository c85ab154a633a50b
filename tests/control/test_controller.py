"""The first controller: AI throttle from CPU over the cap, down to a floor."""

from __future__ import annotations

from app.control.controller import (
    AI_FLOOR,
    PHYSICS_DETAIL_FLOOR,
    Load,
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


def test_over_the_cap_the_detail_of_regions_without_players_is_lowered_to_a_floor() -> None:
    assert decide(Load(depths={}, cpu=0.5), cpu_cap=0.8).physics_detail == 1.0
    assert decide(Load(depths={}, cpu=0.9), cpu_cap=0.8).physics_detail == 0.5
    assert decide(Load(depths={}, cpu=1.0), cpu_cap=0.8).physics_detail == PHYSICS_DETAIL_FLOOR


def test_player_backlog_sheds_background_work() -> None:
    assert decide(Load(depths={"player": 3}, cpu=0.1), cpu_cap=0.8).shed_background


def test_decision_round_trips_through_the_hot_store() -> None:
    hot = MemoryHotStore()
    assert read_decision(hot) is None
    decision = decide(Load(depths={"ai": 7}, cpu=0.2), cpu_cap=0.8)
    write_decision(hot, decision)
    assert read_decision(hot) == decision


def test_the_ai_tier_cap_falls_at_once_and_climbs_back_a_tier_a_tick_once_cool() -> None:
    trace = [0.5, 0.85, 0.97, 0.85, 0.78, 0.70, 0.70, 0.70, 0.97]  # CPU each tick, cap 0.8
    tiers, previous = [], None
    for cpu in trace:
        previous = decide(Load(depths={}, cpu=cpu), cpu_cap=0.8, previous=previous)
        tiers.append(previous.ai_tier)
    assert tiers == ["full", "reduced", "minimal",
                     "minimal",  # over the cap still: wants reduced, not cool: holds
                     "minimal",  # under the cap but within the hysteresis: holds
                     "reduced", "full", "full",  # cool: a tier a tick
                     "minimal"]  # a spike: straight down
