"""Broker inspection: queue depths and the workers that answer."""

from __future__ import annotations

from typing import Any

from celery import Celery

from app.roles import Queue


def queue_depths(app: Celery) -> dict[str, int]:
    """Messages waiting in each gamesched queue (every priority step summed on Redis)."""
    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for queue in Queue:
            try:
                depths[queue.value] = int(channel.queue_declare(queue.value, passive=True)[1])
            except Exception:  # noqa: BLE001 - a queue nobody declared yet is empty
                depths[queue.value] = 0
    return depths


def live_workers(app: Celery, timeout: float = 1.0) -> dict[str, Any]:
    """Workers that answer a ping within `timeout`, with the queues each consumes."""
    replies = app.control.inspect(timeout=timeout).active_queues() or {}
    return {name: sorted(q["name"] for q in queues) for name, queues in replies.items()}
