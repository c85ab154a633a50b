"""Fixtures run on each store a component has: in this process, and on the test Redis."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import pytest
import redis

T = TypeVar("T")
STORES = ["memory", "redis"]  # a fixture's params; "redis" is live (the test Redis)


def memory_or_redis(request: pytest.FixtureRequest, memory: Callable[[], T],
                    on_redis: Callable[[redis.Redis], T]) -> T:
    """The store the fixture's param asks for: `memory()`, or `on_redis` on the test
    Redis (flushed before and after, by the ``redis_client`` fixture)."""
    if request.param == "memory":
        return memory()
    client: redis.Redis = request.getfixturevalue("redis_client")
    return on_redis(client)
