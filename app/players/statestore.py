"""Session state storage: per-session fields with the newest applied sequence number.

A session's state is a hash of field name -> packed value (see `app.players.wire`), plus its
sequence number, and for each field the sequence number of the update that last wrote it
(its version).  Applying a batch is one atomic step per store (a Lua script on Redis, a
lock in memory) that takes the batch in its wire form: entries are checked one by one
(a malformed one is rejected, the rest still apply), grouped by session and sorted by
sequence; each update writes the fields whose version is older than it, so updates of one
session applied out of order (two threads, two priority steps, two instances during a
move) end as if applied in order, and one applied twice writes nothing.  An update that
wrote no field and is not newer than the session's sequence is stale.  Only the fields
whose packed value changed are written, with their new versions.  The same step
builds the batch's delta message, msgpack ``{session: [seq, {changed fields}]}``, publishes
it and counts it, so a batch costs one round trip on Redis and no state value is unpacked
anywhere.  No read-modify-write crosses the network: concurrent batches that share
sessions never conflict or retry.

Redis layout: ``gamesched:state:<session>`` is a hash with ``seq``, and ``.<name>`` (the
value) and ``^<name>`` (its version) per state field, and ``came`` when its state was last
taken over from another store (`take_over`).  The script computes these keys from the
session ids, so it runs on a single Redis, not on a cluster.

The same step marks each changed session in ``gamesched:state-marks`` (a set, one call a
batch): a snapshot round (`app.players.durable`) takes the marks under a lease (one writer
per store at a time), writes those sessions' state to SQL and removes the marks it wrote;
a session changed during the round is marked for the next one.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from importlib import resources
from typing import Any, Protocol

import redis

from app.errors import Fenced
from app.players import delta
from app.players.wire import pack_batch, pack_map, unpack_batch
from app.protocol import keys

Packed = dict[str, bytes]  # field name -> msgpack-packed value


@dataclass(frozen=True)
class Dirty:
    """A session marked as changed, and its state now: its seq (0 when the state is gone)
    and its values as one msgpack map (`wire.pack_map`)."""

    session: str
    seq: int
    snapshot: bytes


@dataclass(frozen=True)
class Taken:
    """The next marks of a snapshot round, and the last state-log row the round covers:
    once every mark of the round is written, SQL holds every update of the log up to it."""

    log_row: int
    dirty: list[Dirty]


@dataclass(frozen=True)
class Emit:
    """Where a batch's deltas go: the channel to publish them on (None: not published), and
    the counters of applied updates, of delta bytes and of stale updates (a newer update of
    their session had written every field they carry: nothing to write)."""

    channel: str | None
    updates_counter: str
    bytes_counter: str
    stale_counter: str


@dataclass(frozen=True)
class Fence:
    """Who writes a batch: a server instance with its fencing token.  The batch is refused
    (`Fenced`) when the hash `key`, on the same Redis, holds another token for it: the
    instance was taken over while it was silent (`app.instances.registry`)."""

    key: str
    instance: str
    token: int


@dataclass
class BatchOutcome:
    """What applying a batch did.  `rejected` holds (entry index, field, reason);
    `message` is the delta message; `per_session` (when asked for) the updates applied to
    each changed session."""

    applied: int = 0
    stale: int = 0
    rejected: list[tuple[int, str, str]] = field(default_factory=list)
    message: bytes = b"\x80"
    delta_bytes: int = 0
    per_session: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class StoredState:
    """A session's stored sequence number and packed fields."""

    seq: int
    fields: Packed


