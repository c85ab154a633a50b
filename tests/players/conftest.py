"""Fixtures of the player tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.players.hotstore import HotStore, MemoryHotStore, RedisHotStore


@pytest.fixture(params=["memory", "redis"])
def hot(request: pytest.FixtureRequest) -> Iterator[HotStore]:
    """Each hot store: process memory, and the test Redis (the "redis" param is live)."""
    if request.param == "memory":
        yield MemoryHotStore()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    yield RedisHotStore(client)
