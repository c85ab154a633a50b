"""Queues and worker roles: which queue holds which work, and how each role consumes it."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from app import tasknames


class Queue(StrEnum):
    """The Celery queues; each kind of work has its own."""

    PLAYER = "player"
    PHYSICS = "physics"
    AI = "ai"
    TRANSACTIONS = "transactions"
    BACKGROUND = "background"
    CONTROL = "control"


@dataclass(frozen=True)
class Role:
    """How a worker role consumes its queues."""

    name: str
    queues: tuple[Queue, ...]
    pool: str


ROLES: dict[str, Role] = {
    "player": Role("player", (Queue.PLAYER,), "threads"),
    "physics": Role("physics", (Queue.PHYSICS,), "threads"),
    "ai": Role("ai", (Queue.AI,), "threads"),
    "transactions": Role("transactions", (Queue.TRANSACTIONS,), "threads"),
    "background": Role("background", (Queue.BACKGROUND,), "prefork"),
    "control": Role("control", (Queue.CONTROL,), "solo"),
    "all": Role("all", tuple(Queue), "threads"),
}

WORKER_ROLES: tuple[str, ...] = ("player", "physics", "ai", "transactions", "background")

# Task name -> queue (the names are the wire contract: `app.tasknames`).
TASK_QUEUES: dict[str, Queue] = {
    tasknames.UPDATE_TASK: Queue.PLAYER,
    tasknames.SESSION_TASK: Queue.PLAYER,
    tasknames.PHYSICS_REGION_TASK: Queue.PHYSICS,
    tasknames.PHYSICS_FRAME_TASK: Queue.PHYSICS,
    tasknames.AI_TASK: Queue.AI,
    tasknames.AI_BATCH_TASK: Queue.AI,
    tasknames.APPLY_TASK: Queue.TRANSACTIONS,
    tasknames.APPLY_BATCH_TASK: Queue.TRANSACTIONS,
    tasknames.SWEEP_TASK: Queue.CONTROL,  # beat-driven, beside the controller
    tasknames.SNAPSHOT_TASK: Queue.BACKGROUND,
    tasknames.ANALYTICS_TASK: Queue.BACKGROUND,
    tasknames.TICK_TASK: Queue.CONTROL,
}

PLAYER_FACING: frozenset[Queue] = frozenset({Queue.PLAYER, Queue.TRANSACTIONS})
# Queues whose tasks are acked after they run, so a busy prefetch-1 worker reserves nothing
# and a message sent later at a higher priority is fetched first.
LATENCY_BOUND: frozenset[Queue] = frozenset({Queue.PLAYER, Queue.PHYSICS, Queue.TRANSACTIONS})


def role(name: str) -> Role:
    """Return the role called `name`, or raise InvalidRequest naming it."""
    from app.errors import InvalidRequest

    try:
        return ROLES[name]
    except KeyError:
        raise InvalidRequest("role", name, f"expected one of {', '.join(ROLES)}") from None
