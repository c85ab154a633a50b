"""Fixtures of the player tests."""

from __future__ import annotations

import pytest

from app.players.hotstore import HotStore, MemoryHotStore, RedisHotStore
from tests.stores import STORES, memory_or_redis


@pytest.fixture(params=STORES)
def hot(request: pytest.FixtureRequest) -> HotStore:
    """Each hot store: process memory, and the test Redis (the "redis" param is live)."""
    return memory_or_redis(request, MemoryHotStore, RedisHotStore)
