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
from app.physics.slowed import describe
from app.protocol import keys
from app.protocol.names import TICK_TASK
from app.protocol.vocab import Queue
from app.tasking.arrivals import send_arrivals
from app.tasking.base import GameTask
from app.tasking.broker import queue_depths
from app.tasking.failover import take_over
from app.tasking.slots import set_slots

log = logging.getLogger(__name__)
_DIRECTORS: dict[int, Director] = {}  # this process's, by the number of units
_METERS: dict[str, CpuMeter] = {}  # this process's, by GAMESCHED_CONTROLLER_CPU


@shared_task(base=GameTask, bind=True, name=TICK_TASK, ignore_result=True)
def tick(self: GameTask) -> dict[str, Any]:
    """Read load, decide, publish the decision.  Idempotent; a missed tick is not retried."""
    hot = self.runtime.fleet
    settings = self.runtime.settings
    kind = settings.controller_cpu
    cpu = (_METERS.get(kind) or _METERS.setdefault(kind, meter(kind))).measure()
    load = controller.Load(depths=queue_depths(self.app), cpu=cpu,
                           slow_total=dilation.slow_total(hot),
                           late_total=dilation.slow_total(hot, keys.CONTROL_PLAYER_LATE))
    previous = controller.read_decision(hot)
    decision = controller.decide(load, settings.cpu_cap, previous,
                                 ai_slots_max=settings.ai.concurrency,
                                 background_slots_max=settings.background.concurrency)
    controller.write_decision(hot, decision)
    show_decision(decision.gauges())
    change = controller.changed(previous, decision)
    if change is not None:  # each action's change, with what it acted on
        log.info("controller: %s", change)
    if decision.ai_slots:
        _SLOTS[Queue.AI].keep(self.app, decision.ai_slots)
    if decision.background_slots:
        _SLOTS[Queue.BACKGROUND].keep(self.app, decision.background_slots)
    _balance_physics(self)
    for taken in take_over(self.app):  # from server instances that went silent
        log.warning("instance %s %s: %d sessions moved (%d stayed, no room), %d messages "
                    "forwarded", taken.instance, taken.why, taken.moved, taken.stayed,
                    taken.forwarded)
    moves = self.runtime.instances.rebalance()  # towards an instance that (re)started
    if moves:
        send_arrivals(self.app, moves)
        log.info("instances: %d sessions moved to %s, below the mean load", len(moves),
                 moves[0].target)
    return asdict(decision)


class SlotKeeper:
    """Keeps one role's workers at the slots the controller decides (`app.tasking.slots`),
    in a thread of the controller's process (asking the workers takes a second or two,
    longer than a tick): when the number changes, and every `RECHECK_TICKS` ticks (a broadcast
    that was missed, a worker started since, or one whose consumer reconnected, at its
    pool's size)."""

    RECHECK_TICKS = 10

    def __init__(self, apply: Callable[[Celery, int], None]) -> None:
        self._apply = apply
        self.kept = 0  # the slots last asked for
        self._ticks = 0
        self._running: threading.Thread | None = None

    def keep(self, app: Celery, slots: int) -> None:
        """Set the workers' slots to `slots` if it changed or the recheck is due."""
        self._ticks += 1
        if slots == self.kept and self._ticks < self.RECHECK_TICKS:
            return
        if self._running is not None and self._running.is_alive():
            return
        self.kept, self._ticks = slots, 0
        self._running = threading.Thread(target=self._apply, args=(app, slots),
                                         name="slots", daemon=True)
        self._running.start()


def _setter(queue: Queue) -> Callable[[Celery, int], None]:
    """What gives the workers consuming `queue` their slots (Celery's remote control)."""

    def set_them(app: Celery, slots: int) -> None:
        try:
            before = set_slots(app, queue.value, slots)
        except Exception:  # the next recheck tries again
            log.warning("the %s workers' slots could not be set", queue.value, exc_info=True)
            return
        if any(held != slots for held in before.values()):
            log.info("%s workers' slots set to %d (were %s)", queue.value, slots, before)

    return set_them


_SLOTS = {queue: SlotKeeper(_setter(queue)) for queue in (Queue.AI, Queue.BACKGROUND)}


def _balance_physics(task: GameTask) -> None:
    """Move regions between physics units when one carries too much (`app.physics.director`)."""
    links = task.runtime.physics
    director = _DIRECTORS.setdefault(links.units, Director(links.units))
    slowed = director.slowed
    move = director.direct(links)
    if director.slowed != slowed:
        log.info("physics: slowed %s", describe(director.slowed))
    show_decision({"physics_slowed": len(director.slowed)})
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
