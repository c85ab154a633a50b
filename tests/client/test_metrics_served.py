"""A game server builds its client from the environment in one call, and serves what the
client enqueued, per queue, when it asks for a port."""

from __future__ import annotations

import re

import pytest

from app.client.api import GameClient
from app.errors import ConfigError
from app.protocol.vocab import Queue
from app.settings import Settings
from app.tasking.factory import create_app
from tests.subprocesses import free_port, scrape
from tests.waiting import wait_for

ENQUEUED = "gamesched_tasks_enqueued_total"


def _enqueued(text: str, queue: str) -> float | None:
    match = re.search(rf'^{ENQUEUED}{{queue="{queue}"}} ([\d.e+]+)$', text, re.MULTILINE)
    return float(match[1]) if match else None


def test_a_game_server_serves_its_enqueued_counters_from_the_start(
        eager_settings: Settings) -> None:
    client = GameClient(create_app(eager_settings))  # the embedded default's broker
    port = free_port()
    try:
        client.serve_metrics(port)
        first = wait_for(lambda: scrape(port), timeout=10, what="the metrics endpoint")
        assert all(_enqueued(first, q.value) is not None for q in Queue), first
        before = _enqueued(first, "ai") or 0.0
        client.submit_ai("npc-1", (1.0, 1.0), [(2.0, 2.0)])
        assert _enqueued(scrape(port) or "", "ai") == before + 1
    finally:
        client.close()


def test_a_client_is_built_from_the_environment_in_one_call(
        monkeypatch: pytest.MonkeyPatch, sqlite_url: str) -> None:
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", sqlite_url)
    client = GameClient.from_env()
    try:
        assert client.settings.database_url == sqlite_url and client.settings.embedded
    finally:
        client.close()
    monkeypatch.setenv("GAMESCHED_TICK_MS", "soon")
    with pytest.raises(ConfigError, match=r"GAMESCHED_TICK_MS|tick_ms"):
        GameClient.from_env()
