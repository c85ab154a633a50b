"""Background snapshots read each session's state in the hot store it lives in."""

from __future__ import annotations

import logging
import socket

import pytest
import redis

from app.db import transaction
from app.instances.memory import MemoryRegistry
from app.players import background, sessions
from app.players.hotstore import MemoryHotStore, RedisHotStore, hot_store_for
from app.players.models import GameSession
from app.players.sessions import HotState
from app.protocol.names import SNAPSHOT_TASK
from app.tasking.factory import GameschedCelery


def _refusing_url() -> str:
    """A Redis URL on a port nothing listens on: every connection is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"redis://127.0.0.1:{port}/0"


def test_each_store_is_read_for_its_sessions_and_one_that_does_not_answer_is_left_out(
        redis_client: redis.Redis, caplog: pytest.LogCaptureFixture) -> None:
    own, apart = MemoryHotStore(), RedisHotStore(redis_client)
    away = hot_store_for(_refusing_url(), 0.2)
    sessions.ensure_state(own, "s-own", HotState(3, {"hp": 3}))
    sessions.ensure_state(apart, "s-apart", HotState(7, {"hp": 7, "name": "aria"}))
    with caplog.at_level(logging.WARNING, logger="app.players.background"):
        states = background.read_each({own: ["s-own", "s-unknown"], away: ["s-away", "s-b"],
                                       apart: ["s-apart"]})
    assert {s: (state.seq, state.fields) for s, state in states.items()} == {
        "s-own": (3, {"hp": 3}), "s-apart": (7, {"hp": 7, "name": "aria"})}
    assert "2 sessions not snapshotted: their hot store did not answer" in caplog.text


def test_the_snapshot_task_writes_each_session_from_the_store_it_runs_on(
        eager_app: GameschedCelery, redis_url: str, redis_client: redis.Redis) -> None:
    """A background worker's own store holds an old copy of a session that runs on an
    instance keeping its state apart: the snapshot is the state there, not the copy."""
    runtime = eager_app.runtime
    registry = MemoryRegistry()
    registry.join("apart", 100, redis_url)
    runtime.__dict__["instances"] = registry
    runtime.__dict__["hot"] = own = MemoryHotStore()
    assert registry.place("s-apart", 1.0, prefer="apart") == "apart"
    sessions.ensure_state(runtime.hot_stores.of_instance("apart"), "s-apart",
                          HotState(4, {"hp": 4}))
    sessions.ensure_state(own, "s-apart", HotState(1, {"hp": 1}))  # the old copy
    sessions.ensure_state(own, "s-own", HotState(2, {"hp": 2}))
    with transaction(runtime.sessions) as db:
        for session_id in ("s-apart", "s-own"):
            sessions.open_session(db, session_id, instance_id="apart", session_type="ranked",
                                  players=2, region=None)
    eager_app.loader.import_default_modules()
    result = eager_app.tasks[SNAPSHOT_TASK].apply(args=[["s-apart", "s-own", "s-none"]])
    assert result.get() == 2
    with runtime.sessions() as db:
        rows = {row.id: row.snapshot_seq for row in db.query(GameSession)}
    assert rows == {"s-apart": 4, "s-own": 2}
