"""Session state storage: per-session fields with the newest applied sequence number.

A session's state is a hash of field name -> msgpack-packed value, plus its sequence number.
Applying a batch is one atomic step per store (a Lua script on Redis, a lock in memory):
updates at or below the stored sequence are skipped as stale, newer ones are merged in
sequence order, and only the fields whose packed value changed are written.  The same
step builds the batch's delta message, msgpack ``{session: [seq, {changed fields}]}``,
publishes it and counts it, so a batch costs one round trip on Redis.  No
read-modify-write crosses the network: concurrent batches that share sessions never
conflict or retry.

Values stay packed end to end: the store compares bytes and never decodes them.

Redis layout: ``gamesched:state:<session>`` is a hash with ``seq`` and one field per state
field, named by the msgpack-packed field name.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgpack
import redis

from app import delta

Packed = dict[str, bytes]  # field name -> msgpack-packed value


@dataclass(frozen=True)
class SessionUpdates:
    """The valid updates of one session in a batch, in ascending sequence order."""

    session_id: str
    updates: list[tuple[int, Packed]]


@dataclass(frozen=True)
class Emit:
    """Where a batch's deltas go: the channel to publish them on (None: not published), and
    the counters of applied updates and of delta bytes."""

    channel: str | None
    updates_counter: str
    bytes_counter: str


@dataclass(frozen=True)
class BatchOutcome:
    """What applying a batch did.  `applied` has one entry per session of the batch: the
    updates applied, or None for an unknown session.  `message` is the delta message."""

    applied: list[int | None]
    stale: int
    message: bytes
    delta_bytes: int


@dataclass(frozen=True)
class StoredState:
    """A session's stored sequence number and packed fields."""

    seq: int
    fields: Packed


class StateStore(Protocol):
    """Where sessions' hot state lives."""

    def apply(self, batch: list[SessionUpdates], emit: Emit) -> BatchOutcome:
        """Apply each session's updates atomically, then publish and count the deltas."""

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids` (None for an unknown session)."""

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create the session's state, or replace it when `seq` is newer; True if written."""


KEY_PREFIX = "gamesched:state:"


def state_key(session_id: str) -> str:
    """The Redis key of a session's state hash."""
    return KEY_PREFIX + session_id


SEQ = b"seq"
_NAMES: dict[str, bytes] = {}  # field name -> packed name; state fields are few and repeat
_NAMES_LIMIT = 4096


def packed_name(name: str) -> bytes:
    """A field's name as its hash field: msgpack-packed, so the script writes it into a delta
    as it is, and no name can collide with ``seq``."""
    packed = _NAMES.get(name)
    if packed is None:
        if len(_NAMES) >= _NAMES_LIMIT:
            _NAMES.clear()
        packed = _NAMES[name] = msgpack.packb(name)
    return packed


Publish = Callable[[str, bytes], None]
Count = Callable[[dict[str, int]], None]


class MemoryStateStore:
    """Session state in this process (the embedded default and fast tests)."""

    def __init__(self, publish: Publish, count: Count) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[int, Packed]] = {}
        self._publish = publish
        self._count = count

    def apply(self, batch: list[SessionUpdates], emit: Emit) -> BatchOutcome:
        """Apply each session's updates under one lock, then publish and count."""
        deltas: dict[str, bytes] = {}
        with self._lock:
            results = [self._apply_one(entry, deltas) for entry in batch]
        message = delta.message(deltas)
        outcome = BatchOutcome([a for a, _ in results], sum(s for _, s in results), message,
                               sum(len(d) for d in deltas.values()))
        _emit(outcome, emit, self._publish, self._count)
        return outcome

    def _apply_one(self, entry: SessionUpdates, deltas: dict[str, bytes]
                   ) -> tuple[int | None, int]:
        current = self._states.get(entry.session_id)
        if current is None:
            return None, 0
        seq, fields = current
        applied, stale, newest = 0, 0, {}
        for update_seq, values in entry.updates:
            if update_seq <= seq:
                stale += 1
                continue
            newest.update(values)
            seq, applied = update_seq, applied + 1
        if applied:
            changed = {k: v for k, v in newest.items() if fields.get(k) != v}
            self._states[entry.session_id] = (seq, {**fields, **changed})
            deltas[entry.session_id] = delta.encode_packed(seq, changed)
        return applied, stale

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids`."""
        with self._lock:
            found = [self._states.get(s) for s in session_ids]
        return [StoredState(c[0], dict(c[1])) if c else None for c in found]

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create or replace the state when `seq` is newer than the stored one."""
        with self._lock:
            current = self._states.get(session_id)
            if current is not None and (current[0] >= seq):
                return False
            self._states[session_id] = (seq, dict(fields))
            return True


def _emit(outcome: BatchOutcome, emit: Emit, publish: Publish, count: Count) -> None:
    applied = sum(a for a in outcome.applied if a)
    if not applied:
        return
    if emit.channel is not None:
        publish(emit.channel, outcome.message)
    count({emit.updates_counter: applied, emit.bytes_counter: outcome.delta_bytes})


