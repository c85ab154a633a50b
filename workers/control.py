"""Control role: the controller's tick, sent by beat about once a second (queue ``control``)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from celery import shared_task

from app.control import controller, dilation
from app.protocol.names import TICK_TASK
from app.tasking.base import GameTask
from app.tasking.broker import queue_depths


@shared_task(base=GameTask, bind=True, name=TICK_TASK, ignore_result=True)
def tick(self: GameTask) -> dict[str, Any]:
    """Read load, decide, publish the decision.  Idempotent; a missed tick is not retried."""
    hot = self.runtime.hot
    load = controller.Load(depths=queue_depths(self.app), cpu=controller.measure_cpu(),
                           slow_total=dilation.slow_total(hot))
    decision = controller.decide(load, self.runtime.settings.cpu_cap,
                                 controller.read_decision(hot))
    controller.write_decision(hot, decision)
    return asdict(decision)
