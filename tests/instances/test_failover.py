"""Taking over from a silent instance, on the real broker: its sessions move, what waits
in its queue goes to the shared one, it is fenced, and once empty it is forgotten."""

from __future__ import annotations

import pytest

from app.instances.registry import Registry
from app.priority import Route
from app.protocol.names import HANDOFF_HEADER, UPDATE_TASK
from app.protocol.vocab import Queue
from app.settings import Settings
from app.tasking import failover
from app.tasking.broker import waiting
from app.tasking.factory import create_app
from tests.waiting import wait_for


def test_a_silent_instance_gives_its_sessions_and_its_queue_away_and_is_fenced(
        live_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(live_settings.model_copy(update={"instance_ttl_s": 0.5}))
    registry = app.runtime.instances
    token = registry.join("east", 100)
    registry.join("west", 100)
    placed = {f"s{n}": registry.place(f"s{n}", 1.0) for n in range(20)}
    on_east = sorted(s for s, i in placed.items() if i == "east")
    for step in (2, 7):  # work waiting for east, at two priority steps
        app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, step, instance="east"), [b"\x90"],
                           {HANDOFF_HEADER: 0.0}, serializer="msgpack")
    assert failover.take_over(app) == []  # every instance answers
    wait_for(lambda: registry.heartbeat("west", 100) and not _live(registry, "east"),
             what="east to fall silent (west beating)")

    (taken,) = failover.take_over(app)
    assert (taken.instance, taken.moved, taken.stayed, taken.forwarded) == (
        "east", len(on_east), 0, 2)
    assert waiting(app, "player.east").messages == 0
    assert waiting(app, Queue.PLAYER.value).messages == 2
    assert set(registry.owners(list(placed))) == {"west"}
    assert not registry.heartbeat("east", 100, token)  # fenced

    registry.heartbeat("west", 100)
    assert failover.take_over(app) == []  # nothing left to take
    assert "east" in {s.name for s in registry.instances()}
    monkeypatch.setattr(failover, "FORGET_AFTER_S", 0.0)
    registry.heartbeat("west", 100)
    assert failover.take_over(app) == []
    assert [s.name for s in registry.instances()] == ["west"]  # forgotten


def test_an_instance_that_left_with_nothing_is_forgotten_at_once(
        live_settings: Settings) -> None:
    app = create_app(live_settings)
    registry = app.runtime.instances
    registry.join("north", 100)
    registry.join("south", 100)
    registry.leave("north")  # a warm shutdown
    assert failover.take_over(app) == []
    assert [s.name for s in registry.instances()] == ["south"]


def _live(registry: Registry, name: str) -> bool:
    return any(s.live for s in registry.instances() if s.name == name)
