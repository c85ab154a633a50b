"""Background role: snapshots and analytics (queue ``background``), shed first under load."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app.db import transaction
from app.players import background
from app.protocol.names import ANALYTICS_TASK, SNAPSHOT_TASK
from app.tasking import slots  # noqa: F401  (registers the slots command in background workers)
from app.tasking.base import GameTask


@shared_task(base=GameTask, bind=True, name=SNAPSHOT_TASK, dilatable=True)
def snapshot(self: GameTask, session_ids: list[str]) -> int:
    """Persist the hot state of `session_ids` to SQL, each read from the hot store of the
    instance it runs on (a store that does not answer is left out, logged).  Idempotent;
    not retried (the next snapshot covers it)."""
    states = background.read_each(self.runtime.hot_stores.where_they_run(session_ids))
    if not states:
        return 0
    with transaction(self.runtime.sessions) as db:
        return background.snapshot(db, states)


@shared_task(base=GameTask, bind=True, name=ANALYTICS_TASK, dilatable=True)
def analytics(self: GameTask, events: list[dict[str, Any]]) -> dict[str, int]:
    """Roll up a batch of analytics events.  Pure and idempotent; not retried."""
    return background.analytics(events)
