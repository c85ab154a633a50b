"""Player role: session state updates and session operations (queue ``player``)."""

from __future__ import annotations

from typing import Any

from celery import shared_task

from app import sessions
from app.db import transaction
from app.tasking import GameTask


@shared_task(base=GameTask, bind=True, name="gamesched.player.apply_updates")
def apply_updates(self: GameTask, updates: list[dict[str, Any]]) -> int:
    """Apply a batch of state updates in per-session sequence order.

    Idempotent: an update at or below a session's applied sequence is skipped.  No retries:
    a newer update supersedes a lost one.
    """
    return sessions.apply_updates(self.runtime.hot, updates)


@shared_task(base=GameTask, bind=True, name="gamesched.player.session_op")
def session_op(self: GameTask, op: str, session_id: str, spec: dict[str, Any]) -> bool:
    """Open or close a session in SQL.  Idempotent; retried on operational errors."""
    with transaction(self.runtime.sessions) as db:
        if op == "open":
            sessions.open_session(db, session_id, **spec)
            return True
        return sessions.close_session(db, session_id)
