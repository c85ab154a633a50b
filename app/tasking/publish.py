"""The one place that decides how a message is published.

`Publisher` sends each message to its queue at its priority step.  The naive baseline
(``GAMESCHED_NAIVE``) is `SharedQueuePublisher`: what plain Celery does with a task
sent by name, Celery's default queue and no priority.  Everything that sends (the client,
the sweeper's re-sends, the controller's tick) goes through the app's publisher, so the
baseline is a matter of configuration, never a branch in a caller.  The textbook baseline
(``GAMESCHED_TEXTBOOK``) has a client of its own instead, `app.client.textbook`, that sends
with ``send_task`` as plain Celery code does.
"""

from __future__ import annotations

import time
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from app.priority import Route, route
from app.protocol.names import HANDOFF_HEADER, TICK_TASK
from app.settings import Settings

ARGSREPR = "(...)"  # a batch's arguments are not rendered for display on every send


class Publisher:
    """Sends a message to its route's queue at its route's priority step."""

    def __init__(self, app: Celery) -> None:
        self.app = app

    def send(self, where: Route, args: list[Any], headers: dict[str, Any], *,
             task_id: str | None = None, serializer: str | None = None) -> AsyncResult:
        """Publish `where.task` with `args` and `headers`; returns the task's handle."""
        return self.app.send_task(where.task, args=args, queue=where.queue_name,
                                  priority=where.priority, headers=headers, task_id=task_id,
                                  argsrepr=ARGSREPR, kwargsrepr="{}", serializer=serializer)


class SharedQueuePublisher(Publisher):
    """The baseline: every message to Celery's default queue, without a priority, as a
    team sending tasks by name with Celery's defaults would."""

    def send(self, where: Route, args: list[Any], headers: dict[str, Any], *,
             task_id: str | None = None, serializer: str | None = None) -> AsyncResult:
        """Publish `where.task` to the default queue, ignoring its route."""
        return self.app.send_task(where.task, args=args, headers=headers, task_id=task_id,
                                  serializer=serializer)


def publisher_for(app: Celery, settings: Settings) -> Publisher:
    """The publisher `settings` ask for."""
    return SharedQueuePublisher(app) if settings.naive else Publisher(app)


def connect(app: Celery) -> None:
    """Connect `app` to its broker now and load what its first send would load (the result
    backend, a producer and its connection), so that a game server pays them at boot rather
    than in its first tick.  Celery keeps the backend per thread: call it from the thread
    that will send.  Raises kombu's OperationalError when the broker cannot be reached."""
    _ = app.backend  # loaded on its first use otherwise: about 10 ms
    with app.producer_or_acquire() as producer:
        producer.connection.ensure_connection(max_retries=1)


def send_tick(app: Celery) -> None:
    """Send the controller's tick now, as beat does each period: for fleets that run the
    control worker without beat (the demo, the simulator)."""
    app.publisher.send(route(TICK_TASK), [], {HANDOFF_HEADER: time.time()})
