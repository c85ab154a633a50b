"""What the client keeps of the tasks it sent, so that it can send one again at a higher step
(priority inheritance): the route, the hand-off time, and the arguments packed with msgpack.

Packed, a task's arguments are one bytes object, which the garbage collector never walks
and whose size is known: kept as Python objects, an analytics job held a dict per event
until its entry left the table, with no bound on their memory.  The table is bounded by
entries and by packed bytes; the oldest entries leave first, and a dependency that left
can no longer be raised (it runs at the step it was sent at).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass
from typing import Any

import msgpack

from app.players.wire import pack_value
from app.priority import Route, inherit

MAX_ENTRIES = 50_000
MAX_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Sent:
    """A task as it was sent: enough to send it again."""

    route: Route
    packed_args: bytes
    handoff: float
    serializer: str | None = None  # None: the app's default (JSON)

    @property
    def args(self) -> list[Any]:
        """The task's arguments."""
        return list(msgpack.unpackb(self.packed_args, raw=False))


def pack_args(args: list[Any]) -> bytes:
    """Arguments as the table keeps them (packed as a state value is); TypeError for a
    value msgpack cannot carry."""
    return pack_value(args)


class InflightTable:
    """Sent tasks by id, oldest first, within `max_entries` and `max_bytes`.  Thread-safe."""

    def __init__(self, max_entries: int = MAX_ENTRIES, max_bytes: int = MAX_BYTES) -> None:
        self._max_entries = max_entries
        self._max_bytes = max_bytes
        self._lock = threading.Lock()
        self._sent: OrderedDict[str, Sent] = OrderedDict()
        self._bytes = 0

    def __len__(self) -> int:
        return len(self._sent)

    def add(self, task_id: str, sent: Sent) -> None:
        """Keep `sent` under `task_id`, dropping the oldest entries beyond the bounds."""
        with self._lock:
            self._put(task_id, sent)
            while self._sent and (len(self._sent) > self._max_entries
                                  or self._bytes > self._max_bytes):
                _, dropped = self._sent.popitem(last=False)
                self._bytes -= len(dropped.packed_args)

    def raised(self, task_id: str, dependent: Route) -> Sent | None:
        """The task `task_id` raised to `dependent`'s step, recorded as sent so; None when
        it is unknown here or already at that step or a higher one."""
        with self._lock:
            sent = self._sent.get(task_id)
            if sent is None or sent.route.priority <= dependent.priority:
                return None
            raised = Sent(inherit(sent.route, dependent), sent.packed_args, sent.handoff,
                          sent.serializer)
            self._put(task_id, raised)
            return raised

    def _put(self, task_id: str, sent: Sent) -> None:
        old = self._sent.pop(task_id, None)
        if old is not None:
            self._bytes -= len(old.packed_args)
        self._sent[task_id] = sent
        self._bytes += len(sent.packed_args)
