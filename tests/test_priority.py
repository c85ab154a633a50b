"""Priority: session factors, classification, critical boost, inheritance, reprioritisation."""

from __future__ import annotations

import pytest

from app.client import registry as registry_module
from app.client.registry import SessionRegistry
from app.errors import InvalidRequest
from app.priority import (
    ACTIVITY_HALF_LIFE_S,
    BANDS,
    ActivityMeter,
    Factors,
    Route,
    inherit,
    route,
    urgency,
)
from app.protocol.queues import TASK_QUEUES, Queue

UPDATE = "gamesched.player.apply_updates"


def test_every_task_is_classified_player_facing_or_background() -> None:
    facing = {t for t in TASK_QUEUES if route(t).player_facing}
    assert facing == {"gamesched.player.apply_updates", "gamesched.player.session_op",
                      "gamesched.player.session_moves", "gamesched.player.arrive",
                      "gamesched.player.void",
                      "gamesched.textbook.apply_state",
                      "gamesched.transactions.apply"} | {
        t for t, q in TASK_QUEUES.items() if q is Queue.TRANSACTIONS}
    for task, queue in TASK_QUEUES.items():
        band = BANDS[queue]
        assert band.low <= route(task).priority <= band.high


def test_player_facing_work_always_outranks_background_work() -> None:
    idle_lobby = Factors(session_type="lobby", players=1, activity_hz=0.0)
    busy = Factors(session_type="ranked", players=64, activity_hz=50.0, slack_ms=0)
    assert route(UPDATE, idle_lobby).priority < route("gamesched.ai.decide", busy).priority
    assert route(UPDATE, idle_lobby).priority < route(
        "gamesched.background.snapshot", busy).priority


@pytest.mark.parametrize(
    ("higher", "lower"),
    [
        (Factors("ranked"), Factors("lobby")),
        (Factors("casual", players=32), Factors("casual", players=1)),
        (Factors("casual", region_players=200), Factors("casual")),
        (Factors("coop", activity_hz=10), Factors("coop", activity_hz=0.1)),
        (Factors("spectator", slack_ms=5), Factors("spectator", slack_ms=500)),
    ],
)
def test_each_session_factor_raises_urgency(higher: Factors, lower: Factors) -> None:
    assert urgency(higher) > urgency(lower)
    assert route(UPDATE, higher).priority <= route(UPDATE, lower).priority


def test_urgency_is_bounded_and_saturates() -> None:
    top = Factors("ranked", players=10_000, region_players=10_000, activity_hz=1e6)
    assert urgency(top) == 1.0
    assert urgency(Factors("lobby", players=0, activity_hz=-5)) == 0.0
    assert urgency(Factors("lobby", slack_ms=-10)) == 1.0


def test_unknown_session_type_names_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        urgency(Factors("raid"))
    assert caught.value.field == "session_type"


def test_settings_weights_replace_the_defaults() -> None:
    weights = {"ranked": 0.1, "coop": 0.1, "casual": 1.0, "spectator": 0.1, "lobby": 0.1}
    assert urgency(Factors("casual", activity_hz=10), weights) > urgency(
        Factors("ranked", activity_hz=10), weights)


def test_critical_path_is_boosted_but_never_past_zero() -> None:
    f = Factors("casual", players=2, activity_hz=2)
    assert route(UPDATE, f, critical=True).priority == max(0, route(UPDATE, f).priority - 2)
    assert route(UPDATE, Factors("ranked", 64, 0, 10), critical=True).priority == 0


def test_inheritance_raises_a_dependency_to_its_dependent_and_never_lowers_it() -> None:
    low = Route("gamesched.ai.decide", Queue.AI, 8)
    high = Route(UPDATE, Queue.PLAYER, 1)
    assert inherit(low, high) == Route("gamesched.ai.decide", Queue.AI, 1)
    assert inherit(high, low) == high