# KEYS: the sessions' state hashes, then the two counters.  ARGV: the channel ('' for none),
# the length of the state keys' prefix, then per session in KEYS order the number of
# updates and per update its seq, its number of fields and the (packed name, packed value)
# pairs.  Reply: {stale, message, delta bytes, applied per session (-1: unknown)...}.
# Each delta is assembled from packed names and values: 0x92 opens [seq, changes], then the
# seq as a msgpack int, a map header and the pairs; the session ids are msgpack strings.
_APPLY = """
local function maphead(n)
  if n < 16 then return string.char(0x80 + n) end
  if n < 65536 then return string.char(0xde, math.floor(n / 256), n % 256) end
  return string.char(0xdf, math.floor(n / 16777216), math.floor(n / 65536) % 256,
                     math.floor(n / 256) % 256, n % 256)
end
local function bytes_of(n, width)
  local out = {}
  for k = width, 1, -1 do out[k] = string.char(n % 256); n = math.floor(n / 256) end
  return table.concat(out)
end
local function packint(n)
  if n < 128 then return string.char(n) end
  if n < 256 then return '\\204' .. string.char(n) end
  if n < 65536 then return '\\205' .. bytes_of(n, 2) end
  if n < 4294967296 then return '\\206' .. bytes_of(n, 4) end
  return '\\207' .. bytes_of(n, 8)
end
local function packstr(text)
  local n = #text
  if n < 32 then return string.char(0xa0 + n) .. text end
  if n < 256 then return '\\217' .. string.char(n) .. text end
  if n < 65536 then return '\\218' .. bytes_of(n, 2) .. text end
  return '\\219' .. bytes_of(n, 4) .. text
end
local sessions = #KEYS - 2
local channel, skip = ARGV[1], tonumber(ARGV[2])
local a, stale, total, bytes = 3, 0, 0, 0
local applied_by, parts, nparts = {}, {}, 0
for i = 1, sessions do
  local key = KEYS[i]
  local count = tonumber(ARGV[a]); a = a + 1
  local current = redis.call('HGET', key, 'seq')
  if not current then
    for u = 1, count do a = a + 2 + 2 * tonumber(ARGV[a + 1]) end
    applied_by[i] = -1
  else
    local seq, seqtext = tonumber(current), current
    local applied, newest, names = 0, {}, {}
    for u = 1, count do
      local useq, n = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
      if useq <= seq then
        stale = stale + 1
        a = a + 2 + 2 * n
      else
        seq, seqtext, applied = useq, ARGV[a], applied + 1
        a = a + 2
        for f = 1, n do
          local name = ARGV[a]
          if newest[name] == nil then names[#names + 1] = name end
          newest[name] = ARGV[a + 1]
          a = a + 2
        end
      end
    end
    applied_by[i] = applied
    if applied > 0 then
      local write, changes = {'seq', seqtext}, {}
      if #names > 0 then
        local old = redis.call('HMGET', key, unpack(names))
        for j, name in ipairs(names) do
          local value = newest[name]
          if old[j] ~= value then
            write[#write + 1] = name; write[#write + 1] = value
            changes[#changes + 1] = name .. value
          end
        end
      end
      redis.call('HSET', key, unpack(write))
      local d = '\\146' .. packint(seq) .. maphead(#changes) .. table.concat(changes)
      bytes = bytes + #d
      total = total + applied
      nparts = nparts + 1
      parts[nparts] = packstr(string.sub(key, skip + 1)) .. d
    end
  end
end
local message = maphead(nparts) .. table.concat(parts)
if total > 0 then
  if channel ~= '' then redis.call('PUBLISH', channel, message) end
  redis.call('INCRBY', KEYS[sessions + 1], total)
  redis.call('INCRBY', KEYS[sessions + 2], bytes)
end
local reply = {stale, message, bytes}
for i = 1, sessions do reply[i + 3] = applied_by[i] end
return reply
"""

# KEYS[1]: the state hash; ARGV: seq, then (".name", packed value) pairs.
_PUT_IF_NEWER = """
local current = redis.call('HGET', KEYS[1], 'seq')
if current and tonumber(current) >= tonumber(ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 'seq', unpack(ARGV))
return 1
"""


class RedisStateStore:
    """Session state in Redis hashes, applied by Lua scripts (one round trip per batch)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._apply = client.register_script(_APPLY)
        self._put = client.register_script(_PUT_IF_NEWER)

    def apply(self, batch: list[SessionUpdates], emit: Emit) -> BatchOutcome:
        """Apply the batch, publish and count its deltas: one script call."""
        if not batch:
            return BatchOutcome([], 0, delta.message({}), 0)
        args: list[bytes | str | int] = [emit.channel or "", len(KEY_PREFIX)]
        for entry in batch:
            args.append(len(entry.updates))
            for seq, values in entry.updates:
                args += [seq, len(values)]
                for name, value in values.items():
                    args += [packed_name(name), value]
        keys = [state_key(e.session_id) for e in batch]
        reply = self._apply(keys=[*keys, emit.updates_counter, emit.bytes_counter], args=args)
        stale, message, delta_bytes, *applied = reply
        return BatchOutcome([None if a == -1 else int(a) for a in applied], int(stale),
                            bytes(message), int(delta_bytes))

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """HGETALL each session, pipelined in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for session_id in session_ids:
            pipe.hgetall(state_key(session_id))
        return [_stored(raw) for raw in pipe.execute()]

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create or replace the hash when `seq` is newer, atomically."""
        args: list[bytes | str | int] = [seq]
        for name, value in fields.items():
            args += [packed_name(name), value]
        # The script's HSET takes 'seq' and ARGV, so ARGV[1] is the seq's value.
        return bool(self._put(keys=[state_key(session_id)], args=args))


def _stored(raw: dict[bytes, bytes]) -> StoredState | None:
    if SEQ not in raw:
        return None
    fields = {_name(k): v for k, v in raw.items() if k != SEQ}
    return StoredState(int(raw[SEQ]), fields)


def _name(raw: bytes) -> str:
    return str(msgpack.unpackb(raw, raw=False))
