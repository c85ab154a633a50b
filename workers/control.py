"""Control role: the controller's tick, sent by beat about once a second (queue ``control``)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from celery import Celery, shared_task

from app.control import controller, dilation
from app.control.cpu import CpuMeter, meter
from app.observe.metrics import show_decision
from app.physics.director import Director
from app.protocol import keys
from app.protocol.names import TICK_TASK
from app.protocol.vocab import Queue
from app.tasking.base import GameTask
from app.tasking.broker import queue_depths, resize_pools

log = logging.getLogger(__name__)
_DIRECTORS: dict[int, Director] = {}  # this process's, by the number of units
_METERS: dict[str, CpuMeter] = {}  # this process's, by GAMESCHED_CONTROLLER_CPU


@shared_task(base=GameTask, bind=True, name=TICK_TASK, ignore_result=True)
def tick(self: GameTask) -> dict[str, Any]:
    """Read load, decide, publish the decision.  Idempotent; a missed tick is not retried."""
    hot = self.runtime.hot
    settings = self.runtime.settings
    kind = settings.controller_cpu
    cpu = (_METERS.get(kind) or _METERS.setdefault(kind, meter(kind))).measure()
    load = controller.Load(depths=queue_depths(self.app), cpu=cpu,
                           slow_total=dilation.slow_total(hot),
                           late_total=dilation.slow_total(hot, keys.CONTROL_PLAYER_LATE))
    previous = controller.read_decision(hot)
    decision = controller.decide(load, settings.cpu_cap, previous,
                                 ai_pool_max=settings.ai.concurrency)
    controller.write_decision(hot, decision)
    show_decision(decision.gauges())
    change = controller.changed(previous, decision)
    if change is not None:  # each action's change, with what it acted on
        log.info("controller: %s", change)
    if decision.ai_pool:
        _AI_POOLS.keep(self.app, decision.ai_pool)
    _balance_physics(self)
    return asdict(decision)


class PoolKeeper:
    """Keeps the AI workers' pools at the size the controller decides, in a thread of the
    controller's process (asking the workers takes a second or two, longer than a tick):
    when the size changes, and every `RECHECK_TICKS` ticks (a broadcast that was missed, a
    worker started since at its own size)."""

    RECHECK_TICKS = 10

    def __init__(self, resize: Callable[[Celery, int], None]) -> None:
        self._resize = resize
        self.kept = 0  # the size last asked for
        self._ticks = 0
        self._running: threading.Thread | None = None

    def keep(self, app: Celery, processes: int) -> None:
        """Resize the AI pools to `processes` if it changed or the recheck is due."""
        self._ticks += 1
        if processes == self.kept and self._ticks < self.RECHECK_TICKS:
            return
        if self._running is not None and self._running.is_alive():
            return
        self.kept, self._ticks = processes, 0
        self._running = threading.Thread(target=self._resize, args=(app, processes),
                                         name="ai-pools", daemon=True)
        self._running.start()


def _resize_ai(app: Celery, processes: int) -> None:
    """Resize the AI workers' pools to `processes` (Celery's remote control)."""
    try:
        before = resize_pools(app, Queue.AI.value, processes)
    except Exception:  # the next recheck tries again
        log.warning("the AI workers' pools could not be resized", exc_info=True)
        return
    if any(size != processes for size in before.values()):
        log.info("AI pools resized to %d processes (were %s)", processes, before)


_AI_POOLS = PoolKeeper(_resize_ai)


def _balance_physics(task: GameTask) -> None:
    """Move regions between physics units when one carries too much (`app.physics.director`)."""
    links = task.runtime.physics
    director = _DIRECTORS.setdefault(links.units, Director(links.units))
    move = director.direct(links)
    if move is None:
        return
    plan = move.plan
    if plan.splits or plan.merges:
        links.notes.count({"splits": len(plan.splits), "merges": len(plan.merges)})
        log.info("physics: split %s, merged %s, epoch %d", ", ".join(plan.splits) or "none",
                 ", ".join(plan.merges) or "none", move.epoch)
    if plan.moving:  # (else it only named new regions in the map)
        links.notes.count({"moves": len(plan.moving), "rebalances": 1})
        log.info("physics: moved %s (costliest unit over the mean %.2f -> %.2f), epoch %d",
                 ", ".join(sorted(plan.moving)), plan.before, plan.after, move.epoch)
