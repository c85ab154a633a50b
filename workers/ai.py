"""AI role: NPC decisions, one or a tick's batch (queue ``ai``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app.ai import tier_for, tier_named

# The brain at import, as a worker of this role starts, not on its first task: py_trees
# reads sys.stdout's encoding as it loads, and a running worker's stdout is Celery's
# logging proxy, which has none.
from app.ai.brain import Brain, Npc
from app.protocol.names import AI_BATCH_TASK, AI_TASK
from app.tasking import slots  # noqa: F401  (registers the slots command in AI workers)
from app.tasking.base import GameTask


@shared_task(base=GameTask, bind=True, name=AI_TASK)
def decide(self: GameTask, npc: str, position: list[float], players: list[list[float]],
           tier: str | None = None) -> list[Any]:
    """Decide one NPC's next move: ``[action, x, y]`` (the point it heads for).  Without
    a `tier`, the players it sees set it.  Not retried: the next decision supersedes it."""
    return _decide(self.runtime.brain, [npc, position, players, tier])


@shared_task(base=GameTask, bind=True, name=AI_BATCH_TASK)
def decide_batch(self: GameTask, decisions: list[list[Any]]) -> list[list[Any]]:
    """Decide each ``[npc, position, players]`` (and optionally its tier) of one AI tick;
    the moves in order.  Not retried, as `decide`."""
    brain = self.runtime.brain
    return [_decide(brain, entry) for entry in decisions]


def _decide(brain: Brain, entry: list[Any]) -> list[Any]:
    npc, position, players = entry[0], entry[1], entry[2]
    seen = tuple((float(p[0]), float(p[1])) for p in players)
    at = (float(position[0]), float(position[1]))
    named = entry[3] if len(entry) > 3 else None
    tier = tier_for(at, seen) if named is None else tier_named(named)
    return brain.decide(Npc(str(npc), at, seen, tier)).wire()
