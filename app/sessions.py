"""Session service: sessions in SQL, state updates applied to hot state, deltas out.

Services take plain values and a SQLAlchemy Session or a HotStore; they know nothing of
Celery.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack
from sqlalchemy.orm import Session

from app import delta
from app.hotstore import HotStore
from app.models import GameSession, utcnow

NET_DELTA_BYTES = "gamesched:net:delta_bytes"
NET_FULL_BYTES = "gamesched:net:full_bytes"
NET_UPDATES = "gamesched:net:updates"


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
            snapshot_seq=0,
        )
        db.add(row)
    elif row.status == "closed":
        row.status, row.closed_at = "open", None
    return row


def change_session(db: Session, session_id: str, **changes: Any) -> bool:
    """Record new session factors (type, players, region).  Idempotent; False if unknown."""
    row = db.get(GameSession, session_id)
    if row is None:
        return False
    for name in ("session_type", "players", "region"):
        if changes.get(name) is not None:
            setattr(row, name, changes[name])
    return True


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

    def pack(self) -> bytes:
        """The stored form."""
        return bytes(msgpack.packb([self.seq, self.fields], use_bin_type=True))

    @classmethod
    def unpack(cls, raw: bytes) -> HotState:
        """Read the stored form."""
        seq, fields = msgpack.unpackb(raw, raw=False)
        return cls(seq=int(seq), fields=dict(fields))


def state_key(session_id: str) -> str:
    """The hot-store key of a session's state."""
    return f"gamesched:state:{session_id}"


def read_state(hot: HotStore, session_id: str) -> HotState | None:
    """A session's hot state, or None if the session is unknown to the hot store."""
    raw = hot.get(state_key(session_id))
    return HotState.unpack(raw) if raw is not None else None


def ensure_state(hot: HotStore, session_id: str, restored: HotState | None = None) -> None:
    """Create a session's hot state, or raise it to `restored` if that is newer."""
    start = restored or HotState(seq=0, fields={})

    def keep_newest(current: list[bytes | None]) -> dict[str, bytes]:
        if current[0] is not None and HotState.unpack(current[0]).seq >= start.seq:
            return {}
        return {state_key(session_id): start.pack()}

    hot.update([state_key(session_id)], keep_newest)


def restore(hot: HotStore, row: GameSession) -> None:
    """Put a session's SQL snapshot back into hot state if hot state is older or gone
    (after a Redis restart, say)."""
    if row.snapshot is None:
        ensure_state(hot, row.id)
        return
    fields = msgpack.unpackb(row.snapshot, raw=False)
    ensure_state(hot, row.id, HotState(seq=row.snapshot_seq, fields=dict(fields)))


DELTA_CHANNEL = "gamesched:deltas"


def publish_deltas(hot: HotStore, deltas: Mapping[str, bytes]) -> None:
    """Publish one batch's deltas as one message: msgpack ``{session: delta}``."""
    if deltas:
        hot.publish(DELTA_CHANNEL, bytes(msgpack.packb(dict(deltas), use_bin_type=True)))


@dataclass
class ApplyResult:
    """What one batch did: applied updates, stale ones skipped, rejected ones and why,
    and the per-session deltas to publish."""

    applied: int = 0
    stale: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    deltas: dict[str, bytes] = field(default_factory=dict)
    full_bytes: int = 0


def apply_updates(hot: HotStore, updates: Sequence[Mapping[str, Any]]) -> ApplyResult:
    """Apply a batch in per-session sequence order; an older update never overwrites a newer.

    Each update is ``{"session": id, "seq": n, "state": {...}}``.  A malformed update or one
    for an unknown session is rejected (index, field, reason) and the rest still apply.
    Idempotent: updates at or below a session's applied sequence are skipped as stale.
    """
    invalid = ApplyResult()
    grouped = _group_valid(updates, invalid)
    merge = _Merge(grouped, invalid.rejected)
    hot.update([state_key(s) for s in grouped], merge)
    _count_network(hot, merge.result)
    return merge.result