def test_a_physics_task_raised_in_priority_stays_on_its_units_queue() -> None:
    frame = Route("gamesched.physics.step_frame", Queue.PHYSICS, 6, unit=3)
    raised = inherit(frame, Route(UPDATE, Queue.PLAYER, 1))
    assert (raised.priority, raised.unit, raised.queue_name) == (1, 3, "physics.3")
    assert Route(UPDATE, Queue.PLAYER, 1).queue_name == "player"


def test_activity_decays_with_its_half_life() -> None:
    meter = ActivityMeter(at=0.0)
    for i in range(100):
        meter.hit(now=i * 0.1)  # 10 inputs per second for 10 s
    assert 9.0 < meter.value(now=9.9) < 11.0
    later = meter.value(now=9.9 + ACTIVITY_HALF_LIFE_S)
    assert later == pytest.approx(meter.value(now=9.9) / 2)


def test_reprioritisation_takes_effect_on_the_next_work() -> None:
    registry = SessionRegistry()
    registry.open("s", "lobby", 1, "r1")
    before = route(UPDATE, registry.factors("s")).priority
    registry.change("s", session_type="ranked", players=10)  # the match starts
    after = route(UPDATE, registry.factors("s")).priority
    assert after < before
    registry.change("s", session_type="lobby", players=1)  # back to the lobby
    assert route(UPDATE, registry.factors("s")).priority == before


def test_registry_tracks_players_per_region_and_refuses_unknown_sessions() -> None:
    registry = SessionRegistry()
    registry.open("a", "casual", 3, "r1")
    registry.open("b", "casual", 2, "r1")
    registry.open("a", "casual", 4, "r2")  # reopened elsewhere: moved, not doubled
    assert (registry.region_players("r1"), registry.region_players("r2")) == (2, 4)
    registry.change("b", region="r2")
    assert (registry.region_players("r1"), registry.region_players("r2")) == (0, 6)
    registry.close("b")
    assert registry.region_players("r2") == 4
    with pytest.raises(InvalidRequest, match="session_id"):
        registry.factors("b")


def _step(factors: Factors) -> int:
    return route(UPDATE, factors).priority


def test_registry_accepts_growing_sequences_only_and_counts_activity() -> None:
    registry = SessionRegistry()
    registry.open("a", "casual", 1, None)
    registry.accept("a", 1, _step)
    quiet = registry.factors("a").activity_hz
    registry.accept("a", 2, _step)
    with pytest.raises(InvalidRequest, match="seq"):
        registry.accept("a", 2, _step)
    assert registry.factors("a").activity_hz > quiet
    registry.open("a", "ranked", 1, None)  # reopening keeps the sequence
    with pytest.raises(InvalidRequest, match="seq"):
        registry.accept("a", 1, _step)


def test_cached_update_step_is_dropped_the_moment_factors_change() -> None:
    registry = SessionRegistry()
    registry.open("a", "lobby", 1, None)
    lobby = registry.accept("a", 1, _step).step
    assert registry.accept("a", 2, lambda f: -1).step == lobby  # cached within its time to live
    registry.change("a", session_type="ranked", players=20)
    assert registry.accept("a", 3, _step).step < lobby


def test_cached_update_step_is_recomputed_once_its_time_to_live_is_up(
        monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1000.0]
    monkeypatch.setattr("time.monotonic", lambda: now[0])  # the registry's clock, by hand
    registry = SessionRegistry()
    registry.open("a", "casual", 1, None)
    calls: list[Factors] = []

    def step_of(factors: Factors) -> int:
        calls.append(factors)
        return len(calls)

    assert registry.accept("a", 1, step_of).step == 1
    now[0] += registry_module.STEP_TTL_S * 0.9
    assert registry.accept("a", 2, step_of).step == 1 and len(calls) == 1
    now[0] += registry_module.STEP_TTL_S * 0.2  # past its time to live
    assert registry.accept("a", 3, step_of).step == 2
    assert calls[1].activity_hz > calls[0].activity_hz  # priced with the activity since
