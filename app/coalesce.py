"""Per-tick coalescing: state updates handed over during one tick leave as one batch task."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

Batch = list[dict[str, Any]]
SendBatch = Callable[[Batch, float], None]


class Coalescer:
    """Buffers items and hands them to `send` once per tick, with the oldest hand-off time.

    A background thread flushes every `tick_s`; `flush()` sends at once; `close()` flushes
    and stops the thread.  Thread-safe.
    """

    def __init__(self, send: SendBatch, tick_s: float, max_batch: int = 2000) -> None:
        self._send = send
        self._tick_s = tick_s
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._items: Batch = []
        self._oldest = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, item: dict[str, Any]) -> None:
        """Queue `item` for the next batch."""
        with self._lock:
            if not self._items:
                self._oldest = time.time()
            self._items.append(item)
            full = len(self._items) >= self._max_batch
        self._ensure_thread()
        if full:
            self.flush()

    def flush(self) -> int:
        """Send what is buffered now; returns how many items went."""
        with self._lock:
            items, self._items = self._items, []
            oldest = self._oldest
        if items:
            self._send(items, oldest)
        return len(items)

    def close(self) -> None:
        """Flush and stop the background thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self.flush()

    def _ensure_thread(self) -> None:
        if self._thread is None:
            with self._lock:
                if self._thread is None:
                    self._thread = threading.Thread(
                        target=self._run, name="gamesched-coalescer", daemon=True)
                    self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.flush()
