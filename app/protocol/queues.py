"""The queues: which queue holds which task, and which queues are player-facing or
latency-bound.  Queue names are part of the wire contract, as task names are."""

from __future__ import annotations

from collections.abc import Iterable

from app.protocol import names
from app.protocol.vocab import Queue

__all__ = ["INSTANCE_NAME", "INSTANCE_QUEUES", "LATENCY_BOUND", "NAIVE_QUEUE", "PLAYER_FACING",
           "PRIORITY_STEPS", "TASK_QUEUES", "Queue", "instance_queue", "task_module",
           "task_modules", "unit_queue", "unit_queues"]

# A server instance's name, as its queues carry it (``player.<instance>``).
INSTANCE_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
# The queues a server instance has of its own: its sessions' work.
INSTANCE_QUEUES: tuple[Queue, ...] = (Queue.PLAYER,)
PRIORITY_STEPS = list(range(10))  # 0 is the highest on Redis
NAIVE_QUEUE = "celery"  # Celery's default queue: the baseline sends everything there

# Task name -> queue.
TASK_QUEUES: dict[str, Queue] = {
    names.UPDATE_TASK: Queue.PLAYER,
    names.SESSION_TASK: Queue.PLAYER,
    names.SESSION_MOVES_TASK: Queue.PLAYER,
    names.ARRIVE_TASK: Queue.PLAYER,
    names.VOID_TASK: Queue.PLAYER,
    names.STATE_TASK: Queue.PLAYER,  # the textbook baseline sends it to NAIVE_QUEUE instead
    names.PHYSICS_REGION_TASK: Queue.PHYSICS,
    names.PHYSICS_FRAME_TASK: Queue.PHYSICS,
    names.PHYSICS_BODIES_TASK: Queue.PHYSICS,
    names.AI_TASK: Queue.AI,
    names.AI_BATCH_TASK: Queue.AI,
    names.APPLY_TASK: Queue.TRANSACTIONS,
    names.APPLY_BATCH_TASK: Queue.TRANSACTIONS,
    names.SWEEP_TASK: Queue.CONTROL,  # beat-driven, beside the controller
    names.SNAPSHOT_TASK: Queue.BACKGROUND,
    names.ANALYTICS_TASK: Queue.BACKGROUND,
    names.TICK_TASK: Queue.CONTROL,
}


def task_module(task: str) -> str:
    """The module that defines `task`: ``workers.<kind>`` for ``gamesched.<kind>.<name>``."""
    return f"workers.{task.split('.')[1]}"


def task_modules(queues: Iterable[str]) -> list[str]:
    """The task modules a worker consuming `queues` imports: those defining the tasks routed
    to them (an instance's ``player.<instance>`` and a unit's ``physics.<unit>`` are the
    player and physics queues); every one on the baselines' shared queue, which carries
    everything.  A worker without a task's module would drop that task's messages as
    unregistered."""
    kinds = {name.split(".", 1)[0] for name in queues}
    return sorted({task_module(task) for task, queue in TASK_QUEUES.items()
                   if queue.value in kinds or NAIVE_QUEUE in kinds})


PLAYER_FACING: frozenset[Queue] = frozenset({Queue.PLAYER, Queue.TRANSACTIONS})
# Queues whose tasks are acked after they run, so a busy prefetch-1 worker reserves nothing
# and a message sent later at a higher priority is fetched first.
LATENCY_BOUND: frozenset[Queue] = frozenset({Queue.PLAYER, Queue.PHYSICS, Queue.TRANSACTIONS})


def unit_queue(unit: int) -> str:
    """The queue of physics unit `unit`: ``physics.<unit>``."""
    return f"{Queue.PHYSICS.value}.{unit}"


def unit_queues(units: int) -> list[str]:
    """The queues of `units` physics units."""
    return [unit_queue(unit) for unit in range(units)]


def instance_queue(queue: Queue, instance: str) -> str:
    """The queue of `queue`'s work for the sessions of server instance `instance`:
    ``player.<instance>``."""
    return f"{queue.value}.{instance}"
