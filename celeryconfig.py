"""The Celery configuration of gamesched, built from the typed settings.

``build(settings)`` returns the dict the app factory hands to ``app.conf``.  Nothing here
runs at import time.
"""

from __future__ import annotations

from typing import Any

from kombu import Exchange
from kombu import Queue as KombuQueue

from app.protocol.names import BEAT_TASKS
from app.protocol.queues import (
    LATENCY_BOUND,
    NAIVE_QUEUE,
    PRIORITY_STEPS,
    TASK_QUEUES,
    Queue,
    task_modules,
)
from app.settings import Settings

# kombu's Redis transport with gamesched's changes (`app.tasking.transport`), named as a
# string so that this module does not import the Celery glue that imports it.
TRANSPORT = "app.tasking.transport:Transport"
# Every task module; a worker started by `gamesched worker` imports only those of the
# queues it consumes (`task_modules`).
WORKER_MODULES = task_modules([NAIVE_QUEUE])

# Acknowledged after they run: the latency-bound queues' tasks (a busy worker reserves
# nothing), and AI's and background's (a worker then runs at most its slots of them,
# `app.tasking.slots`, which the controller sets).
ACKS_LATE_TASKS = [name for name, queue in TASK_QUEUES.items()
                   if queue in LATENCY_BOUND or queue in (Queue.AI, Queue.BACKGROUND)]


def build(settings: Settings) -> dict[str, Any]:
    """Return the Celery configuration for `settings`."""
    config = _gamesched(settings)
    if settings.naive:
        config |= _naive(settings)
    return config


def _naive(settings: Settings) -> dict[str, Any]:
    """The baselines (the textbook one too): Celery's defaults, one shared queue, no
    priorities, JSON, default prefetch, tasks acknowledged as they start."""
    return {
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout_s},
        "task_queues": [KombuQueue(NAIVE_QUEUE)],
        "task_default_queue": NAIVE_QUEUE,
        "task_routes": {},
        "task_default_priority": None,
        "task_serializer": "json",
        "task_acks_late": False,
        "task_annotations": None,
        "task_inherit_parent_priority": False,
        "worker_prefetch_multiplier": 4,
        "beat_schedule": {},
    }


def _gamesched(settings: Settings) -> dict[str, Any]:
    return {
        "broker_url": settings.broker_url,
        "broker_transport": TRANSPORT if settings.uses_redis else None,
        "result_backend": settings.result_backend,
        "task_ignore_result": settings.result_backend is None,
        "broker_transport_options": _transport_options(settings),
        "broker_connection_retry_on_startup": True,
        "task_queues": [_queue(q) for q in Queue],
        "task_default_queue": Queue.BACKGROUND.value,
        "task_routes": {name: {"queue": q.value} for name, q in TASK_QUEUES.items()},
        "task_default_priority": settings.default_priority,
        "task_inherit_parent_priority": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json", "msgpack"],
        "event_serializer": "json",
        "worker_prefetch_multiplier": 1,
        "task_acks_late": False,
        "task_annotations": {name: {"acks_late": True} for name in ACKS_LATE_TASKS},
        "task_track_started": False,
        "worker_hijack_root_logger": False,
        "worker_send_task_events": False,
        "result_expires": 3600,
        "timezone": "UTC",
        "enable_utc": True,
        "include": WORKER_MODULES,
        "beat_schedule": _beat_schedule(settings),
    }


def _queue(queue: Queue) -> KombuQueue:
    return KombuQueue(queue.value, Exchange(queue.value, type="direct"), routing_key=queue.value)


def _transport_options(settings: Settings) -> dict[str, Any]:
    if settings.embedded:
        # The in-memory transport polls; a short interval keeps hand-off latency low.
        return {"polling_interval": 0.002}
    options: dict[str, Any] = {"visibility_timeout": settings.visibility_timeout_s}
    if settings.uses_redis:
        options |= {
            "priority_steps": PRIORITY_STEPS,  # named with kombu's own separator, so a
            # client given only the broker URL reads the fleet's bindings as it writes them
            "queue_order_strategy": "priority",
        }
    else:
        options["polling_interval"] = 0.05
    return options


def _beat_schedule(settings: Settings) -> dict[str, Any]:
    every = settings.controller_period_s
    return {name: {"task": task, "schedule": every,
                   "options": {"queue": Queue.CONTROL.value, "expires": every * 2}}
            for name, task in BEAT_TASKS.items()}