class StateStore(Protocol):
    """Where sessions' hot state lives."""

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False,
              fence: Fence | None = None) -> BatchOutcome:
        """Apply a batch in its wire form atomically, then publish and count its deltas;
        Fenced, applying nothing, when `fence` names a token the instance no longer has."""

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids` (None for an unknown session)."""

    def seqs(self, session_ids: list[str]) -> list[int | None]:
        """The seq of each of `session_ids` (None for an unknown session): `read` without
        the fields."""

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create the session's state, or replace it when `seq` is newer; True if written."""

    def put_many_if_newer(self, states: Sequence[tuple[str, int, Packed]]) -> int:
        """`put_if_newer` for each ``(session, seq, fields)``, in one round trip; how many
        were written."""

    def hand_over(self, session_ids: Sequence[str]) -> bytes:
        """Freeze the sessions' state here as they move to an instance with another hot
        store, and return it as a batch in wire form (`handed_batch`).  From then on this
        store refuses their updates as `MOVED_AWAY` (for `HANDED_TTL_S`, or until one is
        taken over here again).  Idempotent: a second call returns the same state."""

    def clock(self) -> int:
        """This store's time, in microseconds: what `take_over` marks a state with."""

    def freeze_stale(self, session_ids: Sequence[str], since: int) -> list[str]:
        """Freeze the states of `session_ids` not taken over here since `since` (`clock`),
        as `hand_over` does (without reading them), and drop their marks for SQL: copies
        out of date (`app.players.storenames.voided`).  The sessions frozen."""

    def take_over(self, session_ids: Sequence[str], batch: bytes, emit: Emit,
                  fence: Fence | None = None) -> BatchOutcome:
        """Make the sessions live here (created empty where absent, no longer refused as
        moved away, marked with the `clock`) and apply `batch`, their state handed over by
        another store, as updates: each field is written where it is newer than what is
        here, so taking the same state twice, or after newer updates, changes nothing
        twice."""

    def take_dirty(self, owner: str, limit: int, lease_ms: int,
                   log_row: int = 0) -> Taken | None:
        """Take (or renew) the lease of writing snapshots for `owner`, and up to `limit`
        marks of the round, each with its session's state now.  With no round
        under way, one starts: the marks so far become its own, and it covers the state log
        up to `log_row`.  None while another owner holds the lease, or before the store is
        `recovered`."""

    def clean_dirty(self, owner: str, sessions: Sequence[str], release: bool) -> None:
        """Remove the round's marks of `sessions`, written to SQL (a session changed since
        is marked for the next round); with `release`, give `owner`'s lease back."""

    def dirty_count(self) -> int:
        """Sessions changed since they were last written to SQL."""

    def recovered(self) -> bool:
        """True once the store holds every state the state log holds (`set_recovered`)."""

    def set_recovered(self) -> None:
        """Note that the store holds every state the state log holds."""

    def note_flush(self, writer: str, began: int) -> None:
        """Note that `writer`, a process writing this store's state log, has written every
        batch it held at `began` (`clock`); an earlier time than its last changes nothing."""

    def flushes(self, since: int) -> dict[str, int]:
        """Each writer's last `note_flush` at or after `since` (older ones are forgotten)."""


# The reason given for an update of a session hot state does not hold (the Lua script
# spells it the same way); callers restore such sessions by it.
UNKNOWN_SESSION = "unknown session"
# The reason given for an update of a session whose state this store handed over to
# another (it moved to an instance with another hot store): the worker sends it on.
MOVED_AWAY = "moved away"
HANDED_TTL_S = 3600  # a handed-over state is kept (and its updates refused) this long
SEQ = b"seq"
PREFIX = "."  # a field's value: ".<name>"
FIELD_PREFIX = PREFIX.encode()
VERSION_PREFIX = "^"  # the seq of the update that last wrote it: "^<name>"


Publish = Callable[[str, bytes], None]
Count = Callable[[dict[str, int]], None]


class MemoryStateStore:
    """Session state in this process (the embedded default and fast tests); the same rules
    as the Redis script, in Python."""

    def __init__(self, publish: Publish, count: Count) -> None:
        self._lock = threading.Lock()
        # session -> (seq, fields, each field's version: the seq that last wrote it)
        self._states: dict[str, tuple[int, Packed, dict[str, int]]] = {}
        self._publish = publish
        self._count = count
        self._dirty: set[str] = set()  # sessions changed since written to SQL
        self._taking: set[str] = set()  # the marks of the snapshot round under way
        self._log_row = 0  # the last state-log row that round covers
        self._recovered = False
        self._lease: tuple[str, float] = ("", 0.0)  # owner, monotonic expiry
        self._handed: set[str] = set()  # sessions whose state was handed over (no expiry)
        self._frozen: dict[str, tuple[int, Packed, dict[str, int]]] = {}  # their state then
        self._came: dict[str, int] = {}  # live sessions taken over here: when (`clock`)
        self._flushes: dict[str, int] = {}  # state log writers: their last flush (`clock`)

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False,
              fence: Fence | None = None) -> BatchOutcome:
        """Apply a batch under one lock, then publish and count its deltas (no fence: one
        process, nothing to partition)."""
        outcome = BatchOutcome()
        entries = unpack_batch(batch)
        groups = _group(entries, outcome.rejected)
        deltas: dict[str, bytes] = {}
        with self._lock:
            for session_id, indices in groups.items():
                self._apply_session(session_id, [entries[i] for i in indices], indices,
                                    outcome, deltas)
        outcome.message = delta.message(deltas)
        outcome.delta_bytes = sum(len(d) for d in deltas.values())
        if not per_session:
            outcome.per_session = {}
        _emit(outcome, emit, self._publish, self._count)
        return outcome

    def _apply_session(self, session_id: str, updates: list[Any], indices: list[int],
                       out: BatchOutcome, deltas: dict[str, bytes]) -> None:
        current = self._states.get(session_id)
        if current is None:
            why = MOVED_AWAY if session_id in self._handed else UNKNOWN_SESSION
            out.rejected += [(i, "session", f"{why} {session_id!r}") for i in indices]
            return
        seq, fields, versions = current
        applied, newest, versions = 0, dict[str, bytes](), dict(versions)
        for update in updates:
            wrote = False
            given = dict(zip((n.decode() for n in update[2::2]), update[3::2], strict=True))
            for name, value in given.items():  # a name given twice: its last value
                if update[1] > versions.get(name, 0):
                    newest[name], versions[name], wrote = value, update[1], True
            if wrote or update[1] > seq:
                seq, applied = max(seq, update[1]), applied + 1
            else:
                out.stale += 1
        if applied:
            changed = {k: v for k, v in newest.items() if fields.get(k) != v}
            self._states[session_id] = (seq, {**fields, **changed}, versions)
            self._dirty.add(session_id)
            deltas[session_id] = delta.encode_packed(seq, changed)
            out.applied += applied
            out.per_session[session_id] = applied

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids`."""
        with self._lock:
            found = [self._states.get(s) for s in session_ids]
        return [StoredState(c[0], dict(c[1])) if c else None for c in found]

    def seqs(self, session_ids: list[str]) -> list[int | None]:
        """The seqs of `session_ids`."""
        with self._lock:
            found = [self._states.get(s) for s in session_ids]
        return [c[0] if c else None for c in found]

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create or replace the state when `seq` is newer than the stored one."""
        with self._lock:
            current = self._states.get(session_id)
            if current is not None and (current[0] >= seq):
                return False
            self._states[session_id] = (seq, dict(fields), dict.fromkeys(fields, seq))
            return True

    def put_many_if_newer(self, states: Sequence[tuple[str, int, Packed]]) -> int:
        """`put_if_newer` for each."""
        return sum(self.put_if_newer(*state) for state in states)

    def hand_over(self, session_ids: Sequence[str]) -> bytes:
        """Freeze the sessions' state and return it as a batch (see `StateStore`)."""
        with self._lock:
            handed: dict[str, dict[bytes, bytes]] = {}
            for session_id in session_ids:
                self._freeze(session_id)
                frozen = self._frozen.get(session_id)
                handed[session_id] = _as_hash(*frozen) if frozen else {}
        return handed_batch(handed)

    def _freeze(self, session_id: str) -> None:
        self._handed.add(session_id)
        self._came.pop(session_id, None)
        current = self._states.pop(session_id, None)
        if current is not None:
            self._frozen[session_id] = current

    def clock(self) -> int:
        """This process's monotonic clock, in microseconds."""
        return time.monotonic_ns() // 1000

    def freeze_stale(self, session_ids: Sequence[str], since: int) -> list[str]:
        """Freeze the copies out of date (see `StateStore`)."""
        with self._lock:
            stale = [s for s in session_ids
                     if s in self._states and self._came.get(s, 0) < since]
            for session_id in stale:
                self._freeze(session_id)
                self._dirty.discard(session_id)
                self._taking.discard(session_id)
        return stale

    def take_over(self, session_ids: Sequence[str], batch: bytes, emit: Emit,
                  fence: Fence | None = None) -> BatchOutcome:
        """Make the sessions live here and apply their handed-over state."""
        with self._lock:
            now = self.clock()
            for session_id in session_ids:
                self._handed.discard(session_id)
                self._frozen.pop(session_id, None)
                self._states.setdefault(session_id, (0, {}, {}))
                self._came[session_id] = now
        return self.apply(batch, emit, fence=fence)

    def take_dirty(self, owner: str, limit: int, lease_ms: int,
                   log_row: int = 0) -> Taken | None:
        """The lease for `owner` (None while another holds it, or before `set_recovered`)
        and the round's first marks, with their sessions' state."""
        now = time.monotonic()
        with self._lock:
            holder, until = self._lease
            if not self._recovered or (holder != owner and until > now):
                return None
            self._lease = (owner, now + lease_ms / 1000.0)
            if not self._taking:
                self._taking, self._dirty, self._log_row = self._dirty, set(), log_row
            marks = sorted(self._taking)[:limit]
            states = {s: self._states.get(s) for s in marks}
            covered = self._log_row
        return Taken(covered, [
            Dirty(s, st[0] if st else 0, pack_map(st[1] if st else {}))
            for s, st in states.items()])

    def dirty_count(self) -> int:
        """Sessions changed since they were last written to SQL."""
        with self._lock:
            return len(self._dirty | self._taking)

    def clean_dirty(self, owner: str, sessions: Sequence[str], release: bool) -> None:
        """Remove the round's marks of `sessions`; with `release`, end `owner`'s lease."""
        with self._lock:
            for session_id in sessions:
                self._taking.discard(session_id)
            if release and self._lease[0] == owner:
                self._lease = ("", 0.0)

    def recovered(self) -> bool:
        """True after `set_recovered`."""
        return self._recovered

    def set_recovered(self) -> None:
        """Let snapshot rounds run."""
        self._recovered = True

    def note_flush(self, writer: str, began: int) -> None:
        """Note `writer`'s flush (see `StateStore`)."""
        with self._lock:
            self._flushes[writer] = max(began, self._flushes.get(writer, began))

    def flushes(self, since: int) -> dict[str, int]:
        """The writers' last flushes since `since` (see `StateStore`)."""
        with self._lock:
            self._flushes = {w: at for w, at in self._flushes.items() if at >= since}
            return dict(self._flushes)


