"""Sends the game loop hands over and a thread of the client's makes, in order.

A publish is a round trip to the broker: on a busy machine it waited 5-30 ms behind
Redis's other work, and a game loop that sent its physics frames and AI batches itself
fell behind its ticks by as much (docs/measurements.md).  The loop puts the send here and
goes on; the outbox's thread makes the sends one at a time, in the order they were put.
A send that raises is logged and counted (`failed`), and the thread goes on: like a state
update, a frame or an AI batch the broker did not take is superseded by the next one.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable

log = logging.getLogger(__name__)

Send = Callable[[], object]


class Outbox:
    """A FIFO of sends made by one daemon thread, started on the first `put`.  Thread-safe."""

    def __init__(self, name: str = "gamesched-outbox") -> None:
        self.name = name
        self.failed = 0  # sends that raised
        self.first_error = ""
        self._queue: deque[Send] = deque()
        self._ready = threading.Condition()
        self._busy = False  # the thread is making a send
        self._closed = False
        self._thread: threading.Thread | None = None

    def put(self, send: Send) -> None:
        """Make `send` after every send put before it."""
        with self._ready:
            if self._closed:
                raise RuntimeError("the client is closed")
            self._queue.append(send)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True, name=self.name)
                self._thread.start()
            self._ready.notify_all()

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until every send put before the call has been made; False on `timeout`."""
        with self._ready:
            return self._ready.wait_for(lambda: not self._queue and not self._busy, timeout)

    def close(self, timeout: float = 5.0) -> None:
        """Make the sends put so far, then stop the thread."""
        self.drain(timeout)
        with self._ready:
            self._closed = True
            self._ready.notify_all()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            with self._ready:
                self._ready.wait_for(lambda: self._queue or self._closed)
                if not self._queue:
                    return
                send, self._busy = self._queue.popleft(), True
            try:
                send()
            except Exception as exc:  # noqa: BLE001 - logged and counted; the loop goes on
                self._failed(exc)
            finally:
                with self._ready:
                    self._busy = False
                    self._ready.notify_all()

    def _failed(self, exc: Exception) -> None:
        with self._ready:
            self.failed += 1
            self.first_error = self.first_error or f"{type(exc).__name__}: {exc}"
        log.warning("a send the game loop handed over failed: %s", exc)
