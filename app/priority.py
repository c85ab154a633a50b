"""Classification and priority: which queue a piece of work goes to, and at which step.

Priority steps follow Redis: 0 is the highest, 9 the lowest.  Every kind of work has a
band of steps; inside its band, urgency from the session's factors picks the step:

    urgency = type_weight * (0.5 * players_term + 0.5 * activity_term)
    players_term  = log2(1 + players + region_players / 4) / log2(1 + 64), capped at 1
    activity_term = recent inputs per second / 10, capped at 1
    deadline slack below SLACK_URGENT_MS raises urgency toward 1
    step = band.low + round((1 - urgency) * (band.high - band.low))
    critical-path work is boosted CRITICAL_BOOST steps (never past 0)

Player-facing work is what a player waits on: state updates, session operations and
transactions.  Physics of occupied regions is critical-path; everything else (AI, physics
of empty regions, snapshots, analytics) is background.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace

from app.errors import InvalidRequest
from app.protocol.queues import PLAYER_FACING, TASK_QUEUES, Queue, instance_queue, unit_queue
from app.protocol.vocab import SessionType
from app.settings import DEFAULT_SESSION_WEIGHTS

CRITICAL_BOOST = 2
SLACK_URGENT_MS = 100.0
ACTIVITY_HALF_LIFE_S = 2.0
ACTIVITY_FULL_HZ = 10.0
PLAYERS_FULL = 64


@dataclass(frozen=True)
class Band:
    """The priority steps a kind of work may use (low = most urgent)."""

    low: int
    high: int


# Player-facing bands end above where background bands begin, so a worker that consumes
# several queues (role "all") still takes any player-facing message first.
BANDS: dict[Queue, Band] = {
    Queue.PLAYER: Band(0, 3),
    Queue.TRANSACTIONS: Band(1, 3),
    Queue.PHYSICS: Band(2, 6),
    Queue.AI: Band(4, 8),
    Queue.BACKGROUND: Band(7, 9),
    Queue.CONTROL: Band(0, 0),
}


@dataclass(frozen=True)
class Route:
    """Where a task goes: its queue and Celery priority step (for physics, its unit's
    queue when `unit` is set; for a session's work, its instance's when `instance` is)."""

    task: str
    queue: Queue
    priority: int
    unit: int | None = None
    instance: str | None = None

    @property
    def queue_name(self) -> str:
        """The name of the queue it goes to."""
        if self.unit is not None:
            return unit_queue(self.unit)
        return self.queue.value if self.instance is None else instance_queue(self.queue,
                                                                              self.instance)

    @property
    def player_facing(self) -> bool:
        """True for work a player waits on."""
        return self.queue in PLAYER_FACING


@dataclass(frozen=True)
class Factors:
    """What decides urgency: the session's type, its players, its region's players,
    its recent activity, and how much time is left before the result is due."""

    session_type: str = SessionType.CASUAL
    players: int = 1
    region_players: int = 0
    activity_hz: float = 0.0
    slack_ms: float | None = None


def urgency(factors: Factors, weights: dict[str, float] | None = None) -> float:
    """A 0..1 urgency from session factors (1 = most urgent)."""
    weights = weights or DEFAULT_SESSION_WEIGHTS
    if factors.session_type not in weights:
        raise InvalidRequest("session_type", factors.session_type,
                             f"expected one of {', '.join(weights)}")
    crowd = factors.players + factors.region_players / 4
    players_term = min(1.0, math.log2(1 + max(0.0, crowd)) / math.log2(1 + PLAYERS_FULL))
    activity_term = min(1.0, max(0.0, factors.activity_hz) / ACTIVITY_FULL_HZ)
    value = weights[factors.session_type] * (0.5 * players_term + 0.5 * activity_term)
    if factors.slack_ms is not None:
        value = max(value, 1.0 - max(0.0, factors.slack_ms) / SLACK_URGENT_MS)
    return min(1.0, max(0.0, value))


def route(task: str, factors: Factors | None = None, *, critical: bool = False,
          weights: dict[str, float] | None = None) -> Route:
    """The queue and priority step of `task` for work with `factors`."""
    queue = TASK_QUEUES[task]
    band = BANDS[queue]
    level = urgency(factors, weights) if factors is not None else 0.5
    step = band.low + round((1.0 - level) * (band.high - band.low))
    if critical:
        step -= CRITICAL_BOOST
    return Route(task=task, queue=queue, priority=max(0, min(9, step)))


def inherit(dependency: Route, dependent: Route) -> Route:
    """The dependency raised to its dependent's step when that is higher (lower number)."""
    return replace(dependency, priority=min(dependency.priority, dependent.priority))


@dataclass
class ActivityMeter:
    """Recent inputs per second, decaying exponentially with ACTIVITY_HALF_LIFE_S."""

    rate: float = 0.0
    at: float = field(default_factory=time.monotonic)

    def hit(self, now: float | None = None) -> None:
        """Count one input."""
        self.rate = self.value(now) + math.log(2) / ACTIVITY_HALF_LIFE_S
        self.at = time.monotonic() if now is None else now

    def value(self, now: float | None = None) -> float:
        """The decayed rate at `now`."""
        now = time.monotonic() if now is None else now
        decay: float = 0.5 ** (max(0.0, now - self.at) / ACTIVITY_HALF_LIFE_S)
        return self.rate * decay
