"""Hot state: small keyed values read and written on every tick (Redis, or process memory)."""

from __future__ import annotations

import threading
from typing import Protocol

import redis


class HotStore(Protocol):
    """A key-value store for hot state and control records."""

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""

    def delete(self, key: str) -> None:
        """Remove `key`."""


class MemoryHotStore:
    """Hot state in this process, for the embedded default and fast tests."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""
        with self._lock:
            self._data[key] = value

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""
        with self._lock:
            value = int(self._data.get(key, b"0")) + amount
            self._data[key] = str(value).encode()
            return value

    def delete(self, key: str) -> None:
        """Remove `key`."""
        with self._lock:
            self._data.pop(key, None)


class RedisHotStore:
    """Hot state in Redis, shared by every worker and the controller."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        value = self._client.get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""
        self._client.set(key, value)

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""
        return int(self._client.incrby(key, amount))

    def delete(self, key: str) -> None:
        """Remove `key`."""
        self._client.delete(key)


MEMORY_HOT_STORE = MemoryHotStore()


def hot_store_for(broker_url: str) -> HotStore:
    """The hot store shared by every process using `broker_url`."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisHotStore(redis.Redis.from_url(broker_url))
    return MEMORY_HOT_STORE
