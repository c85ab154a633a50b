"""Session service: sessions in SQL, state updates applied to hot state, deltas out.

Services take plain values and a SQLAlchemy Session or a HotStore; they know nothing of
Celery.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import msgpack
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import reads, utcnow
from app.players import delta, wire
from app.players.hotstore import HotStore
from app.players.models import GameSession
from app.players.statestore import MOVED_AWAY, UNKNOWN_SESSION, Emit, Fence
from app.protocol.keys import (
    DELTA_CHANNEL,
    NET_DELTA_BYTES,
    NET_FULL_BYTES,
    NET_FULL_MSGPACK_BYTES,
    NET_FULL_UPDATES,
    NET_REJECTED,
    NET_STALE,
    NET_UPDATES,
)
from app.protocol.vocab import SessionOp, SessionStatus, parse_name


def open_session(
    db: Session,
    session_id: str,
    *,
    instance_id: str,
    session_type: str,
    players: int,
    region: str | None,
) -> GameSession:
    """Record a session as open on `instance_id`.  Idempotent: opening an open session on its
    instance changes nothing; opening it on another records the instance it now runs on."""
    row = db.get(GameSession, session_id)
    if row is None:
        row = GameSession(
            id=session_id, instance_id=instance_id, session_type=session_type,
            players=players, region=region, status=SessionStatus.OPEN.value, opened_at=utcnow(),
            snapshot_seq=0,
        )
        db.add(row)
        return row
    if row.status == SessionStatus.CLOSED:
        row.status, row.closed_at = SessionStatus.OPEN.value, None
    row.instance_id = instance_id
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


def move_sessions(db: Session, moves: Sequence[Sequence[str]]) -> int:
    """Record each ``[session_id, region]`` of `moves` in order (a later move of one session
    wins); returns how many named a known session."""
    return sum(change_session(db, str(session_id), region=str(region))
               for session_id, region in moves)


def close_session(db: Session, session_id: str) -> bool:
    """Mark a session closed.  Idempotent; returns False when the session is unknown."""
    row = db.get(GameSession, session_id)
    if row is None:
        return False
    if row.status != SessionStatus.CLOSED:
        row.status, row.closed_at = SessionStatus.CLOSED.value, utcnow()
    return True


def session_op(db: Session, hot: HotStore, op: str, session_id: str,
               spec: Mapping[str, Any]) -> bool:
    """Carry out a session operation sent by the client: open (recording the session and
    restoring its last snapshot into hot state when that is newer), update or close.
    Idempotent.  An unknown `op` raises InvalidRequest naming ``op`` and changes nothing."""
    match parse_name(SessionOp, "op", op):
        case SessionOp.OPEN:
            row = open_session(db, session_id, **spec)
            restore(hot, [(row.id, row.snapshot_seq, row.snapshot)])
            return True
        case SessionOp.UPDATE:
            return change_session(db, session_id, **spec)
        case SessionOp.CLOSE:
            return close_session(db, session_id)


@dataclass(frozen=True)
class HotState:
    """A session's hot state: the newest sequence number applied and the merged fields."""

    seq: int
    fields: dict[str, Any]


def read_state(hot: HotStore, session_id: str) -> HotState | None:
    """A session's hot state, or None if the session is unknown to the hot store."""
    return read_states(hot, [session_id]).get(session_id)


def read_states(hot: HotStore, session_ids: Sequence[str]) -> dict[str, HotState]:
    """The hot states of `session_ids` that exist, in one round trip."""
    stored = hot.states.read(list(session_ids))
    return {s: HotState(st.seq, _unpack_fields(st.fields))
            for s, st in zip(session_ids, stored, strict=True) if st is not None}


def ensure_state(hot: HotStore, session_id: str, restored: HotState | None = None) -> None:
    """Create a session's hot state, or raise it to `restored` if that is newer."""
    start = restored or HotState(seq=0, fields={})
    hot.states.put_if_newer(session_id, start.seq, _pack_fields(start.fields))


def ensure_states(hot: HotStore, session_ids: Iterable[str]) -> None:
    """Create each session's hot state empty where it has none, in one round trip."""
    hot.states.put_many_if_newer([(session_id, 0, {}) for session_id in session_ids])


# A session's SQL snapshot: its id, the seq of the snapshot and the snapshot (None: none).
Snapshot = tuple[str, int, bytes | None]


