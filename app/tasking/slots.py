"""Task slots: how many tasks a running worker holds at once, changed while it runs.

A worker whose tasks are acknowledged late (after they ran) holds at most its consumer's
prefetch count of them: a message is fetched only while fewer are unacknowledged.  With a
prefetch multiplier of 1 that count starts at the pool's size, and `gamesched_slots`, a
remote control command, sets it to any number up to it: the worker runs that many tasks at
once, its other pool processes idle.  The controller limits the AI and background workers
this way (`workers.control`).

Celery's own ``pool_shrink`` and ``pool_grow`` change the processes instead; measured here,
a prefork worker whose pool was shrunk after it had grown stopped fetching for 3.6-3.8 s,
and every AI decision waited that long (docs/measurements.md).
"""

from __future__ import annotations

from typing import Any

from celery import Celery
from celery.worker.control import control_command

from app.tasking.broker import live_workers

SLOTS_COMMAND = "gamesched_slots"


@control_command(args=[("n", int)], signature="[N=1]")  # type: ignore[untyped-decorator]
def gamesched_slots(state: Any, n: int = 1, **_: Any) -> dict[str, str]:
    """Hold at most `n` unacknowledged tasks at once (at least 1): the consumer's prefetch
    count, which its loop applies on its next turn."""
    qos = state.consumer.qos
    qos.value = max(1, int(n))
    qos.update()
    return {"ok": f"slots set to {qos.value}"}


def slots(app: Celery, queue: str, timeout: float = 1.0) -> dict[str, int]:
    """The workers consuming `queue` and no other that answer within `timeout`, and their
    slots (their consumers' prefetch counts).  A worker that also consumes other queues
    (``--role all``) is left out: its slots are every queue's."""
    hosts = [host for host, names in live_workers(app, timeout).items() if names == [queue]]
    if not hosts:
        return {}
    stats = app.control.inspect(destination=hosts, timeout=timeout).stats() or {}
    return {host: int(info["prefetch_count"]) for host, info in stats.items()
            if isinstance(info.get("prefetch_count"), int)}


def set_slots(app: Celery, queue: str, target: int, timeout: float = 1.0) -> dict[str, int]:
    """Give every worker consuming `queue` alone `target` slots; returns each one's slots
    before (those already at `target` are not asked)."""
    before = slots(app, queue, timeout)
    changing = [host for host, held in before.items() if held != target]
    if changing:
        app.control.broadcast(SLOTS_COMMAND, arguments={"n": target}, destination=changing,
                              reply=True, timeout=timeout)
    return before