def _group(entries: list[Any], rejected: list[tuple[int, str, str]]) -> dict[str, list[int]]:
    """Check each entry; the valid ones' indices by session, in ascending sequence order."""
    groups: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        problem = malformed(entry)
        if problem:
            rejected.append((index, *problem))
            continue
        groups.setdefault(entry[0].decode(), []).append(index)
    for indices in groups.values():
        indices.sort(key=lambda i: entries[i][1])
    return groups


def malformed(entry: Any) -> tuple[str, str] | None:
    """What is wrong with an entry of a batch unpacked as the script sees it (every string
    as bytes), as (field, reason); None for a well-formed one."""
    if not isinstance(entry, list) or len(entry) < 2:
        return ("update", "expected an array entry")
    if not isinstance(entry[0], bytes):
        return ("session", "expected a session id string")
    seq = entry[1]
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        return ("seq", "expected an integer >= 1")
    if len(entry) % 2 or not all(isinstance(x, bytes) for x in entry[2:]):
        return ("state", "expected field names and packed values")
    return None


def _emit(outcome: BatchOutcome, emit: Emit, publish: Publish, count: Count) -> None:
    counts = {emit.stale_counter: outcome.stale} if outcome.stale else {}
    if outcome.applied:
        if emit.channel is not None:
            publish(emit.channel, outcome.message)
        counts |= {emit.updates_counter: outcome.applied,
                   emit.bytes_counter: outcome.delta_bytes}
    if counts:
        count(counts)


