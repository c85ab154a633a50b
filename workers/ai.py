"""AI role: NPC decisions (queue ``ai``)."""

from __future__ import annotations

from celery import shared_task

from app import ai
from app.tasking import GameTask


@shared_task(base=GameTask, bind=True, name="gamesched.ai.decide")
def decide(self: GameTask, npc: str, position: list[float], players: list[list[float]]) -> str:
    """Decide one NPC's next action.  Pure and idempotent; not retried."""
    return ai.decide(position, players)
