"""A game server's view of where the players are, everyone's: level of detail follows the
players of every game server, not only of this one's sessions.

About once a second (`PERIOD_S`) the client reports its own sessions' players per region
and reads everyone's totals (`app.physics.attention`); in between, its own changes count
at once: the totals minus what it reported, plus what it has now.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from app.physics.attention import PlayerCounts

PERIOD_S = 1.0


class Attention:
    """Players per region across the game servers, as this one sees them (see the module)."""

    def __init__(self, counts: PlayerCounts, own: Callable[[], dict[str, int]],
                 period_s: float = PERIOD_S, clock: Callable[[], float] = time.monotonic,
                 source: str | None = None) -> None:
        self._counts = counts
        self._own = own
        self._period_s = period_s
        self._clock = clock
        self.source = source or uuid.uuid4().hex
        self._lock = threading.Lock()
        self._others: Counter[str] = Counter()
        self._at = -float("inf")

    def players(self) -> dict[str, int]:
        """Players per region: the others' as last read, this game server's as of now."""
        now = self._clock()
        with self._lock:
            due = now - self._at >= self._period_s
            if due:
                self._at = now
        own = Counter(self._own())
        if due:
            self._counts.report(self.source, own)
            others = Counter(self._counts.totals())
            others.subtract(own)
            with self._lock:
                self._others = +others  # none below zero
        with self._lock:
            return dict(self._others + own)
