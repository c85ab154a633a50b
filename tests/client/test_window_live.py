"""The client's batch window on a real broker: it widens while batches wait in the player
queue and comes back to its floor once the queue is empty."""

from __future__ import annotations

import redis

from app.client.api import GameClient
from app.protocol.queues import PRIORITY_STEPS
from app.settings import Settings
from app.tasking.broker import step_key
from app.tasking.factory import create_app


def test_batches_waiting_in_the_player_queue_widen_the_window_and_an_empty_one_narrows_it(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    settings = live_settings.model_copy(update={"batch_window_min_ms": live_settings.tick_ms})
    client = GameClient(create_app(settings))
    try:
        client.open_session("w1", session_type="casual", players=1, region="r1")
        tick = settings.tick_ms / 1000.0
        assert client.update_window_s == tick  # the floor: the tick
        for seq in range(1, 5):  # no worker runs: each batch finds the earlier ones waiting
            client.submit_update("w1", seq, {"hp": seq})
            client.flush()
        assert client.update_window_s == settings.batch_window_max_ms / 1000.0
        for seq in range(5, 8):  # the workers keep up: each batch finds the queue empty
            redis_client.delete(*(step_key("player", step) for step in PRIORITY_STEPS))
            client.submit_update("w1", seq, {"hp": seq})
            client.flush()
        assert client.update_window_s == tick
    finally:
        client.close()
