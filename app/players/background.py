"""Background services: durable snapshots of hot state, and analytics roll-ups."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.players.models import GameSession
from app.players.sessions import HotState, read_states

__all__ = ["analytics", "read_states", "snapshot"]


def snapshot(db: Session, states: Mapping[str, HotState]) -> int:
    """Write hot states newer than their SQL snapshot.  Idempotent; returns rows written."""
    rows = db.scalars(select(GameSession).where(GameSession.id.in_(list(states))))
    written = 0
    for row in rows:
        state = states[row.id]
        if state.seq > row.snapshot_seq:
            row.snapshot_seq = state.seq
            row.snapshot = msgpack.packb(state.fields, use_bin_type=True)
            written += 1
    return written


def analytics(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count events by kind.  Pure and idempotent."""
    return dict(Counter(str(event.get("kind", "unknown")) for event in events))
