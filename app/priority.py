"""Classification and priority: which queue a kind of work goes to, and at which step.

Priority steps follow Redis: 0 is the highest, 9 the lowest.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.roles import PLAYER_FACING, TASK_QUEUES, Queue

BASE_PRIORITY: dict[Queue, int] = {
    Queue.PLAYER: 2,
    Queue.TRANSACTIONS: 2,
    Queue.PHYSICS: 3,
    Queue.CONTROL: 0,
    Queue.AI: 6,
    Queue.BACKGROUND: 8,
}
CRITICAL_BOOST = 2


@dataclass(frozen=True)
class Route:
    """Where a task goes: its queue and Celery priority step."""

    task: str
    queue: Queue
    priority: int

    @property
    def player_facing(self) -> bool:
        """True for work a player waits on."""
        return self.queue in PLAYER_FACING


def route(task: str, *, critical: bool = False) -> Route:
    """The queue and priority of `task`; critical work is boosted toward step 0."""
    queue = TASK_QUEUES[task]
    priority = BASE_PRIORITY[queue] - (CRITICAL_BOOST if critical else 0)
    return Route(task=task, queue=queue, priority=max(0, min(9, priority)))
