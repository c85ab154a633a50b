"""`connect` at boot: the broker connection is open and the result backend loaded before
the first send; a broker that cannot be reached is said at once, and nothing was sent."""

from __future__ import annotations

import pytest
from kombu.exceptions import OperationalError

from app.client.api import GameClient
from app.client.textbook import TextbookClient
from app.settings import Settings, load_settings
from app.simulate.redisserver import PrivateRedis
from app.tasking.factory import create_app


@pytest.mark.parametrize("kind", [GameClient, TextbookClient])
def test_connect_opens_the_broker_connection_and_loads_the_backend(
        live_settings: Settings, kind: type[GameClient] | type[TextbookClient]) -> None:
    app = create_app(live_settings)
    client = kind(app, live_settings)
    # Celery keeps a result backend that is not thread-safe (the disabled one, here) per
    # thread, loaded on the thread's first send
    assert not hasattr(app._local, "backend")
    client.connect()
    assert hasattr(app._local, "backend")
    with app.producer_or_acquire() as producer:
        assert producer.connection.connected  # the pooled connection the first send takes
    assert client.tasks_sent == 0
    client.close()


def test_connect_to_a_broker_that_is_not_there_raises(live_settings: Settings) -> None:
    settings = live_settings.model_copy(update={"broker_url": "redis://127.0.0.1:1/0"})
    client = GameClient(create_app(settings), settings)
    with pytest.raises(OperationalError):
        client.connect()
    client.close()


def test_a_send_the_outbox_could_not_make_is_counted_with_its_error(
        redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        settings = load_settings(broker_url=server.url, instance_id="outbox-gone")
        client = GameClient(create_app(settings), settings)
        client.connect()
        npcs = [("npc-1", (1.0, 1.0), [])]
        assert client.ai_tick(0, npcs)  # due, and sent by the outbox's thread
        client.flush()
        assert client.send_failures == 0 and client.first_send_failure == ""
        server.kill()
        assert client.ai_tick(8, npcs)  # a minimal NPC is due again 0.8 s later
        client.flush()
    assert client.send_failures == 1
    assert client.first_send_failure.startswith("OperationalError: ")
    client.close()
