"""Execution records: when each task was handed off, started and finished, and where.

Workers append one record per task when ``record_latency`` is on; the demo, the simulator
and the live tests drain them.  Redis holds them when the broker is Redis, process memory
on the embedded default.
"""

from __future__ import annotations

import threading
from dataclasses import astuple, dataclass, replace
from typing import Any, Protocol

import msgpack
import redis

from app.protocol import keys
from app.redisconn import connect


@dataclass(frozen=True)
class Execution:
    """One task run: timestamps are seconds since the epoch."""

    task_id: str
    task: str
    queue: str
    hostname: str
    handoff: float
    started: float
    done: float
    ok: bool
    sent: float = 0.0  # when the client published it (0: unknown)
    items: tuple[int, ...] = ()  # what the run made durable (the transactions it committed)
    gathered: bool = False  # run within another message's task (`app.tasking.gather`)

    @property
    def client_ms(self) -> float:
        """From hand-off to the client publishing it (coalescing and sending)."""
        return max(0.0, self.sent - self.handoff) * 1000.0 if self.sent else 0.0

    @property
    def wait_ms(self) -> float:
        """From hand-off to the worker starting it."""
        return (self.started - self.handoff) * 1000.0

    @property
    def latency_ms(self) -> float:
        """From hand-off to the worker having applied it."""
        return (self.done - self.handoff) * 1000.0


class Recorder(Protocol):
    """Where execution records go."""

    def record(self, execution: Execution) -> None:
        """Append one record."""

    def drain(self) -> list[Execution]:
        """Remove and return every record so far."""


class MemoryRecorder:
    """Records in this process, for the embedded fleet and in-process workers."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._items: list[Execution] = []

    def record(self, execution: Execution) -> None:
        """Append one record."""
        with self._lock:
            self._items.append(execution)

    def drain(self) -> list[Execution]:
        """Remove and return every record so far."""
        with self._lock:
            items, self._items = self._items, []
        return items


class RedisRecorder:
    """Records in a Redis list, shared by worker subprocesses and the reader."""

    def __init__(self, client: redis.Redis, key: str = keys.EXECUTIONS) -> None:
        self._client = client
        self._key = key

    def record(self, execution: Execution) -> None:
        """Append one record."""
        self._client.rpush(self._key, msgpack.packb(astuple(execution)))

    def drain(self) -> list[Execution]:
        """Remove and return every record so far."""
        pipe = self._client.pipeline(transaction=True)
        pipe.lrange(self._key, 0, -1)
        pipe.delete(self._key)
        raw, _ = pipe.execute()
        return [_execution(msgpack.unpackb(item)) for item in raw]


def _execution(fields: list[Any]) -> Execution:
    record = Execution(*fields)
    return replace(record, items=tuple(record.items)) if record.items else record


MEMORY_RECORDER = MemoryRecorder()


def recorder_for(broker_url: str) -> Recorder:
    """The recorder shared by every process using `broker_url`."""
    if broker_url.startswith(("redis://", "rediss://")):
        return RedisRecorder(connect(broker_url))
    return MEMORY_RECORDER
