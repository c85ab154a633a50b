"""AI role: NPC decisions, one or a tick's batch (queue ``ai``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app import ai
from app.protocol.names import AI_BATCH_TASK, AI_TASK
from app.tasking.base import GameTask


@shared_task(base=GameTask, bind=True, name=AI_TASK)
def decide(self: GameTask, npc: str, position: list[float], players: list[list[float]]) -> str:
    """Decide one NPC's next action.  Pure and idempotent; not retried."""
    return ai.decide(position, players)


@shared_task(base=GameTask, bind=True, name=AI_BATCH_TASK)
def decide_batch(self: GameTask, decisions: list[list[Any]]) -> list[str]:
    """Decide each ``[npc, position, players]`` of one AI tick; the actions in order.
    Pure and idempotent; not retried."""
    return [ai.decide(position, players) for _npc, position, players in decisions]