class _Merge:
    """The read-modify-write of one batch; may run more than once if a write races it."""

    def __init__(self, grouped: dict[str, list[tuple[int, Mapping[str, Any]]]],
                 rejected: list[tuple[int, str, str]]) -> None:
        self.grouped = grouped
        self.rejected = rejected
        self.result = ApplyResult(rejected=list(rejected))

    def __call__(self, current: list[bytes | None]) -> dict[str, bytes]:
        self.result = ApplyResult(rejected=list(self.rejected))
        writes = {}
        for (session_id, items), raw in zip(self.grouped.items(), current, strict=True):
            new = _merge_session(session_id, items, raw, self.result)
            if new is not None:
                writes[state_key(session_id)] = new.pack()
        return writes


def _merge_session(session_id: str, items: list[tuple[int, Mapping[str, Any]]],
                   raw: bytes | None, out: ApplyResult) -> HotState | None:
    if raw is None:
        out.rejected += [(i, "session", f"unknown session {session_id!r}") for i, _ in items]
        return None
    old = HotState.unpack(raw)
    seq, fields = old.seq, dict(old.fields)
    applied = 0
    for _, item in sorted(items, key=lambda pair: int(pair[1]["seq"])):
        if int(item["seq"]) <= seq:
            out.stale += 1
            continue
        fields.update(item["state"])
        seq = int(item["seq"])
        applied += 1
    if applied == 0:
        return None
    out.applied += applied
    # What full-state JSON would have cost: one message per update, sized on the session's
    # state after the batch (a session rarely has more than one update in a tick's batch).
    out.full_bytes += applied * delta.full_state_size(seq, fields)
    out.deltas[session_id] = delta.encode(seq, delta.diff(old.fields, fields))
    return HotState(seq=seq, fields=fields)


def _group_valid(updates: Iterable[Mapping[str, Any]],
                 result: ApplyResult) -> dict[str, list[tuple[int, Mapping[str, Any]]]]:
    grouped: dict[str, list[tuple[int, Mapping[str, Any]]]] = {}
    for index, update in enumerate(updates):
        problem = _malformed(update)
        if problem:
            result.rejected.append((index, *problem))
            continue
        grouped.setdefault(str(update["session"]), []).append((index, update))
    return grouped


def _malformed(update: Any) -> tuple[str, str] | None:
    if not isinstance(update, Mapping):
        return ("update", "expected a mapping")
    if not isinstance(update.get("session"), str):
        return ("session", "expected a session id string")
    seq = update.get("seq")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return ("seq", "expected an integer >= 1")
    if not isinstance(update.get("state"), dict):
        return ("state", "expected a mapping of fields")
    return None


def _count_network(hot: HotStore, result: ApplyResult) -> None:
    if result.applied == 0:
        return
    hot.incr_many({
        NET_UPDATES: result.applied,
        NET_DELTA_BYTES: sum(len(d) for d in result.deltas.values()),
        NET_FULL_BYTES: result.full_bytes,
    })


@dataclass(frozen=True)
class NetworkTotals:
    """Bytes sent as deltas versus what full-state JSON would have cost, per update."""

    updates: int
    delta_bytes: int
    full_bytes: int

    @property
    def bytes_per_update(self) -> float:
        """Delta bytes per applied update."""
        return self.delta_bytes / self.updates if self.updates else 0.0

    @property
    def full_bytes_per_update(self) -> float:
        """Full-state JSON bytes per applied update."""
        return self.full_bytes / self.updates if self.updates else 0.0


def network_totals(hot: HotStore) -> NetworkTotals:
    """The network counters since the last reset."""
    raw = hot.get_many([NET_UPDATES, NET_DELTA_BYTES, NET_FULL_BYTES])
    updates, delta_bytes, full_bytes = (int(v) if v is not None else 0 for v in raw)
    return NetworkTotals(updates=updates, delta_bytes=delta_bytes, full_bytes=full_bytes)


def reset_network_totals(hot: HotStore) -> None:
    """Zero the network counters."""
    for key in (NET_UPDATES, NET_DELTA_BYTES, NET_FULL_BYTES):
        hot.delete(key)
