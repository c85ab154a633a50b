"""Eager wiring only: each task decodes its arguments and calls its service.

Eager mode is an emulation; routing, priority, acks and retries are proven by the live
tier (marker ``live``) on a real broker.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

import prometheus_client

from app.ai import Decision, Npc, Tier
from app.control import dilation
from app.control.controller import read_decision
from app.observe.metrics import ANOMALY_KINDS, metrics
from app.observe.recorder import MemoryRecorder
from app.physics.owners import fallback_unit
from app.physics.units import unit as physics_unit
from app.players import sessions
from app.settings import Settings
from app.tasking.base import GameTask
from app.tasking.factory import GameschedCelery, create_app


def _run(app: GameschedCelery, name: str, *args: object) -> object:
    app.loader.import_default_modules()
    result = app.tasks[name].apply(args=list(args))
    assert result.successful(), result.traceback
    return result.result


def test_ai_task_calls_the_decision_service(eager_app: GameschedCelery) -> None:
    attack = _run(eager_app, "gamesched.ai.decide", "n", [0.0, 0.0], [[10.0, 0.0]])
    assert attack == ["attack", 10.0, 0.0]
    chase = _run(eager_app, "gamesched.ai.decide", "n", [50.0, 50.0], [[250.0, 50.0]])
    assert chase == ["chase", 150.0, 50.0]  # the next cell (of 100 units) toward the player
    patrol = _run(eager_app, "gamesched.ai.decide", "n", [50.0, 50.0], [], "minimal")
    assert patrol[0] == "patrol"


def test_ai_batch_task_decides_each_npc_in_order(eager_app: GameschedCelery) -> None:
    batch = [["a", [0.0, 0.0], [[10.0, 0.0]]], ["b", [0.0, 0.0], []],
             ["c", [0.0, 0.0], [[100.0, 0.0], [900.0, 0.0]], "reduced"]]
    actions = [move[0] for move in _run(eager_app, "gamesched.ai.decide_batch", batch)]
    assert actions == ["attack", "patrol", "chase"]


def test_a_games_own_brain_decides_in_the_ai_tasks(eager_app: GameschedCelery) -> None:
    seen: list[Npc] = []

    class Still:
        def decide(self, npc: Npc) -> Decision:
            seen.append(npc)
            return Decision("wait", npc.position)

    eager_app.runtime.__dict__["brain"] = Still()
    batch = [["a", [5.0, 6.0], [[9000.0, 0.0]]], ["b", [1.0, 2.0], [], "full"]]
    assert _run(eager_app, "gamesched.ai.decide_batch", batch) == [
        ["wait", 5.0, 6.0], ["wait", 1.0, 2.0]]
    assert [(n.npc_id, n.tier) for n in seen] == [("a", Tier.MINIMAL), ("b", Tier.FULL)]


def test_physics_task_steps_a_persistent_region(eager_app: GameschedCelery) -> None:
    unit = fallback_unit("eager-r", eager_app.runtime.settings.physics_units)
    step = "gamesched.physics.step_region"
    assert _run(eager_app, step, "eager-r", 1, 16.0, 25, unit) == 25
    assert _run(eager_app, step, "eager-r", 2, 16.0, 10, unit) == 25  # none removed
    assert _run(eager_app, step, "eager-r", 3, 16.0, 10, 1 - unit) == 0  # not that unit's
    assert physics_unit(unit).spaces["eager-r"].gs_steps == 2  # one space, stepped twice


def test_physics_frame_task_steps_each_of_its_regions(eager_app: GameschedCelery) -> None:
    units = eager_app.runtime.settings.physics_units
    mine = [r for r in (f"eager-f{i}" for i in range(20)) if fallback_unit(r, units) == 0]
    frame = [[mine[0], 12], [mine[1], 30]]
    assert _run(eager_app, "gamesched.physics.step_frame", 1, 16.0, frame) == 42
    assert _run(eager_app, "gamesched.physics.step_frame", 2, 16.0, [[mine[0], 5]]) == 12
    assert _run(eager_app, "gamesched.physics.step_region", mine[1], 3, 16.0, 30) == 30
    spaces = physics_unit(0).spaces
    assert (spaces[mine[0]].gs_steps, spaces[mine[1]].gs_steps) == (2, 2)


def test_a_frame_with_a_region_it_could_not_step_is_recorded_not_done(
        eager_settings: Settings) -> None:
    """A frame partly run is no frame: the simulator counts it over budget."""
    app = create_app(eager_settings.model_copy(update={"record_latency": True}),
                     task_always_eager=True, task_eager_propagates=True)
    app.runtime.recorder.drain()
    units = app.runtime.settings.physics_units
    mine, other = ([r for r in (f"eager-p{i}" for i in range(20)) if fallback_unit(r, units) == u]
                   for u in (0, 1))
    assert _run(app, "gamesched.physics.step_frame", 1, 16.0, [[mine[0], 4]], 0) == 4
    assert _run(app, "gamesched.physics.step_frame", 2, 16.0, [[mine[0], 4], [other[0], 4]],
                0) == 4
    assert [e.ok for e in app.runtime.recorder.drain()] == [True, False]


def test_a_units_anomalies_are_counted_by_kind_from_zero(eager_app: GameschedCelery) -> None:
    registry = prometheus_client.REGISTRY
    metrics()  # created: every kind has its series before the first anomaly

    def count(kind: str) -> float:
        value = registry.get_sample_value("gamesched_physics_anomalies_total", {"kind": kind})
        assert value is not None, kind
        return value

    before = {kind: count(kind) for kind in ANOMALY_KINDS}
    region = next(r for r in (f"eager-a{i}" for i in range(20))
                  if fallback_unit(r, eager_app.runtime.settings.physics_units) == 0)
    assert _run(eager_app, "gamesched.physics.step_frame", 1, 16.0, [[region, 3]], 0) == 3
    body = next(iter(physics_unit(0).spaces[region].bodies))
    body.velocity = (math.nan, 0.0)  # a solver blow-up
    assert _run(eager_app, "gamesched.physics.step_frame", 2, 16.0, [[region, 3]], 0) == 2
    assert count("non_finite") == before["non_finite"] + 1
    assert all(count(k) == before[k] for k in ANOMALY_KINDS if k != "non_finite")


def test_a_region_at_rest_is_counted_as_a_rested_step(eager_app: GameschedCelery) -> None:
    def rested() -> float:
        value = prometheus_client.REGISTRY.get_sample_value(
            "gamesched_physics_steps_rested_total")
        assert value is not None
        return value

    metrics()
    region = next(r for r in (f"eager-z{i}" for i in range(20))
                  if fallback_unit(r, eager_app.runtime.settings.physics_units) == 0)
    before = rested()
    for frame in (1, 2, 3):  # nothing in it: at rest after its first step
        _run(eager_app, "gamesched.physics.step_frame", frame, 16.0, [[region, 0]], 0)
    assert rested() == before + 2


def test_control_tick_publishes_a_decision(eager_app: GameschedCelery) -> None:
    decision = _run(eager_app, "gamesched.control.tick")
    assert isinstance(decision, dict) and 0.25 <= decision["ai_level"] <= 1.0
    stored = read_decision(eager_app.runtime.hot)
    assert stored is not None and stored.at == decision["at"]


def test_session_op_and_updates_wire_through(eager_app: GameschedCelery) -> None:
    spec = {"instance_id": "i", "session_type": "casual", "players": 1, "region": None}
    assert _run(eager_app, "gamesched.player.session_op", "open", "eager-s", spec) is True
    out = _run(eager_app, "gamesched.player.apply_updates",
               [{"session": "eager-s", "seq": 1, "state": {"hp": 1}},
                {"session": "eager-s", "seq": "x", "state": {}}])
    assert out == {"applied": 1, "stale": 0, "rejected": 1}
    assert _run(eager_app, "gamesched.player.session_op", "update", "eager-s",
                {"players": 3}) is True
    assert _run(eager_app, "gamesched.player.session_op", "close", "eager-s", {}) is True


def test_textbook_state_task_applies_one_update_and_records_its_run(
        eager_settings: Settings) -> None:
    app = create_app(eager_settings.model_copy(update={"record_latency": True}),
                     task_always_eager=True, task_eager_propagates=True)
    app.runtime.recorder.drain()
    hot = app.runtime.hot
    sessions.ensure_state(hot, "eager-t")
    args = ["eager-t", 2, {"hp": 5}, [1.0, 2.5]]
    assert _run(app, "gamesched.textbook.apply_state", *args) == {
        "applied": 1, "stale": 0, "rejected": 0}
    assert _run(app, "gamesched.textbook.apply_state", "eager-t", 1, {"hp": 9}, None) == {
        "applied": 0, "stale": 1, "rejected": 0}
    assert _run(app, "gamesched.textbook.apply_state", "eager-none", 1, {}, None) == {
        "applied": 0, "stale": 0, "rejected": 1}
    assert sessions.read_state(hot, "eager-t") == sessions.HotState(
        2, {"hp": 5, "pos": [100, 250]})
    assert [e.task for e in app.runtime.recorder.drain()] == [
        "gamesched.textbook.apply_state"] * 3


def test_follow_up_work_runs_after_the_task_is_stamped_done_before_it_is_recorded(
        eager_settings: Settings) -> None:
    app = create_app(eager_settings.model_copy(update={"record_latency": True}),
                     task_always_eager=True)
    recorder = app.runtime.recorder
    assert isinstance(recorder, MemoryRecorder)
    seen: list[tuple[list[str], float]] = []

    @app.task(base=GameTask, bind=True, name="tests.follow_up")
    def follow_up(self: GameTask, fail: bool) -> str:
        def later() -> None:
            seen.append(([e.task for e in recorder.drain()], time.time()))
            if fail:
                raise RuntimeError("the follow-up broke")
        self.after_done(later)
        return "done"

    assert follow_up.apply(args=[False]).result == "done"
    (records, followed), = seen
    assert records == []  # not recorded yet when the follow-up ran ...
    record, = recorder.drain()
    assert record.done <= followed  # ... but stamped done before it
    assert follow_up.apply(args=[True]).result == "done"  # logged, not raised
    assert [e.task for e in recorder.drain()] == ["tests.follow_up"]  # and recorded
    assert len(seen) == 2  # each run's follow-ups run once


def test_player_batches_size_full_state_after_they_are_done(eager_app: GameschedCelery) -> None:
    spec = {"instance_id": "i", "session_type": "casual", "players": 1, "region": None}
    _run(eager_app, "gamesched.player.session_op", "open", "eager-f", spec)
    hot = eager_app.runtime.hot
    sessions.reset_network_totals(hot)
    for seq in range(1, 2 * sessions.FULL_STATE_SAMPLE + 1):
        _run(eager_app, "gamesched.player.apply_updates",
             [{"session": "eager-f", "seq": seq, "state": {"hp": seq}}])
    totals = sessions.network_totals(hot)
    assert totals.updates == 2 * sessions.FULL_STATE_SAMPLE
    assert totals.full_updates == 2 and totals.full_bytes > 0


def test_late_player_batches_slow_background_work_at_the_next_tick(
        eager_settings: Settings) -> None:
    app = create_app(eager_settings.model_copy(update={"player_target_ms": 1e-6}),
                     task_always_eager=True, task_eager_propagates=True)
    spec = {"instance_id": "i", "session_type": "casual", "players": 1, "region": None}
    _run(app, "gamesched.player.session_op", "open", "eager-late", spec)
    first = _run(app, "gamesched.control.tick")
    assert isinstance(first, dict)
    before = dilation.slow_total(app.runtime.hot)
    for seq in range(1, dilation.SLOW_ALLOWED + 3):  # every batch misses a 1 ns target
        _run(app, "gamesched.player.apply_updates",
             [{"session": "eager-late", "seq": seq, "state": {"hp": seq}}])
    assert dilation.slow_total(app.runtime.hot) == before + dilation.SLOW_ALLOWED + 2
    second = _run(app, "gamesched.control.tick")
    assert isinstance(second, dict)
    assert second["background_level"] == dilation.next_level(first["background_level"],
                                                             dilation.SLOW_ALLOWED + 2)
    assert second["background_level"] < first["background_level"] or (
        first["background_level"] == dilation.BACKGROUND_FLOOR)


def test_the_ai_workers_brain_walks_the_map_the_settings_name(eager_settings: Settings,
                                                               tmp_path: Path) -> None:
    walls = tmp_path / "walls.json"
    walls.write_text('{"blocked": [[0, 0, 100, 100]]}')
    app = create_app(eager_settings.model_copy(update={"ai_map": str(walls)}),
                     task_always_eager=True)
    assert app.runtime.brain.nav.blocked == {(0, 0)}
    assert create_app(eager_settings, task_always_eager=True).runtime.brain.nav.blocked == set()