def open_snapshots(db: Session, session_ids: Iterable[str]) -> list[Snapshot]:
    """The SQL snapshots of the open sessions among `session_ids`, in no particular order,
    read in one step (`app.db.reads`: a select of many rows beside a busy thread waited
    for the GIL at every row)."""
    stmt = (select(GameSession.id, GameSession.snapshot_seq, GameSession.snapshot)
            .where(GameSession.id.in_(sorted(set(session_ids))),
                   GameSession.status == SessionStatus.OPEN))
    return reads.rows(db, stmt)


def restore(hot: HotStore, snapshots: Iterable[Snapshot]) -> None:
    """Put sessions' SQL snapshots back into hot state where hot state is older or gone
    (after a Redis restart, say), in one round trip."""
    hot.states.put_many_if_newer([_as_hot(snapshot) for snapshot in snapshots])


def _as_hot(snapshot: Snapshot) -> tuple[str, int, dict[str, bytes]]:
    """A session's SQL snapshot as hot state takes it: an empty state at 0 when none."""
    session_id, seq, blob = snapshot
    if blob is None:
        return session_id, 0, {}
    return session_id, seq, _pack_fields(msgpack.unpackb(blob, raw=False))


# The full-state JSON an update would have cost is measured on every FULL_STATE_SAMPLE-th
# batch a process applies, on at most FULL_STATE_SESSIONS of its sessions (it needs each
# one's whole state read back and encoded twice: sizing every session of a sampled batch
# took a quarter of a player worker's time); deltas are counted on all.
FULL_STATE_SAMPLE = 8
FULL_STATE_SESSIONS = 8
_batches = itertools.count()


@dataclass
class ApplyResult:
    """What one batch did: applied updates, stale ones skipped, rejected ones and why, and
    the delta message (msgpack ``{session: [seq, {changed fields}]}``).  `unsized` holds,
    for a sampled batch whose full-state cost is still to be measured, the updates applied
    per session (see `size_full_state`); `elsewhere`, the entries of sessions that run on
    another instance now, as a batch per instance, to send there
    (`apply_batch_restoring` with `arrive`)."""

    applied: int = 0
    stale: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    message: bytes = b"\x80"
    unsized: dict[str, int] = field(default_factory=dict)
    elsewhere: dict[str, bytes] = field(default_factory=dict)  # to send on, by instance

    @property
    def deltas(self) -> dict[str, bytes]:
        """Each changed session's encoded delta (decoded from the message)."""
        return delta.split(self.message)

    def refused(self, *reasons: str) -> list[int]:
        """The indices of the entries rejected for their session, for one of `reasons`
        (`UNKNOWN_SESSION`, `MOVED_AWAY`)."""
        return [i for i, name, reason in self.rejected
                if name == "session" and reason.startswith(reasons)]


def apply_batch(hot: HotStore, batch: bytes, publish: bool = False,
                size_later: bool = False, *, fence: Fence | None = None,
                emit: Emit | None = None) -> ApplyResult:
    """Apply a batch in its wire form (`app.players.wire`) in per-session sequence order; an older
    update never overwrites a newer.

    A malformed entry or one for an unknown session is rejected (index, field, reason) and
    the rest still apply.  Idempotent: updates at or below a session's applied sequence are
    skipped as stale.  The network counters count the deltas; with `publish` they go out
    on DELTA_CHANNEL (`emit` names other counters and channel).  A `batch` that is not
    msgpack raises ValueError; a writer whose `fence` is stale raises Fenced and writes
    nothing.

    The full-state cost of a sampled batch is measured here, or with `size_later` left in
    the result's `unsized` for the caller to pass to `size_full_state` once the players'
    work is done: the measure reads every changed session back, which a player need not
    wait for.
    """
    emit = emit or Emit(DELTA_CHANNEL if publish else None, NET_UPDATES, NET_DELTA_BYTES,
                        NET_STALE)
    sample = next(_batches) % FULL_STATE_SAMPLE == 0
    outcome = hot.states.apply(batch, emit, per_session=sample, fence=fence)
    sized = dict(itertools.islice(outcome.per_session.items(), FULL_STATE_SESSIONS))
    result = ApplyResult(outcome.applied, outcome.stale, outcome.rejected, outcome.message,
                         sized)
    if not size_later:
        size_full_state(hot, result)
    return result


def size_full_state(hot: HotStore, result: ApplyResult) -> None:
    """Count what full-state JSON would have cost for the updates of `result` still
    unsized (one message per applied update, sized on its session's state now)."""
    if result.unsized:
        hot.incr_many(_full_state_cost(hot, result.unsized))
        result.unsized = {}


@dataclass(frozen=True)
class Arrived:
    """What an instance made of the sessions its hot store lacks (`Arrive`): those that
    run on another instance now, with it, and those whose state it took from the store of
    the instance they moved from."""

    elsewhere: dict[str, str] = field(default_factory=dict)
    taken: set[str] = field(default_factory=set)


