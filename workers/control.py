"""Control role: the controller's tick, sent by beat about once a second (queue ``control``)."""

from __future__ import annotations

import logging
from dataclasses import asdict
from typing import Any

from celery import shared_task

from app.control import controller, dilation
from app.control.cpu import CpuMeter, meter
from app.physics.director import Director
from app.protocol import keys
from app.protocol.names import TICK_TASK
from app.tasking.base import GameTask
from app.tasking.broker import queue_depths

log = logging.getLogger(__name__)
_DIRECTORS: dict[int, Director] = {}  # this process's, by the number of units
_METERS: dict[str, CpuMeter] = {}  # this process's, by GAMESCHED_CONTROLLER_CPU


@shared_task(base=GameTask, bind=True, name=TICK_TASK, ignore_result=True)
def tick(self: GameTask) -> dict[str, Any]:
    """Read load, decide, publish the decision.  Idempotent; a missed tick is not retried."""
    hot = self.runtime.hot
    kind = self.runtime.settings.controller_cpu
    cpu = (_METERS.get(kind) or _METERS.setdefault(kind, meter(kind))).measure()
    load = controller.Load(depths=queue_depths(self.app), cpu=cpu,
                           slow_total=dilation.slow_total(hot),
                           late_total=dilation.slow_total(hot, keys.CONTROL_PLAYER_LATE))
    decision = controller.decide(load, self.runtime.settings.cpu_cap,
                                 controller.read_decision(hot))
    controller.write_decision(hot, decision)
    _balance_physics(self)
    return asdict(decision)


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
