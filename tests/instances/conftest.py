"""Fixtures of the instance tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from app.simulate.redisserver import PrivateRedis
from tests.instances.live import PAIR


@pytest.fixture
def hot_urls(redis_server_binary: str) -> Iterator[dict[str, str]]:
    """A hot-state Redis of each instance's own (east's and west's)."""
    with PrivateRedis(redis_server_binary) as east, PrivateRedis(redis_server_binary) as west:
        yield dict(zip(PAIR, (east.url, west.url), strict=True))
