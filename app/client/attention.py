"""What level of detail follows, as a game server sees it: where the players are,
everyone's, not only its own sessions', and how far the controller lowers the detail of the
regions without players.

About once a second (`PERIOD_S`) the client reports its own sessions' players per region
and reads everyone's totals (`app.physics.attention`); in between, its own changes count
at once: the totals minus what it reported, plus what it has now.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable

from redis.exceptions import RedisError

from app.physics.attention import PlayerCounts

log = logging.getLogger(__name__)

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


class ControlledDetail:
    """The controller's factor on the step rates of regions without players
    (`Decision.physics_detail`), read at most every `period_s`; 1.0 before its first
    decision or while the hot store cannot be read."""

    def __init__(self, read: Callable[[], float | None], period_s: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read = read
        self._period_s = period_s
        self._clock = clock
        self._at = -float("inf")
        self._factor = 1.0

    def factor(self) -> float:
        """The factor in (0, 1] the controller decided last."""
        now = self._clock()
        if now - self._at >= self._period_s:
            self._at = now
            try:
                value = self._read()
            except (RedisError, OSError):
                log.warning("the controller's decision could not be read", exc_info=True)
                return self._factor
            self._factor = min(1.0, value) if value is not None and value > 0 else 1.0
        return self._factor
