"""Per-tick coalescing: state updates handed over during one tick leave as one batch task
per priority step."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Batch = list[dict[str, Any]]
SendBatch = Callable[[int, Batch, float], None]


class Coalescer:
    """Buffers items by priority step and hands each step's batch to `send` once per tick,
    with the oldest hand-off time in it.

    A background thread flushes every `tick_s`; `flush()` sends at once; `close()` flushes
    and stops the thread.  Thread-safe.
    """

    def __init__(self, send: SendBatch, tick_s: float, max_batch: int = 2000) -> None:
        self._send = send
        self._tick_s = tick_s
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._items: dict[int, Batch] = {}
        self._oldest: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, step: int, item: dict[str, Any]) -> None:
        """Queue `item` for the next batch of priority `step`."""
        with self._lock:
            batch = self._items.setdefault(step, [])
            if not batch:
                self._oldest[step] = time.time()
            batch.append(item)
            full = len(batch) >= self._max_batch
            if self._thread is None:
                self._start()
        if full:
            self.flush()

    def flush(self) -> int:
        """Send what is buffered now, most urgent step first; returns how many items went."""
        with self._lock:
            items, self._items = self._items, {}
            oldest, self._oldest = self._oldest, {}
        for step in sorted(items):
            self._send(step, items[step], oldest[step])
        return sum(len(batch) for batch in items.values())

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="gamesched-coalescer",
                                        daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.flush()