# Called by an instance's worker with the sessions of a batch its hot store lacks (unknown,
# or handed over to another store): `app.tasking.arrivals.arrive`.
Arrive = Callable[[set[str]], Arrived]


def apply_batch_restoring(hot: HotStore, db_factory: Callable[[], Session], batch: bytes,
                          publish: bool = False, size_later: bool = False, *,
                          fence: Fence | None = None, emit: Emit | None = None,
                          log_to: Callable[[bytes], None] | None = None,
                          arrive: Arrive | None = None) -> ApplyResult:
    """`apply_batch`, and when sessions are missing from hot state but open in SQL (hot
    state lost with a Redis restart), restore them from their snapshots and apply their
    updates again: a session survives the restart at its last snapshot, and the updates
    newer than the snapshot land on top of it.  A batch that changed state goes to `log_to`
    (the state log: `app.players.statelog`).

    With `arrive` (an instance's worker), the sessions missing here, or handed over to
    another store (`MOVED_AWAY`), go to it first: the entries of those that run on another
    instance now are not applied but returned in `elsewhere`, by instance, to send on, and
    those it took from the store they moved from are applied again on their state."""
    result = _apply_restoring(hot, db_factory, batch, publish=publish, size_later=size_later,
                              fence=fence, emit=emit, arrive=arrive)
    if log_to is not None and result.applied:
        log_to(batch)
    return result


def _apply_restoring(hot: HotStore, db_factory: Callable[[], Session], batch: bytes, *,
                     publish: bool, size_later: bool, fence: Fence | None,
                     emit: Emit | None, arrive: Arrive | None) -> ApplyResult:
    result = apply_batch(hot, batch, publish, size_later, fence=fence, emit=emit)
    lacking = (UNKNOWN_SESSION,) if arrive is None else (UNKNOWN_SESSION, MOVED_AWAY)
    missing = result.refused(*lacking)
    if not missing:
        return result
    entries = wire.unpack_batch(batch)
    session_of = {i: entries[i][0].decode() for i in missing}
    arrived = arrive(set(session_of.values())) if arrive is not None else Arrived()
    here = {s for s in session_of.values() if s not in arrived.elsewhere}
    with reads.reading(db_factory) as db:  # a taken state older than SQL's (or none) too
        restored = restore_open(db, hot, here) | (here & arrived.taken)
    retry = [i for i in missing if session_of[i] in restored]
    result.elsewhere = _by_instance(entries, missing, session_of, arrived.elsewhere)
    sent_on = {i for i in missing if session_of[i] in arrived.elsewhere}
    result.rejected = [r for r in result.rejected if r[0] not in sent_on]
    if not retry:
        return result
    again = apply_batch(hot, wire.pack_batch(entries[i] for i in retry), publish, size_later,
                        fence=fence, emit=emit)
    retried = set(retry)
    return ApplyResult(
        applied=result.applied + again.applied, stale=result.stale + again.stale,
        rejected=[r for r in result.rejected if r[0] not in retried]
        + [(retry[i], name, reason) for i, name, reason in again.rejected],
        message=delta.message(result.deltas | again.deltas),
        unsized=_added(result.unsized, again.unsized), elsewhere=result.elsewhere)


def _by_instance(entries: list[Any], indices: list[int], session_of: dict[int, str],
                 owners: Mapping[str, str]) -> dict[str, bytes]:
    """The entries of `indices` whose session runs on another instance, as one batch in
    wire form per instance."""
    grouped: dict[str, list[Any]] = {}
    for i in indices:
        owner = owners.get(session_of[i])
        if owner is not None:
            grouped.setdefault(owner, []).append(entries[i])
    return {owner: wire.pack_batch(group) for owner, group in grouped.items()}


def restore_open(db: Session, hot: HotStore, session_ids: set[str]) -> set[str]:
    """Restore the open sessions among `session_ids` from their SQL snapshots; returns
    their ids."""
    found = open_snapshots(db, session_ids)
    restore(hot, found)
    return {session_id for session_id, _, _ in found}


