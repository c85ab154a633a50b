"""Per-window coalescing: the state updates handed over during one window leave as one batch
task, at the most urgent priority step among them.  The window is its floor while the
queue the batches go to is keeping up, and grows while batches are waiting in it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

Batch = list[Any]
SendBatch = Callable[[int, Batch, float], None]
Clock = Callable[[], float]
log = logging.getLogger(__name__)


class Coalescer:
    """Buffers items and hands them to `send` as one batch once per tick, at the most urgent
    (lowest) step any of them asked for, with the oldest hand-off time in it.

    One batch per tick keeps the task rate at one per tick whatever the mix of priorities:
    every update is player-facing, and per-task overhead, not ordering inside the player
    queue, is what costs latency at thousands of updates a second.

    A batch leaves once its oldest item has waited the window: a background thread looks
    every `tick_s` and sends a batch that would be past its window by the next look (at
    the tick's window, every batch it finds; a batch its `send` raises on is logged and
    dropped: the thread keeps going), and `add` sends a batch that is full or has waited
    its window itself, or, after `defer`, wakes the thread that sends it; `flush()` sends
    at once; `close()` flushes and stops the thread.  No batch holds more than
    `max_batch` items.  Thread-safe.

    The window starts at its floor, `min_window_s` (never less than `tick_s`).  After each
    send the caller says how many messages were already waiting in the queue (`waiting`):
    while some were, the window doubles, up to `max_window_s`, since a batch sent sooner
    would only wait behind them; once none were, it halves back towards the floor.  A
    floor above the tick trades that much latency for fewer, fuller tasks at any load.
    """

    def __init__(self, send: SendBatch, tick_s: float, max_batch: int = 2000, *,
                 max_window_s: float = 0.0, min_window_s: float = 0.0,
                 clock: Clock = time.time, own_thread: bool = True) -> None:
        self._send = send
        self._own_thread = own_thread  # False: another thread calls `look` every tick
        self._tick_s = tick_s
        self._min_window_s = max(tick_s, min_window_s)
        self._max_window_s = max(self._min_window_s, max_window_s)
        self._window_s = self._min_window_s
        self._clock = clock
        self._max_batch = max_batch
        self._lock = threading.Lock()
        self._sending = threading.Lock()  # one send at a time, in the order batches formed
        self._items: Batch = []
        self._step = 0
        self._oldest = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._failing = False  # the last send raised: only the tick thread sends
        self._kick: Callable[[], None] | None = None  # `defer`: wakes the sending thread

    def add(self, step: int, item: Any) -> None:
        """Queue `item` for the next batch; the batch leaves at `step` or a more urgent one.

        When the batch is full, or its oldest item has waited its window already, it
        leaves from this call, or after `defer` the call wakes the thread that sends it.
        Never raises for the send: a batch the send refuses is logged and dropped, and
        while sends fail (the broker is away) only the tick thread tries, so a caller waits
        on an outage at most once, in the send that finds it.
        """
        now = self._clock()
        with self._lock:
            if not self._items:
                self._oldest, self._step = now, step
            elif step < self._step:
                self._step = step
            self._items.append(item)
            due = self._due(now)
            if self._thread is None and self._own_thread:
                self._start()
        if due and (kick := self._kick) is not None:
            kick()
        elif due and not self._failing:
            self._flush_logged()

    def defer(self, kick: Callable[[], None]) -> None:
        """From now on `add` never sends: a due batch calls `kick` instead, which wakes the
        thread that calls `look`.  A game loop then never waits on the broker: a publish
        is about a millisecond of its thread at best, and on a busy machine the ticks
        that sent one took 10-16 ms, waiting behind Redis's other work
        (docs/measurements.md)."""
        self._kick = kick

    @property
    def window_s(self) -> float:
        """How long a batch now waits for more items before it leaves."""
        return self._window_s

    def waiting(self, count: int | None) -> None:
        """The last send found `count` messages waiting before it in its queue (None:
        unknown, the window stays): while some were, the window doubles up to its
        maximum; when none were, it halves towards its floor."""
        if count is None:
            return
        with self._lock:
            if count > 0:
                self._window_s = min(self._max_window_s, self._window_s * 2)
            else:
                self._window_s = max(self._min_window_s, self._window_s / 2)

    def _due(self, at: float) -> bool:
        """Whether the batch is full, or its oldest item has waited its window by `at`."""
        items = len(self._items)
        return items >= self._max_batch or (
            items > 0 and at - self._oldest >= self._window_s - 1e-9)

    def flush(self) -> int:
        """Send what is buffered now as one batch; returns how many items went.  Returns
        once every item added before the call has been handed to `send`, by this call or
        by another thread's send in progress."""
        with self._sending:
            with self._lock:
                items, self._items = self._items, []
                step, oldest = self._step, self._oldest
            for start in range(0, len(items), self._max_batch):
                self._send(step, items[start:start + self._max_batch], oldest)
        return len(items)

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

    def look(self) -> None:
        """One tick's look: send the batch if its oldest item would wait past the window by
        the next look (what the tick thread does every tick)."""
        with self._lock:
            due = self._due(self._clock() + self._tick_s)
        if due:
            self._flush_logged()

    def _run(self) -> None:
        while not self._stop.wait(self._tick_s):
            self.look()

    def _flush_logged(self) -> None:
        try:
            self.flush()
        except Exception:  # a batch the send refused is dropped; the next tick goes on
            self._failing = True
            log.exception("a coalesced batch could not be sent")
        else:
            self._failing = False