def _script(name: str, prelude: str = "") -> str:
    """The text of a Lua script shipped beside this module, after the `prelude` script's."""
    folder = resources.files("app.players")
    text = folder.joinpath(name).read_text(encoding="utf-8")
    return folder.joinpath(prelude).read_text(encoding="utf-8") + text if prelude else text


# one batch: merge, write changed fields, build deltas
_APPLY = _script("apply_batch.lua", prelude="pack.lua")
_PUT_IF_NEWER = _script("put_if_newer.lua")  # create or replace a state when newer
# the write-behind's lease, and its marks with their sessions' snapshots
_TAKE_DIRTY = _script("dirty_take.lua", prelude="pack.lua")
_CLEAN_DIRTY = _script("dirty_clean.lua")  # marks written, and the lease given back
_HAND_OVER = _script("hand_over.lua")  # states frozen as they move to another store
_TAKE_OVER = _script("take_over.lua")  # states made live here, marked with the time
_FREEZE_STALE = _script("freeze_stale.lua")  # copies out of date frozen


# What the state script's msgpack decoder says of a blob that is not a batch in wire form.
_NOT_WIRE_FORM = ("cmsgpack", "Bad data format", "Missing bytes in input")


class RedisStateStore:
    """Session state in Redis hashes, applied by Lua scripts (one round trip per batch)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._apply = client.register_script(_APPLY)
        self._put = client.register_script(_PUT_IF_NEWER)
        self._take = client.register_script(_TAKE_DIRTY)
        self._clean = client.register_script(_CLEAN_DIRTY)
        self._hand_over = client.register_script(_HAND_OVER)
        self._take_over = client.register_script(_TAKE_OVER)
        self._freeze_stale = client.register_script(_FREEZE_STALE)

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False,
              fence: Fence | None = None) -> BatchOutcome:
        """Apply a batch, publish and count its deltas: one script call (Fenced when
        `fence` names a token its instance no longer has)."""
        args: list[str | bytes | int] = [emit.channel or "", keys.STATE_PREFIX,
                                         "1" if per_session else "0", batch, "", "",
                                         keys.STATE_HANDED_PREFIX]
        script_keys = [emit.updates_counter, emit.bytes_counter, emit.stale_counter,
                       keys.DIRTY]
        if fence is not None:
            script_keys.append(fence.key)
            args[4:6] = [fence.instance, fence.token]
        try:
            reply = self._apply(keys=script_keys, args=args)
        except redis.ResponseError as exc:
            if str(exc).startswith("FENCED") and fence is not None:
                raise Fenced(fence.instance) from None
            if not any(sign in str(exc) for sign in _NOT_WIRE_FORM):
                raise
            raise ValueError(f"not a batch in wire form: {exc}") from None
        stale, message, delta_bytes, applied, rejected, sizes = reply
        return BatchOutcome(
            applied=int(applied), stale=int(stale),
            rejected=[(int(rejected[k]), rejected[k + 1].decode(), rejected[k + 2].decode())
                      for k in range(0, len(rejected), 3)],
            message=bytes(message), delta_bytes=int(delta_bytes),
            per_session={sizes[k].decode(): int(sizes[k + 1]) for k in range(0, len(sizes), 2)})

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """HGETALL each session, pipelined in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hgetall(keys.state(session_id))
        return [_stored(raw) for raw in pipe.execute()]

    def seqs(self, session_ids: list[str]) -> list[int | None]:
        """HGET each session's seq, pipelined in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hget(keys.state(session_id), SEQ)
        return [None if raw is None else int(raw) for raw in pipe.execute()]

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create or replace the hash when `seq` is newer, atomically."""
        return bool(self._put(keys=[keys.state(session_id)], args=_put_args(seq, fields)))

    def put_many_if_newer(self, states: Sequence[tuple[str, int, Packed]]) -> int:
        """Each `put_if_newer` in one pipeline (each atomic, not the whole)."""
        if not states:
            return 0
        pipe = self._client.pipeline(transaction=False)
        for session_id, seq, fields in states:
            self._put(keys=[keys.state(session_id)], args=_put_args(seq, fields), client=pipe)
        return sum(bool(written) for written in pipe.execute())

    def hand_over(self, session_ids: Sequence[str]) -> bytes:
        """Freeze the sessions' state and return it as a batch: one script call."""
        if not session_ids:
            return handed_batch({})
        reply = self._hand_over(args=[keys.STATE_PREFIX, keys.STATE_HANDED_PREFIX,
                                      HANDED_TTL_S, *session_ids])
        return handed_batch({s: dict(zip(raw[::2], raw[1::2], strict=True))
                             for s, raw in zip(session_ids, reply, strict=True)})

    def clock(self) -> int:
        """Redis TIME, in microseconds."""
        seconds, micros = self._client.time()
        return int(seconds) * 1_000_000 + int(micros)

    def freeze_stale(self, session_ids: Sequence[str], since: int) -> list[str]:
        """Freeze the copies out of date and drop their marks: one script call."""
        if not session_ids:
            return []
        reply = self._freeze_stale(keys=[keys.DIRTY, keys.DIRTY_TAKING],
                                   args=[keys.STATE_PREFIX, keys.STATE_HANDED_PREFIX,
                                         HANDED_TTL_S, since, *session_ids])
        return [s.decode() for s in reply]

    def take_over(self, session_ids: Sequence[str], batch: bytes, emit: Emit,
                  fence: Fence | None = None) -> BatchOutcome:
        """Make the sessions live here (one script call), then apply `batch` (another)."""
        if session_ids:
            self._take_over(args=[keys.STATE_PREFIX, keys.STATE_HANDED_PREFIX, *session_ids])
        return self.apply(batch, emit, fence=fence)

    def take_dirty(self, owner: str, limit: int, lease_ms: int,
                   log_row: int = 0) -> Taken | None:
        """The lease and the round's first marks with their sessions' snapshots, built by
        the script: one call, two short strings per session to read."""
        reply = self._take(
            keys=[keys.DIRTY, keys.DIRTY_LEASE, keys.DIRTY_TAKING, keys.DIRTY_CUT,
                  keys.STATE_RECOVERED],
            args=[owner, lease_ms, limit, keys.STATE_PREFIX, log_row])
        if reply is None:
            return None
        return Taken(int(reply[0]), [
            Dirty(reply[k].decode(), int(reply[k + 1]), bytes(reply[k + 2]))
            for k in range(1, len(reply), 3)])

    def dirty_count(self) -> int:
        """The marks, those of the round under way included."""
        pipe = self._client.pipeline(transaction=False)
        pipe.scard(keys.DIRTY)
        pipe.scard(keys.DIRTY_TAKING)
        return sum(int(n) for n in pipe.execute())

    def clean_dirty(self, owner: str, sessions: Sequence[str], release: bool) -> None:
        """Remove the round's marks of `sessions` (and the lease), in one script call."""
        self._clean(keys=[keys.DIRTY_TAKING, keys.DIRTY_LEASE],
                    args=[owner, "1" if release else "0", *sessions])

    def recovered(self) -> bool:
        """Whether the recovered flag is set on this Redis (gone with a Redis that restarted
        empty)."""
        return bool(self._client.exists(keys.STATE_RECOVERED))

    def set_recovered(self) -> None:
        """Set the recovered flag."""
        self._client.set(keys.STATE_RECOVERED, b"1")

    def note_flush(self, writer: str, began: int) -> None:
        """Note `writer`'s flush: its score in a sorted set, only ever raised."""
        self._client.zadd(keys.STATE_LOG_FLUSHES, {writer: began}, gt=True)

    def flushes(self, since: int) -> dict[str, int]:
        """The writers' last flushes since `since`: one round trip, which drops the
        older ones."""
        pipe = self._client.pipeline(transaction=False)
        pipe.zremrangebyscore(keys.STATE_LOG_FLUSHES, "-inf", f"({since}")
        pipe.zrange(keys.STATE_LOG_FLUSHES, 0, -1, withscores=True)
        _, marks = pipe.execute()
        return {writer.decode(): int(at) for writer, at in marks}


