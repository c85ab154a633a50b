"""Server instances each keeping session state on a Redis of its own (``GAMESCHED_HOT_URL``
per instance), on real worker processes: they share only the broker (with the registry)
and SQL."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.fleet.fleets import stop_process_groups
from app.players import sessions, wire
from app.players.hotstore import RedisHotStore
from app.priority import Route
from app.protocol.names import HANDOFF_HEADER, UPDATE_TASK
from app.protocol.vocab import Queue
from app.settings import Settings
from app.simulate.redisserver import PrivateRedis
from app.tasking.factory import create_app
from tests.instances.live import PAIR, start_instance
from tests.waiting import wait_for


@pytest.fixture
def hot_urls(redis_server_binary: str) -> Iterator[dict[str, str]]:
    """A hot-state Redis of each instance's own."""
    with PrivateRedis(redis_server_binary) as east, PrivateRedis(redis_server_binary) as west:
        yield {"east": east.url, "west": west.url}


def start_apart(settings: Settings, hot_urls: dict[str, str], tmp_path: Path) -> list:
    """East and west, each with its own hot store."""
    return [start_instance(settings.model_copy(update={"hot_url": hot_urls[name]}), name,
                           tmp_path / f"{name}.log") for name in PAIR]


def test_a_fenced_instance_write_to_its_own_hot_store_is_refused_and_counted(
        live_settings: Settings, hot_urls: dict[str, str], tmp_path: Path) -> None:
    # east beats rarely: it learns it was fenced from its refused write, not a heartbeat
    settings = live_settings.model_copy(update={
        "instance_heartbeat_s": 30.0, "instance_ttl_s": 60.0})
    procs = start_apart(settings, hot_urls, tmp_path)
    app = create_app(settings)
    registry = app.runtime.instances
    east_hot = RedisHotStore(redis.Redis.from_url(hot_urls["east"]))
    try:
        assert registry.hot_urls() == hot_urls
        session = next(s for s in (f"fenced-{n}" for n in range(100))
                       if registry.place(s, 1.0) == "east")
        sessions.ensure_state(east_hot, session)
        registry.fence("east")  # taken over, as if it had gone silent
        registry.drain("east")
        batch = wire.pack_batch([wire.entry(session, 1, {"hp": 1})])
        app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, 3, instance="east"), [batch],
                           {HANDOFF_HEADER: time.time()}, serializer="msgpack")
        wait_for(lambda: {s.name: s.refused for s in registry.instances()}["east"] == 1,
                 timeout=30, what="east's write refused")
        assert sessions.read_state(east_hot, session) == sessions.HotState(0, {})
        assert "is fenced: a state batch it took went to instance west" in (
            tmp_path / "east.log").read_text(errors="replace")
        wait_for(lambda: (tmp_path / "east.log").read_text(errors="replace").count(
            "player@east ready") == 2, timeout=60, what="east to start again")
    finally:
        stop_process_groups(procs)
