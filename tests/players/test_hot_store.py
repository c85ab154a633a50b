"""Hot state on a Redis of its own (GAMESCHED_HOT_URL): workers keep sessions' state there
and their queues on the broker."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.client.api import GameClient
from app.players import sessions
from app.protocol.keys import state as state_key
from app.settings import Settings
from app.simulate.redisserver import PrivateRedis
from app.tasking.factory import create_app
from tests.subprocesses import StartWorker
from tests.waiting import wait_for


@pytest.fixture
def hot_server(redis_server_binary: str) -> Iterator[PrivateRedis]:
    with PrivateRedis(redis_server_binary) as server:
        yield server


@pytest.fixture
def live_settings(live_settings: Settings, hot_server: PrivateRedis) -> Settings:
    """The live settings with hot state on the private server (workers get it too)."""
    return live_settings.model_copy(update={"hot_url": hot_server.url})


def test_a_worker_keeps_hot_state_on_the_hot_redis_and_its_queue_on_the_broker(
    live_settings: Settings, start_worker: StartWorker, redis_client: redis.Redis,
    hot_server: PrivateRedis,
) -> None:
    app = create_app(live_settings)
    start_worker("player", "player-hot", concurrency=1)
    client = GameClient(app)
    try:
        client.open_session("apart", session_type="ranked", players=2)
        client.submit_update("apart", 1, {"hp": 7})
        client.flush()
        applied = sessions.HotState(1, {"hp": 7})
        wait_for(lambda: sessions.read_state(app.runtime.hot, "apart") == applied,
                 timeout=30, what="the update on the hot Redis")
    finally:
        client.close()
    hot = redis.Redis.from_url(hot_server.url)
    assert hot.exists(state_key("apart"))
    assert hot.exists(sessions.NET_UPDATES)  # the bandwidth counters live beside the state
    assert not redis_client.exists(state_key("apart"))  # nothing of it on the broker
    assert redis_client.exists("_kombu.binding.player")  # while the queue is the broker's
