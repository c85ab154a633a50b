"""Player role: session state updates and session operations (queue ``player``)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task

from app.db import transaction
from app.players import sessions
from app.protocol.names import SESSION_MOVES_TASK, SESSION_TASK, UPDATE_TASK
from app.tasking.base import GameTask

log = logging.getLogger(__name__)


@shared_task(base=GameTask, bind=True, name=UPDATE_TASK, tracks_latency=True)
def apply_updates(self: GameTask, updates: bytes | list[dict[str, Any]]) -> dict[str, int]:
    """Apply a batch of state updates in per-session sequence order and publish deltas.

    `updates` is a batch in wire form (``app.players.wire``, as the client sends it) or a list of
    ``{"session", "seq", "state"}`` mappings.  Idempotent: an update at or below a
    session's applied sequence is skipped as stale.  Malformed updates and unknown sessions
    are rejected one by one (logged at info); the rest of the batch still applies.  Not
    retried: a newer update supersedes a lost one.
    """
    hot, factory = self.runtime.hot, self.runtime.sessions  # lost sessions are restored
    if isinstance(updates, bytes | bytearray):
        result = sessions.apply_batch_restoring(hot, factory, bytes(updates), publish=True,
                                                size_later=True)
    else:
        result = sessions.apply_updates(hot, updates, publish=True, db_factory=factory,
                                        size_later=True)
    if result.unsized:  # the bandwidth measure is not the players' wait
        self.after_done(lambda: sessions.size_full_state(hot, result))
    for index, field, reason in result.rejected:
        log.info("update %d rejected: %s: %s", index, field, reason)
    return {"applied": result.applied, "stale": result.stale, "rejected": len(result.rejected)}


@shared_task(base=GameTask, bind=True, name=SESSION_TASK)
def session_op(self: GameTask, op: str, session_id: str, spec: dict[str, Any]) -> bool:
    """Open, update or close a session in SQL; opening restores the last snapshot into hot
    state when it is newer.  Idempotent; not retried (the client may send it again).  An
    unknown `op` is refused (InvalidRequest naming ``op``) and changes nothing."""
    with transaction(self.runtime.sessions) as db:
        return sessions.session_op(db, self.runtime.hot, op, session_id, spec)


@shared_task(base=GameTask, bind=True, name=SESSION_MOVES_TASK)
def session_moves(self: GameTask, moves: list[list[str]]) -> int:
    """Record the sessions' new regions, ``[session_id, region]`` each, in one SQL
    transaction; returns how many named a known session.  Idempotent; not retried (a later
    move supersedes a lost one)."""
    with transaction(self.runtime.sessions) as db:
        return sessions.move_sessions(db, moves)
