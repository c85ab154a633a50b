"""Eager wiring only: each task decodes its arguments and calls its service.

Eager mode is an emulation; routing, priority, acks and retries are proven in tests/live.
"""

from __future__ import annotations

from app.celery_app import GameschedCelery
from app.controller import read_decision


def _run(app: GameschedCelery, name: str, *args: object) -> object:
    app.loader.import_default_modules()
    result = app.tasks[name].apply(args=list(args))
    assert result.successful(), result.traceback
    return result.result


def test_ai_task_calls_the_decision_service(eager_app: GameschedCelery) -> None:
    assert _run(eager_app, "gamesched.ai.decide", "n", [0.0, 0.0], [[10.0, 0.0]]) == "attack"
    assert _run(eager_app, "gamesched.ai.decide", "n", [0.0, 0.0], [[100.0, 0.0]]) == "chase"
    assert _run(eager_app, "gamesched.ai.decide", "n", [0.0, 0.0], []) == "patrol"


def test_physics_task_steps_a_persistent_region(eager_app: GameschedCelery) -> None:
    assert _run(eager_app, "gamesched.physics.step_region", "eager-r", 1, 16.0, 25) == 25
    assert _run(eager_app, "gamesched.physics.step_region", "eager-r", 2, 16.0, 10) == 25


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
