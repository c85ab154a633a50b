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
from typing import Generic, TypeVar

from redis.exceptions import RedisError

from app.ai.tiers import Tier, tier_named
from app.errors import InvalidRequest
from app.physics.attention import PlayerCounts

log = logging.getLogger(__name__)

PERIOD_S = 1.0
T = TypeVar("T")


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


class Controlled(Generic[T]):
    """A value of the controller's decision, read at most every `period_s` through `read`
    (which gives None before the controller's first decision, or a value `parse` turns
    into one, or None when it makes no sense); `default` then, and the last value while
    the hot store cannot be read."""

    def __init__(self, read: Callable[[], object | None], parse: Callable[[object], T | None],
                 default: T, period_s: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._read, self._parse, self._default = read, parse, default
        self._period_s = period_s
        self._clock = clock
        self._at = -float("inf")
        self._value = default

    def value(self) -> T:
        """The value the controller decided last."""
        now = self._clock()
        if now - self._at >= self._period_s:
            self._at = now
            try:
                raw = self._read()
            except (RedisError, OSError):
                log.warning("the controller's decision could not be read", exc_info=True)
                return self._value
            parsed = self._parse(raw) if raw is not None else None
            self._value = self._default if parsed is None else parsed
        return self._value


class ControlledDetail(Controlled[float]):
    """The controller's factor on the step rates of regions without players
    (`Decision.physics_detail`), in (0, 1]; 1.0 before its first decision."""

    def __init__(self, read: Callable[[], float | None], period_s: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(read, _factor, 1.0, period_s, clock)

    def factor(self) -> float:
        """The factor in (0, 1] the controller decided last."""
        return self.value()


class ControlledSlowed(Controlled[dict[str, float]]):
    """The regions the director slowed (`app.physics.slowed`: too costly for a frame and
    unable to split), region to factor on their step rate; none before it publishes."""

    def __init__(self, read: Callable[[], dict[str, float]], period_s: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(read, _factors, {}, period_s, clock)


class ControlledTier(Controlled[Tier]):
    """The highest AI tier the controller lets game servers give an NPC
    (`Decision.ai_tier`); full before its first decision."""

    def __init__(self, read: Callable[[], str | None], period_s: float = PERIOD_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(read, _tier, Tier.FULL, period_s, clock)


def _factor(raw: object) -> float | None:
    value = float(raw) if isinstance(raw, (int, float)) else None
    return min(1.0, value) if value is not None and value > 0 else None


def _factors(raw: object) -> dict[str, float] | None:
    return dict(raw) if isinstance(raw, dict) else None


def _tier(raw: object) -> Tier | None:
    try:
        return tier_named(raw)
    except InvalidRequest:
        log.warning("the controller's AI tier %r is none: full tier kept", raw)
        return None