def _put_args(seq: int, fields: Packed) -> list[bytes | str | int]:
    # The script's HSET takes 'seq' and ARGV, so ARGV[1] is the seq's value.
    args: list[bytes | str | int] = [seq]
    for name, value in fields.items():  # each field written at `seq` (its version)
        args += [PREFIX + name, value, VERSION_PREFIX + name, seq]
    return args


def _stored(raw: dict[bytes, bytes]) -> StoredState | None:
    if SEQ not in raw:
        return None
    fields = {_name(k): v for k, v in raw.items() if k.startswith(FIELD_PREFIX)}
    return StoredState(int(raw[SEQ]), fields)


def _name(raw: bytes) -> str:
    return raw.decode()[len(PREFIX):]


def handed_batch(states: dict[str, dict[bytes, bytes]]) -> bytes:
    """Sessions' state hashes (as stored on Redis: ``seq``, ``.<name>`` values, ``^<name>``
    versions) as one batch in wire form: per session, an update per version its fields
    hold, writing those fields at it, and one at its seq (none for a session at 0), so that
    applying the batch anywhere writes each field where it is newer than what is there."""
    entries: list[list[bytes | int]] = []
    for session_id, raw in states.items():
        seq = int(raw.get(SEQ, 0))
        sid = session_id.encode()
        by_version: dict[int, list[bytes | int]] = {seq: [sid, seq]} if seq > 0 else {}
        for key, value in raw.items():
            if key.startswith(FIELD_PREFIX):
                name = key[len(FIELD_PREFIX):]
                version = int(raw.get(VERSION_PREFIX.encode() + name, seq) or seq)
                if version > 0:
                    by_version.setdefault(version, [sid, version]).extend((name, value))
        entries.extend(by_version.values())
    return pack_batch(entries)


def _as_hash(seq: int, fields: Packed, versions: dict[str, int]) -> dict[bytes, bytes]:
    """A state kept in memory as the hash Redis keeps it."""
    raw = {SEQ: str(seq).encode()}
    for name, value in fields.items():
        raw[FIELD_PREFIX + name.encode()] = value
        raw[VERSION_PREFIX.encode() + name.encode()] = str(versions.get(name, seq)).encode()
    return raw
