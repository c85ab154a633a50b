"""Background services: durable snapshots of hot state, and analytics roll-ups."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import msgpack
from sqlalchemy.orm import Session

from app.hotstore import HotStore
from app.models import GameSession
from app.sessions import read_state


def snapshot(db: Session, hot: HotStore, session_ids: Iterable[str]) -> int:
    """Copy each known session's hot state into SQL.  Idempotent; returns rows written."""
    written = 0
    for session_id in session_ids:
        state = read_state(hot, session_id)
        row = db.get(GameSession, session_id)
        if state is None or row is None or state.seq <= row.snapshot_seq:
            continue
        row.snapshot_seq, row.snapshot = state.seq, msgpack.packb(state.fields)
        written += 1
    return written


def analytics(events: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """Count events by kind.  Pure and idempotent."""
    return dict(Counter(str(event.get("kind", "unknown")) for event in events))
