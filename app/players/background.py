"""Background services: durable snapshots of hot state, and analytics roll-ups."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import msgpack
from redis import RedisError
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import reads
from app.players.durable import save_snapshots
from app.players.hotstore import HotStore
from app.players.models import GameSession
from app.players.sessions import HotState, read_states

__all__ = ["analytics", "read_each", "read_states", "snapshot"]
log = logging.getLogger(__name__)


def snapshot(db: Session, states: Mapping[str, HotState]) -> int:
    """Write hot states newer than their SQL snapshot, as a write-behind round does
    (`durable.save_snapshots`: one statement, which keeps a newer snapshot written
    meanwhile).  Idempotent; returns how many were newer."""
    stored = reads.rows(db, select(GameSession.id, GameSession.snapshot_seq)
                        .where(GameSession.id.in_(list(states))))
    newer = {session_id: (states[session_id].seq,
                          msgpack.packb(states[session_id].fields, use_bin_type=True))
             for session_id, seq in stored if states[session_id].seq > seq}
    save_snapshots(db, newer)
    return len(newer)


def read_each(groups: Mapping[HotStore, Sequence[str]]) -> dict[str, HotState]:
    """The hot state of the sessions of each store in `groups` (a store and the sessions
    whose state lives there); sessions a store does not hold are left out, and so are all
    of a store that does not answer (logged: its instance's write-behind snapshots them
    in its own rounds)."""
    states: dict[str, HotState] = {}
    for store, session_ids in groups.items():
        try:
            states.update(read_states(store, session_ids))
        except RedisError as exc:
            log.warning("%d sessions not snapshotted: their hot store did not answer (%s)",
                        len(session_ids), exc)
    return states


def analytics(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count events by kind.  Pure and idempotent."""
    return dict(Counter(str(event.get("kind", "unknown")) for event in events))
