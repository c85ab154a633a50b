"""Hot state: small keyed values read and written on every tick (Redis, or process memory)."""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Sequence
from typing import Protocol

import redis

from app.players.statestore import MemoryStateStore, RedisStateStore, StateStore
from app.redisconn import connect


class HotStore(Protocol):
    """A key-value store for hot state, counters and control records."""

    states: StateStore  # sessions' state, applied atomically per batch

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values at `keys`, in order (None where absent)."""

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""

    def incr_many(self, amounts: dict[str, int]) -> None:
        """Add each amount to its counter, in one round trip where the store has them."""

    def claim(self, key: str, ttl_s: int) -> bool:
        """Set `key` if absent (expiring after `ttl_s`); True when this call set it."""

    def publish(self, channel: str, payload: bytes) -> None:
        """Send `payload` to the subscribers of `channel`."""

    def delete(self, key: str) -> None:
        """Remove `key`."""


class MemoryHotStore:
    """Hot state in this process, for the embedded default and fast tests."""

    def __init__(self, keep_published: int = 10_000) -> None:
        self._lock = threading.Lock()
        self._data: dict[str, bytes] = {}
        self.states: StateStore = MemoryStateStore(self.publish, self.incr_many)
        self.published: deque[tuple[str, bytes]] = deque(maxlen=keep_published)

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        with self._lock:
            return self._data.get(key)

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""
        with self._lock:
            self._data[key] = value

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values at `keys`, in order (None where absent)."""
        with self._lock:
            return [self._data.get(k) for k in keys]

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""
        with self._lock:
            value = int(self._data.get(key, b"0")) + amount
            self._data[key] = str(value).encode()
            return value

    def publish(self, channel: str, payload: bytes) -> None:
        """Keep the last messages in `published` (no subscribers in process memory)."""
        self.published.append((channel, payload))

    def claim(self, key: str, ttl_s: int) -> bool:
        """Set `key` if absent; True when this call set it (no expiry in memory)."""
        with self._lock:
            if key in self._data:
                return False
            self._data[key] = b"1"
            return True

    def incr_many(self, amounts: dict[str, int]) -> None:
        """Add each amount to its counter."""
        for key, amount in amounts.items():
            self.incr(key, amount)

    def delete(self, key: str) -> None:
        """Remove `key`."""
        with self._lock:
            self._data.pop(key, None)


class RedisHotStore:
    """Hot state in Redis, shared by every worker and the controller."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self.states: StateStore = RedisStateStore(client)

    @property
    def client(self) -> redis.Redis:
        """The Redis client, for services that issue their own commands
        (`app.players.pystate`)."""
        return self._client

    def get(self, key: str) -> bytes | None:
        """The value at `key`, or None."""
        value = self._client.get(key)
        return value if isinstance(value, bytes) else None

    def set(self, key: str, value: bytes) -> None:
        """Store `value` at `key`."""
        self._client.set(key, value)

    def get_many(self, keys: Sequence[str]) -> list[bytes | None]:
        """The values at `keys`, in order (None where absent), in one round trip."""
        if not keys:
            return []
        return _as_bytes(self._client.mget(keys))

    def incr(self, key: str, amount: int = 1) -> int:
        """Add `amount` to the counter at `key`; returns the new value."""
        return int(self._client.incrby(key, amount))

    def incr_many(self, amounts: dict[str, int]) -> None:
        """INCRBY each counter, pipelined in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for key, amount in amounts.items():
            pipe.incrby(key, amount)
        pipe.execute()

    def publish(self, channel: str, payload: bytes) -> None:
        """PUBLISH `payload` on `channel`."""
        self._client.publish(channel, payload)

    def claim(self, key: str, ttl_s: int) -> bool:
        """Set `key` if absent (expiring after `ttl_s`); True when this call set it."""
        return bool(self._client.set(key, b"1", nx=True, ex=ttl_s))

    def delete(self, key: str) -> None:
        """Remove `key`."""
        self._client.delete(key)


def _as_bytes(values: Sequence[bytes | str | None]) -> list[bytes | None]:
    return [v.encode() if isinstance(v, str) else v for v in values]


MEMORY_HOT_STORE = MemoryHotStore()


def hot_store_for(url: str, timeout_s: float | None = None) -> HotStore:
    """The hot store shared by every process using `url` (a Redis URL; anything else is
    the embedded default's memory), its calls timing out after `timeout_s` if given
    (`app.redisconn.connect`)."""
    if url.startswith(("redis://", "rediss://")):
        return RedisHotStore(connect(url, timeout_s))
    return MEMORY_HOT_STORE
