"""Session service: open and close sessions in SQL, apply state updates to hot state.

Services take plain values and a SQLAlchemy Session; they know nothing of Celery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import msgpack
from sqlalchemy.orm import Session

from app.hotstore import HotStore
from app.models import GameSession, utcnow


def open_session(
    db: Session,
    session_id: str,
    *,
    instance_id: str,
    session_type: str,
    players: int,
    region: str | None,
) -> GameSession:
    """Record a session as open.  Idempotent: opening an open session changes nothing."""
    row = db.get(GameSession, session_id)
    if row is None:
        row = GameSession(
            id=session_id, instance_id=instance_id, session_type=session_type,
            players=players, region=region, status="open", opened_at=utcnow(),
        )
        db.add(row)
    elif row.status == "closed":
        row.status, row.closed_at = "open", None
    return row


def close_session(db: Session, session_id: str) -> bool:
    """Mark a session closed.  Idempotent; returns False when the session is unknown."""
    row = db.get(GameSession, session_id)
    if row is None:
        return False
    if row.status != "closed":
        row.status, row.closed_at = "closed", utcnow()
    return True


@dataclass(frozen=True)
class HotState:
    """A session's hot state: the newest sequence number applied and the merged fields."""

    seq: int
    fields: dict[str, Any]


def state_key(session_id: str) -> str:
    """The hot-store key of a session's state."""
    return f"gamesched:state:{session_id}"


def read_state(hot: HotStore, session_id: str) -> HotState | None:
    """A session's hot state, or None before its first update."""
    raw = hot.get(state_key(session_id))
    if raw is None:
        return None
    seq, fields = msgpack.unpackb(raw)
    return HotState(seq=seq, fields=fields)


def apply_updates(hot: HotStore, updates: Iterable[Mapping[str, Any]]) -> int:
    """Apply updates in sequence order per session; an older one never overwrites a newer one.

    Each update is ``{"session": id, "seq": n, "state": {...}}``.  Returns how many applied.
    """
    applied = 0
    for session_id, items in _by_session(updates).items():
        current = read_state(hot, session_id) or HotState(seq=0, fields={})
        seq, fields = current.seq, dict(current.fields)
        for item in sorted(items, key=lambda u: int(u["seq"])):
            if int(item["seq"]) <= seq:
                continue
            fields.update(item["state"])
            seq = int(item["seq"])
            applied += 1
        if seq != current.seq:
            hot.set(state_key(session_id), msgpack.packb([seq, fields]))
    return applied


def _by_session(updates: Iterable[Mapping[str, Any]]) -> dict[str, list[Mapping[str, Any]]]:
    grouped: dict[str, list[Mapping[str, Any]]] = {}
    for update in updates:
        grouped.setdefault(str(update["session"]), []).append(update)
    return grouped
