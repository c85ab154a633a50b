"""Broker inspection: queue depths, the oldest waiting message, the workers that answer."""

from __future__ import annotations

import json
from typing import Any, NamedTuple

from celery import Celery
from kombu.transport.redis import Channel as RedisChannel

from app.protocol.names import HANDOFF_HEADER
from app.protocol.queues import (
    INSTANCE_QUEUES,
    PRIORITY_STEPS,
    Queue,
    instance_queue,
    unit_queues,
)

STEP_SEP: str = RedisChannel.sep  # kombu's default, which the fleet keeps


def queue_names(app: Celery) -> list[str]:
    """Every gamesched queue: one per kind of work, one per physics unit, and those of each
    server instance registered."""
    instances = [instance_queue(queue, state.name) for state in app.runtime.instances.instances()
                 for queue in INSTANCE_QUEUES]
    return [q.value for q in Queue] + unit_queues(app.runtime.settings.physics_units) + instances


def queue_depths(app: Celery) -> dict[str, int]:
    """Messages waiting in each gamesched queue (every priority step summed on Redis, read
    in one round trip on a pooled broker connection)."""
    names = queue_names(app)
    with app.pool.acquire(block=True) as conn:
        channel = conn.default_channel
        if app.runtime.settings.uses_redis:
            return _redis_depths(channel.client, names)
        return {name: _declared_depth(channel, name) for name in names}


def _redis_depths(client: Any, names: list[str]) -> dict[str, int]:
    with client.pipeline(transaction=False) as pipe:
        for name in names:
            for step in PRIORITY_STEPS:
                pipe.llen(step_key(name, step))
        sizes = pipe.execute()
    steps = len(PRIORITY_STEPS)
    return {name: int(sum(sizes[i * steps:(i + 1) * steps])) for i, name in enumerate(names)}


def _declared_depth(channel: Any, name: str) -> int:
    try:
        return int(channel.queue_declare(name, passive=True)[1])
    except Exception:  # noqa: BLE001 - a queue nobody declared yet is empty
        return 0


class Waiting(NamedTuple):
    """What waits in one queue: how many messages, and when the oldest of them was handed
    over (its ``gs_handoff`` header, seconds since the epoch; None when nothing waits, when a
    message waits without the header, or when the broker is not Redis)."""

    messages: int
    oldest_handoff: float | None


def waiting(app: Celery, queue: str) -> Waiting:
    """What waits in `queue`, read in one round trip on Redis.

    Redis keeps one list per priority step (`step_key`); a list
    is pushed on the left and popped on the right, so its oldest message is its last."""
    if not app.runtime.settings.uses_redis:
        return Waiting(queue_depths(app).get(queue, 0), None)
    keys = [step_key(queue, step) for step in PRIORITY_STEPS]
    with app.pool.acquire(block=True) as conn:
        client = conn.default_channel.client
        with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.llen(key)
                pipe.lindex(key, -1)
            replies = pipe.execute()
    sizes, raws = replies[0::2], replies[1::2]
    times = [_handoff(raw) for raw in raws if raw is not None]
    if not times or None in times:  # nothing waits, or a message without the header
        return Waiting(sum(sizes), None)
    return Waiting(sum(sizes), min(t for t in times if t is not None))


def step_key(queue: str, step: int) -> str:
    """The Redis list of `queue`'s priority step `step`: ``queue``, then ``queue`` with
    kombu's separator (``\\x06\\x16``) and the step, 1 ... 9."""
    return queue if step == 0 else f"{queue}{STEP_SEP}{step}"


def _handoff(raw: bytes) -> float | None:
    try:
        value = json.loads(raw).get("headers", {}).get(HANDOFF_HEADER)
        return float(value) if value is not None else None
    except (ValueError, TypeError, AttributeError):
        return None


def live_workers(app: Celery, timeout: float = 1.0) -> dict[str, Any]:
    """Workers that answer a ping within `timeout`, with the queues each consumes."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {name: sorted(q["name"] for q in queues) for name, queues in replies.items()}


def forward(app: Celery, source: str, target: str) -> int:
    """Move every message waiting in queue `source` to queue `target`, each at its priority
    step, oldest first, behind what waits there already; returns how many moved (none off
    Redis: an in-memory broker lives and dies with its one process)."""
    if not app.runtime.settings.uses_redis:
        return 0
    moved = 0
    with app.connection_for_write() as conn:
        client = conn.default_channel.client
        for step in PRIORITY_STEPS:
            while client.rpoplpush(step_key(source, step), step_key(target, step)) is not None:
                moved += 1
    return moved
