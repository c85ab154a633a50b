"""The controller: every tick it reads load and writes a decision workers act on.

This first controller measures queue depths and fleet CPU and sets the AI throttle level
from them; later work adds prediction, level of detail and time dilation.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

import psutil
from celery import Celery

from app.hotstore import HotStore
from app.priority import route
from app.tasking import HANDOFF_HEADER
from app.tasknames import TICK_TASK

DECISION_KEY = "gamesched:control:decision"


@dataclass(frozen=True)
class Load:
    """What the controller reads each tick."""

    depths: dict[str, int]
    cpu: float


@dataclass(frozen=True)
class Decision:
    """What the controller decided: AI runs at `ai_level` of its full rate (floor included)."""

    at: float
    cpu: float
    depths: dict[str, int]
    ai_level: float
    shed_background: bool


AI_FLOOR = 0.25


def send_tick(app: Celery) -> None:
    """Send the controller's tick now, as beat does each period: for fleets that run the
    control worker without beat (the demo, the simulator)."""
    tick = route(TICK_TASK)
    app.send_task(tick.task, queue=tick.queue.value, priority=tick.priority,
                  headers={HANDOFF_HEADER: time.time()})


def decide(load: Load, cpu_cap: float) -> Decision:
    """Throttle AI in proportion to how far CPU is over the cap, never below the floor."""
    over = max(0.0, load.cpu - cpu_cap) / max(1e-9, 1.0 - cpu_cap)
    ai_level = max(AI_FLOOR, 1.0 - over)
    backlog = load.depths.get("player", 0) + load.depths.get("transactions", 0)
    return Decision(
        at=time.time(), cpu=load.cpu, depths=load.depths, ai_level=round(ai_level, 3),
        shed_background=load.cpu > cpu_cap or backlog > 0,
    )


def measure_cpu() -> float:
    """Machine CPU utilisation since the previous call, 0..1."""
    return psutil.cpu_percent(interval=None) / 100.0


def write_decision(hot: HotStore, decision: Decision) -> None:
    """Publish `decision` for workers and `gamesched status`."""
    hot.set(DECISION_KEY, json.dumps(asdict(decision)).encode())


def read_decision(hot: HotStore) -> Decision | None:
    """The last published decision, or None before the first tick."""
    raw = hot.get(DECISION_KEY)
    return Decision(**json.loads(raw)) if raw else None
