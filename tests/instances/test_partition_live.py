"""A partitioned server instance on real processes: its worker stopped (SIGSTOP), the
controller takes it over (its sessions move, its queue is forwarded, it is fenced); once it
runs again it finds itself fenced, starts again by itself, and the controller gives it its
share of the sessions back.  No update is lost on the way, whether the instances share
the broker's Redis for their sessions' state or each has one of its own (the state then
travels with each session that moves).  And a fenced instance's write is refused,
counted and passed on to a live instance."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

import pytest

from app.client.api import GameClient
from app.fleet.fleets import stop_process_groups
from app.players import sessions, wire
from app.players.sessions import read_states
from app.priority import Route
from app.protocol.names import HANDOFF_HEADER, UPDATE_TASK
from app.protocol.vocab import Queue
from app.settings import Settings
from app.tasking.factory import create_app
from tests.instances.live import (
    Feeder,
    applied,
    open_on,
    placed_on,
    start_controller,
    start_instances,
)
from tests.waiting import wait_for

SESSIONS = 12


@pytest.fixture(params=["shared", "apart"])
def layout(request: pytest.FixtureRequest) -> dict[str, str] | None:
    """Where the instances keep their sessions' state: on the broker's Redis (None), or
    each on a Redis of its own (its URL by instance)."""
    if request.param == "shared":
        return None
    urls: dict[str, str] = request.getfixturevalue("hot_urls")
    return urls


def test_a_silent_instance_is_taken_over_fenced_and_comes_back(
        live_settings: Settings, layout: dict[str, str] | None, tmp_path: Path) -> None:
    settings = live_settings.model_copy(update={
        "instance_heartbeat_s": 0.2, "instance_ttl_s": 1.0, "controller_period_s": 0.5})
    procs = start_instances(settings, tmp_path, hot_urls=layout)
    procs.append(start_controller(settings, tmp_path))
    east = procs[0]
    app = create_app(settings)
    registry = app.runtime.instances
    client = GameClient(app)
    try:
        sessions, on_east = open_on(client, SESSIONS, session_type="casual", players=1)
        feeder = Feeder(client, sessions).sending(5)

        os.killpg(east.pid, signal.SIGSTOP)  # east is cut off: it stops answering
        try:
            wait_for(lambda: all(client.instance_of(s) == "west" for s in sessions),
                     timeout=20, what="the controller to move east's sessions")
            states = {s.name: s for s in registry.instances()}
            assert not states["east"].live and states["east"].sessions == 0
            wait_for(lambda: applied(client, on_east) > feeder.seq - 2, timeout=10,
                     what="west to apply east's sessions' updates")
        finally:
            os.killpg(east.pid, signal.SIGCONT)
        # east started again by itself, with a new token, and takes sessions again
        wait_for(lambda: any(s.live for s in registry.instances() if s.name == "east"),
                 timeout=60, what="east to start again")
        assert "fenced" in (tmp_path / "east.log").read_text(errors="replace")
        # the controller gives it its share back, and the game server follows
        wait_for(lambda: any(client.instance_of(s) == "east" for s in sessions), timeout=20,
                 what="east to get sessions back")
        assert registry.moved()["rebalance"] >= 1

        feeder.stop.set()
        feeder.join(timeout=10)
        client.flush()
        wait_for(lambda: applied(client, sessions) >= feeder.seq, timeout=30,
                 what="every update applied")
        assert feeder.lost() == {}
    finally:
        client.close()
        stop_process_groups(procs)


def test_a_fenced_instance_write_is_refused_counted_and_passed_on(
        live_settings: Settings, tmp_path: Path) -> None:
    # east beats rarely: it learns it was fenced from its refused write, not a heartbeat
    settings = live_settings.model_copy(update={
        "instance_heartbeat_s": 30.0, "instance_ttl_s": 60.0})
    procs = start_instances(settings, tmp_path)
    app = create_app(settings)
    registry = app.runtime.instances
    try:
        session = placed_on(registry, "east", "fenced")
        sessions.ensure_state(app.runtime.hot, session)
        registry.fence("east")  # taken over, as if it had gone silent
        assert [m.session for m in registry.drain("east")] == [session]  # now on west
        # a game server cut off from the registry still sends east an update
        batch = wire.pack_batch([wire.entry(session, 1, {"hp": 1})])
        app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, 3, instance="east"), [batch],
                           {HANDOFF_HEADER: time.time()}, serializer="msgpack")
        wait_for(lambda: "hp" in read_states(app.runtime.hot, [session])[session].fields,
                 timeout=30, what="the update applied by west")
        assert {s.name: s.refused for s in registry.instances()}["east"] == 1
        east_log = (tmp_path / "east.log").read_text(errors="replace")
        assert "is fenced: a state batch it took went to instance west" in east_log
        wait_for(lambda: (tmp_path / "east.log").read_text(errors="replace").count(
            "player@east ready") == 2, timeout=60, what="east to start again")
    finally:
        stop_process_groups(procs)
