"""Where the players are, by region, across every game server: what level of detail and,
later, the partition follow.

Each game server's client reports the players of its own sessions per region about once a
second (`report`); `totals` adds up the reports of every game server that reported within
`STALE_S`, so a game server that stopped counts no more.  In Redis it is one hash, a field
per game server (its counts and when it reported, packed); in memory, a dict.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Mapping
from typing import Protocol

import msgpack
import redis

from app.protocol import keys

STALE_S = 5.0


class PlayerCounts(Protocol):
    """Players per region, as the game servers report them."""

    def report(self, source: str, counts: Mapping[str, int]) -> None:
        """Game server `source` has `counts` players per region now."""

    def totals(self) -> dict[str, int]:
        """Players per region across the game servers that reported lately."""


def _add_up(reports: Mapping[str, tuple[dict[str, int], float]], now: float) -> dict[str, int]:
    total: Counter[str] = Counter()
    for counts, at in reports.values():
        if now - at <= STALE_S:
            total.update(counts)
    return dict(total)


class MemoryPlayerCounts:
    """Reports in this process (the embedded default, fast tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._reports: dict[str, tuple[dict[str, int], float]] = {}

    def report(self, source: str, counts: Mapping[str, int]) -> None:
        """Game server `source` has `counts` players per region now."""
        with self._lock:
            self._reports[source] = (dict(counts), time.time())

    def totals(self) -> dict[str, int]:
        """Players per region across the game servers that reported lately."""
        with self._lock:
            return _add_up(self._reports, time.time())


class RedisPlayerCounts:
    """Reports in a Redis hash, a field per game server."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def report(self, source: str, counts: Mapping[str, int]) -> None:
        """Game server `source` has `counts` players per region now (one HSET)."""
        packed = msgpack.packb([dict(counts), time.time()])
        self._client.hset(keys.PHYSICS_PLAYERS, source, packed)

    def totals(self) -> dict[str, int]:
        """Players per region across the game servers that reported lately (one HGETALL;
        the reports of game servers gone for good are dropped as they are read)."""
        raw = self._client.hgetall(keys.PHYSICS_PLAYERS)
        reports = {source: tuple(msgpack.unpackb(value)) for source, value in raw.items()}
        now = time.time()
        gone = [s for s, (_, at) in reports.items() if now - at > 60 * STALE_S]
        if gone:
            self._client.hdel(keys.PHYSICS_PLAYERS, *gone)
        return _add_up({str(s): (counts, at) for s, (counts, at) in reports.items()}, now)


MEMORY_PLAYER_COUNTS = MemoryPlayerCounts()  # the embedded default's
