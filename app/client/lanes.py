"""One coalescer per server instance: a batch carries the work of one instance's sessions,
so that it goes to that instance's queue whole."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from app.client.coalesce import Coalescer

MakeCoalescer = Callable[[str | None], Coalescer]


class Lanes:
    """Coalescers by instance (None: the fleet's shared queue), made by `make` on an
    instance's first item; `floor_s`: their windows' floor.  With `tick_s`, the coalescers
    are made without threads of their own (``own_thread=False``) and one thread looks at
    them all every tick: a game server's wake-ups do not grow with the instances.  That
    thread sends every batch: one that falls due in `add` wakes it (`Coalescer.defer`),
    so the caller's loop never waits on the broker.  Thread-safe."""

    def __init__(self, make: MakeCoalescer, floor_s: float = 0.0,
                 tick_s: float | None = None) -> None:
        self._make, self._floor_s, self._tick_s = make, floor_s, tick_s
        self._lock = threading.Lock()
        self._lanes: dict[str | None, Coalescer] = {}
        self._stop = threading.Event()
        self._due = threading.Event()  # a lane has a batch to send now
        self._thread: threading.Thread | None = None

    def add(self, instance: str | None, step: int, item: Any) -> None:
        """Queue `item` for the next batch to `instance` (see `Coalescer.add`)."""
        lane = self._lanes.get(instance)
        if lane is None:
            with self._lock:
                lane = self._lanes.get(instance) or self._lanes.setdefault(
                    instance, self._new_lane(instance))
                if self._tick_s is not None and self._thread is None:
                    self._thread = threading.Thread(target=self._run, args=(self._tick_s,),
                                                    daemon=True, name="gamesched-lanes")
                    self._thread.start()
        lane.add(step, item)

    def _new_lane(self, instance: str | None) -> Coalescer:
        lane = self._make(instance)
        if self._tick_s is not None:
            lane.defer(self._due.set)
        return lane

    def _run(self, tick_s: float) -> None:
        while not self._stop.is_set():
            self._due.wait(tick_s)
            self._due.clear()
            for lane in self._all():
                lane.look()

    def waiting(self, instance: str | None, count: int | None) -> None:
        """The last send to `instance` found `count` messages waiting before it (see
        `Coalescer.waiting`)."""
        lane = self._lanes.get(instance)
        if lane is not None:
            lane.waiting(count)

    def flush(self) -> int:
        """Send every lane's buffered items now; returns how many went."""
        return sum(lane.flush() for lane in self._all())

    def flush_lane(self, instance: str | None) -> int:
        """Send `instance`'s buffered items now; returns how many went."""
        lane = self._lanes.get(instance)
        return lane.flush() if lane is not None else 0

    def close(self) -> None:
        """Stop the ticking thread, flush every lane and stop its thread."""
        self._stop.set()
        self._due.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        for lane in self._all():
            lane.close()

    @property
    def window_s(self) -> float:
        """The longest window any lane now waits (the floor before any item)."""
        return max((lane.window_s for lane in self._all()), default=self._floor_s)

    def _all(self) -> list[Coalescer]:
        with self._lock:
            return list(self._lanes.values())
