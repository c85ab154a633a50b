"""Physics role: region steps and frames of many regions (queue ``physics``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app import physics
from app.protocol.names import PHYSICS_FRAME_TASK, PHYSICS_REGION_TASK
from app.tasking.base import GameTask


@shared_task(base=GameTask, bind=True, name=PHYSICS_REGION_TASK)
def step_region(self: GameTask, region: str, frame: int, dt_ms: float, bodies: int) -> int:
    """Step one region by one frame; returns its body count.  Not retried: the next frame
    supersedes a lost one."""
    return physics.step_region(region, frame, dt_ms, bodies).bodies


@shared_task(base=GameTask, bind=True, name=PHYSICS_FRAME_TASK)
def step_frame(self: GameTask, frame: int, dt_ms: float, regions: list[list[Any]]) -> int:
    """Step every ``[region, bodies]`` of `regions` by one frame; returns their bodies.
    Not retried, as `step_region`."""
    steps = physics.step_regions(((str(r), int(b)) for r, b in regions), frame, dt_ms)
    return sum(step.bodies for step in steps)
