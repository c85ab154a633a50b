"""Physics role: region steps (queue ``physics``)."""

from __future__ import annotations

from celery import shared_task

from app import physics
from app.tasking import GameTask


@shared_task(base=GameTask, bind=True, name="gamesched.physics.step_region")
def step_region(self: GameTask, region: str, frame: int, dt_ms: float, bodies: int) -> int:
    """Step one region by one frame; returns its body count.  Not retried: the next frame
    supersedes a lost one."""
    return physics.step_region(region, frame, dt_ms, bodies).bodies
