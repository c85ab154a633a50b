"""The textbook baseline's player task: one state update per message, applied in Python
(`app.players.pystate`).  Routed to ``player`` like any player work; the textbook client
sends it to Celery's default queue."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from app.players import pystate, sessions
from app.protocol.names import STATE_TASK
from app.tasking.base import GameTask

log = logging.getLogger(__name__)


@shared_task(base=GameTask, bind=True, name=STATE_TASK)
def apply_state(self: GameTask, session_id: str, seq: int, state: dict[str, Any],
                position: list[float] | None = None) -> dict[str, int]:
    """Apply one state update of a session (`position` stored quantised as ``pos``) with
    plain Redis commands, publish its delta and count it.  Idempotent: an update at or
    below the session's applied sequence is skipped as stale.  Malformed input and unknown
    sessions are rejected (logged at info); a session lost with hot state is restored from
    SQL first.  Not retried: a newer update supersedes a lost one."""
    hot = self.runtime.hot
    result = pystate.apply_update(hot, session_id, seq, state, position, publish=True,
                                  db_factory=self.runtime.sessions, size_later=True)
    if result.unsized:  # the bandwidth measure is not the player's wait
        self.after_done(lambda: sessions.size_full_state(hot, result))
    for _index, field, reason in result.rejected:
        log.info("update %d of %s rejected: %s: %s", seq, session_id, field, reason)
    return {"applied": result.applied, "stale": result.stale, "rejected": len(result.rejected)}