def apply_updates(hot: HotStore, updates: Sequence[Mapping[str, Any]],
                  publish: bool = False,
                  db_factory: Callable[[], Session] | None = None,
                  size_later: bool = False, *,
                  log_to: Callable[[bytes], None] | None = None) -> ApplyResult:
    """`apply_batch` for updates given as ``{"session": id, "seq": n, "state": {...}}``
    (`apply_batch_restoring` with `db_factory`, and `log_to`).

    A malformed update is rejected here, by its index; the rest go on in wire form.
    """
    rejected: list[tuple[int, str, str]] = []
    valid: list[int] = []
    for index, update in enumerate(updates):
        problem = _malformed(update)
        if problem:
            rejected.append((index, *problem))
        else:
            valid.append(index)
    batch = wire.pack_batch(wire.entry(updates[i]["session"], updates[i]["seq"],
                                       updates[i]["state"]) for i in valid)
    result = (apply_batch(hot, batch, publish, size_later) if db_factory is None
              else apply_batch_restoring(hot, db_factory, batch, publish, size_later,
                                         log_to=log_to))
    result.rejected = rejected + [(valid[i], name, reason) for i, name, reason in result.rejected]
    return result


def _added(a: dict[str, int], b: dict[str, int]) -> dict[str, int]:
    return {k: a.get(k, 0) + b.get(k, 0) for k in a.keys() | b.keys()}


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


def _pack_fields(fields: Mapping[str, Any]) -> dict[str, bytes]:
    return {str(k): wire.pack_value(v) for k, v in fields.items()}


def _unpack_fields(fields: Mapping[str, bytes]) -> dict[str, Any]:
    return {k: msgpack.unpackb(v, raw=False) for k, v in fields.items()}


def _full_state_cost(hot: HotStore, per_session: dict[str, int]) -> dict[str, int]:
    """What sending the full state would have cost for a batch, in msgpack (the deltas'
    encoding) and as JSON: one message per applied update, sized on its session's state
    after the batch."""
    states = read_states(hot, list(per_session))
    full, packed, updates = 0, 0, 0
    for session_id, state in states.items():
        applied = per_session[session_id]
        full += applied * delta.full_state_size(state.seq, state.fields)
        packed += applied * delta.full_state_msgpack_size(state.seq, state.fields)
        updates += applied
    return {NET_FULL_BYTES: full, NET_FULL_MSGPACK_BYTES: packed, NET_FULL_UPDATES: updates}


@dataclass(frozen=True)
class NetworkTotals:
    """Bytes sent as deltas versus what the full state would have cost, per update, as JSON
    (`full_bytes`) and in the deltas' msgpack (`full_msgpack_bytes`).  The full-state cost
    is measured on a sample of the batches (`full_updates` of them).  `updates` were
    applied; `stale` ones were not: a newer update of their session had written every field
    they carry; `rejected` ones were refused (malformed, or of a session no store or SQL
    knows), as the state tasks count them."""

    updates: int
    delta_bytes: int
    full_updates: int
    full_bytes: int
    full_msgpack_bytes: int = 0
    stale: int = 0
    rejected: int = 0

    def plus(self, other: NetworkTotals) -> NetworkTotals:
        """These counters and `other`'s, summed."""
        return NetworkTotals(*(getattr(self, f.name) + getattr(other, f.name)
                               for f in fields(self)))

    @property
    def bytes_per_update(self) -> float:
        """Delta bytes per applied update."""
        return self.delta_bytes / self.updates if self.updates else 0.0

    @property
    def full_bytes_per_update(self) -> float:
        """Full-state JSON bytes per sized update."""
        return self.full_bytes / self.full_updates if self.full_updates else 0.0

    @property
    def full_msgpack_bytes_per_update(self) -> float:
        """Full-state msgpack bytes per sized update."""
        return self.full_msgpack_bytes / self.full_updates if self.full_updates else 0.0


_NET_KEYS = (NET_UPDATES, NET_DELTA_BYTES, NET_FULL_UPDATES, NET_FULL_BYTES,
             NET_FULL_MSGPACK_BYTES, NET_STALE, NET_REJECTED)


def network_totals(*stores: HotStore) -> NetworkTotals:
    """The network counters since the last reset, summed over `stores` (the workers of
    each instance count in the hot store they apply to)."""
    sums = [0] * len(_NET_KEYS)
    for hot in stores:
        for n, value in enumerate(hot.get_many(list(_NET_KEYS))):
            sums[n] += int(value) if value is not None else 0
    return NetworkTotals(*sums)


def count_rejected(hot: HotStore, rejected: int) -> None:
    """`rejected` updates of a state task were refused for good (not applied, not sent on):
    count them beside the applied and stale ones."""
    if rejected:
        hot.incr(NET_REJECTED, rejected)


def reset_network_totals(*stores: HotStore) -> None:
    """Zero the network counters of `stores`."""
    for hot in stores:
        for key in _NET_KEYS:
            hot.delete(key)
