"""One state update applied with plain redis-py commands, as a team writes it without a
script: the textbook baseline's hot-state write (`workers.textbook`).

`PythonStateWriter` reads the session's state hash, skips an update at or below the stored
sequence as stale (whole: it keeps no per-field versions, so a late update's fields are
lost where the script writes those nothing newer wrote), writes the new sequence and the
fields whose packed value changed,
publishes the delta and counts it: the keys, values, message and counters of the Lua path
(`app.players.statestore`), for one update at a time.  Two workers may apply two updates
of one session at once, so the write is redis-py's optimistic transaction: WATCH the hash,
read it, then MULTI ... EXEC; when another update changed the hash in between, EXEC fails
(WatchError) and the update is read and decided again, so the newer sequence always wins.
That is three round trips per update where the script takes one per batch.

`apply_update` is the service: the writer on Redis; on process memory (the embedded
default, eager tests) a batch of one entry through the memory store.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import redis
from sqlalchemy.orm import Session

from app.db import reads
from app.players import delta, sessions, wire
from app.players.hotstore import HotStore, RedisHotStore
from app.players.statestore import PREFIX, SEQ, UNKNOWN_SESSION, BatchOutcome, Emit, Packed
from app.protocol import keys

_updates = itertools.count()  # every FULL_STATE_SAMPLE-th update is sized, as batches are


class PythonStateWriter:
    """Applies one update at a time to a session's state hash, in a WATCH/MULTI/EXEC
    transaction."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def apply(self, session_id: str, seq: int, fields: Packed, emit: Emit) -> BatchOutcome:
        """Apply update `seq` of `session_id` (`fields`: name -> packed value), then publish
        and count its delta, with the outcome a batch of this one entry has on the script.
        Idempotent: at or below the stored sequence it is stale; an unknown session is
        rejected.  Decided again, from a fresh read, whenever another writer changed the
        session between the read and the write."""
        key = keys.state(session_id)
        with self._client.pipeline(transaction=True) as pipe:
            while True:
                try:
                    pipe.watch(key)  # type: ignore[no-untyped-call]
                    return self._decide(pipe, session_id, seq, fields, emit)
                except redis.WatchError:
                    continue  # another update of this session landed first: read again

    def _decide(self, pipe: Any, session_id: str, seq: int, fields: Packed,
                emit: Emit) -> BatchOutcome:
        key = keys.state(session_id)
        stored = self._read(pipe, key)
        if SEQ not in stored:
            return BatchOutcome(rejected=[(0, "session", f"{UNKNOWN_SESSION} {session_id!r}")])
        if seq <= int(stored[SEQ]):
            pipe.incrby(emit.stale_counter, 1)  # at once: the pipe watches, it queues nothing
            return BatchOutcome(stale=1)
        changed = {n: v for n, v in fields.items() if stored.get((PREFIX + n).encode()) != v}
        encoded = delta.encode_packed(seq, changed)
        message = delta.message({session_id: encoded})
        write: dict[str | bytes, int | bytes] = {SEQ: seq}
        write.update((PREFIX + name, value) for name, value in changed.items())
        pipe.multi()
        pipe.hset(key, mapping=write)
        if emit.channel is not None:
            pipe.publish(emit.channel, message)
        pipe.incrby(emit.updates_counter, 1)
        pipe.incrby(emit.bytes_counter, len(encoded))
        pipe.execute()  # WatchError when the hash changed since the WATCH
        return BatchOutcome(applied=1, message=message, delta_bytes=len(encoded),
                            per_session={session_id: 1})

    def _read(self, pipe: Any, key: str) -> dict[bytes, bytes]:
        """The session's hash, read while it is watched."""
        stored: dict[bytes, bytes] = pipe.hgetall(key)
        return stored


def apply_update(hot: HotStore, session_id: str, seq: int, state: Mapping[str, Any],
                 position: Sequence[float] | None = None, *, publish: bool = False,
                 db_factory: Callable[[], Session] | None = None,
                 size_later: bool = False) -> sessions.ApplyResult:
    """Apply one state update (`position`, a world position, stored quantised in the
    ``pos`` field) with the effects of `sessions.apply_batch` on a batch of one: stale
    skipped, only changed fields written and sent, the network counters counted (the
    full-state cost on a sample, measured here or with `size_later` left in the result's
    `unsized`), the delta published with `publish`.  With `db_factory`, a session missing
    from hot state but open in SQL is restored from its snapshot and the update applied on
    top.  Malformed input is rejected (index 0, field, reason).  Idempotent."""
    problem = _malformed(session_id, seq, state, position)
    if problem:
        return sessions.ApplyResult(rejected=[(0, *problem)])
    fields = dict(state)
    if position is not None:
        fields[delta.POSITION_FIELD] = delta.quantise((float(position[0]), float(position[1])))
    if not isinstance(hot, RedisHotStore):  # process memory: a batch of one, under its lock
        batch = wire.pack_batch([wire.entry(session_id, seq, fields)])
        if db_factory is None:
            return sessions.apply_batch(hot, batch, publish, size_later)
        return sessions.apply_batch_restoring(hot, db_factory, batch, publish, size_later)
    writer = PythonStateWriter(hot.client)
    packed = {name: wire.pack_value(value) for name, value in fields.items()}
    emit = Emit(keys.DELTA_CHANNEL if publish else None, keys.NET_UPDATES, keys.NET_DELTA_BYTES,
                keys.NET_STALE)
    outcome = writer.apply(session_id, seq, packed, emit)
    if outcome.rejected and db_factory is not None and _restore(hot, db_factory, session_id):
        outcome = writer.apply(session_id, seq, packed, emit)
    sampled = next(_updates) % sessions.FULL_STATE_SAMPLE == 0
    result = sessions.ApplyResult(outcome.applied, outcome.stale, outcome.rejected,
                                  outcome.message, outcome.per_session if sampled else {})
    if not size_later:
        sessions.size_full_state(hot, result)
    return result


def _restore(hot: HotStore, db_factory: Callable[[], Session], session_id: str) -> bool:
    """Restore `session_id` from its SQL snapshot if it is open; True if it was."""
    with reads.reading(db_factory) as db:
        return bool(sessions.restore_open(db, hot, {session_id}))


def _malformed(session_id: Any, seq: Any, state: Any, position: Any) -> tuple[str, str] | None:
    if not isinstance(session_id, str) or not session_id:
        return ("session", "expected a session id string")
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return ("seq", "expected an integer >= 1")
    if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
        return ("state", "expected a mapping of fields")
    if position is not None and not _pair(position):
        return ("position", "expected an (x, y) pair of finite numbers")
    return None


def _pair(position: Any) -> bool:
    if not isinstance(position, Sequence) or isinstance(position, str) or len(position) != 2:
        return False
    return all(type(c) in (int, float) and math.isfinite(c) for c in position)
