"""Session state storage: per-session fields with the newest applied sequence number.

A session's state is a hash of field name -> packed value (see `app.wire`), plus its
sequence number.  Applying a batch is one atomic step per store (a Lua script on Redis, a
lock in memory) that takes the batch in its wire form: entries are checked one by one
(a malformed one is rejected, the rest still apply), grouped by session and sorted by
sequence; updates at or below the stored sequence are skipped as stale, newer ones merged
in order, and only the fields whose packed value changed are written.  The same step
builds the batch's delta message, msgpack ``{session: [seq, {changed fields}]}``, publishes
it and counts it, so a batch costs one round trip on Redis and no state value is unpacked
anywhere.  No read-modify-write crosses the network: concurrent batches that share
sessions never conflict or retry.

Redis layout: ``gamesched:state:<session>`` is a hash with ``seq`` and one ``.<name>``
field per state field.  The script computes these keys from the session ids, so it runs on
a single Redis, not on a cluster.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import redis

from app import delta
from app.wire import unpack_batch

Packed = dict[str, bytes]  # field name -> msgpack-packed value


@dataclass(frozen=True)
class Emit:
    """Where a batch's deltas go: the channel to publish them on (None: not published), and
    the counters of applied updates and of delta bytes."""

    channel: str | None
    updates_counter: str
    bytes_counter: str


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

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False) -> BatchOutcome:
        """Apply a batch in its wire form atomically, then publish and count its deltas."""

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids` (None for an unknown session)."""

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create the session's state, or replace it when `seq` is newer; True if written."""


KEY_PREFIX = "gamesched:state:"


def state_key(session_id: str) -> str:
    """The Redis key of a session's state hash."""
    return KEY_PREFIX + session_id


# The reason given for an update of a session hot state does not hold (the Lua script
# spells it the same way); callers restore such sessions by it.
UNKNOWN_SESSION = "unknown session"
SEQ = b"seq"
PREFIX = "."


Publish = Callable[[str, bytes], None]
Count = Callable[[dict[str, int]], None]


class MemoryStateStore:
    """Session state in this process (the embedded default and fast tests); the same rules
    as the Redis script, in Python."""

    def __init__(self, publish: Publish, count: Count) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[int, Packed]] = {}
        self._publish = publish
        self._count = count

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False) -> BatchOutcome:
        """Apply a batch under one lock, then publish and count its deltas."""
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
            out.rejected += [(i, "session", f"{UNKNOWN_SESSION} {session_id!r}")
                             for i in indices]
            return
        seq, fields = current
        applied, newest = 0, dict[str, bytes]()
        for update in updates:
            if update[1] <= seq:
                out.stale += 1
                continue
            newest.update(zip((n.decode() for n in update[2::2]), update[3::2], strict=True))
            seq, applied = update[1], applied + 1
        if applied:
            changed = {k: v for k, v in newest.items() if fields.get(k) != v}
            self._states[session_id] = (seq, {**fields, **changed})
            deltas[session_id] = delta.encode_packed(seq, changed)
            out.applied += applied
            out.per_session[session_id] = applied

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


def _group(entries: list[Any], rejected: list[tuple[int, str, str]]) -> dict[str, list[int]]:
    """Check each entry; the valid ones' indices by session, in ascending sequence order."""
    groups: dict[str, list[int]] = {}
    for index, entry in enumerate(entries):
        problem = _malformed(entry)
        if problem:
            rejected.append((index, *problem))
            continue
        groups.setdefault(entry[0].decode(), []).append(index)
    for indices in groups.values():
        indices.sort(key=lambda i: entries[i][1])
    return groups


def _malformed(entry: Any) -> tuple[str, str] | None:
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
    if not outcome.applied:
        return
    if emit.channel is not None:
        publish(emit.channel, outcome.message)
    count({emit.updates_counter: outcome.applied, emit.bytes_counter: outcome.delta_bytes})


# KEYS: the two counters.  ARGV: the channel ('' for none), the state keys' prefix, '1' to
# report the updates applied per session, the batch in its wire form.  Reply: {stale,
# message, delta bytes, applied, {index, field, reason, ...}, {session, applied, ...}}.
# Each delta is assembled from packed values: 0x92 opens [seq, changes], then the seq as a
# msgpack int, a map header and the (name, value) pairs; the session ids are msgpack
# strings.  Indices in the reply count from 0.
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

local channel, prefix, want_sizes = ARGV[1], ARGV[2], ARGV[3] == '1'
local entries = cmsgpack.unpack(ARGV[4])
if type(entries) ~= 'table' or (#entries == 0 and next(entries) ~= nil) then
  return redis.error_reply('Bad data format: not an array of update entries')
end
local rejected, groups, order = {}, {}, {}
local function reject(i, field, reason)
  rejected[#rejected + 1] = i - 1
  rejected[#rejected + 1] = field
  rejected[#rejected + 1] = reason
end
local function pairs_ok(e)
  if #e % 2 == 1 then return false end
  for k = 3, #e do if type(e[k]) ~= 'string' then return false end end
  return true
end

for i = 1, #entries do
  local e = entries[i]
  if type(e) ~= 'table' or #e < 2 then reject(i, 'update', 'expected an array entry')
  elseif type(e[1]) ~= 'string' then reject(i, 'session', 'expected a session id string')
  elseif type(e[2]) ~= 'number' or e[2] < 1 or e[2] ~= math.floor(e[2]) then
    reject(i, 'seq', 'expected an integer >= 1')
  elseif not pairs_ok(e) then reject(i, 'state', 'expected field names and packed values')
  else
    local g = groups[e[1]]
    if not g then g = {}; groups[e[1]] = g; order[#order + 1] = e[1] end
    g[#g + 1] = i
  end
end

-- Sequence order, and batch order between equal sequence numbers (table.sort is not stable):
-- of two updates with one number, the first in the batch applies and the other is stale.
local by_seq = function(x, y)
  local a, b = entries[x][2], entries[y][2]
  return a < b or (a == b and x < y)
end
-- Strings made from field names are made once per script run, not once per session.
local dotted, named = {}, {}
local function dot(name)
  local d = dotted[name]
  if not d then d = '.' .. name; dotted[name] = d; named[name] = packstr(name) end
  return d
end
-- The tables of one session are reused for the next, sized by a count and cleared after
-- it: tables grown from empty for every session were most of the script's cost.
local fields, names, values, slot = {'seq'}, {}, {}, {}
local write = {'seq', ''}

-- Every field any update of the session `g` names; returns how many.  `slot` maps a name
-- to its place in `names`, `values` and (one further on) `fields`.
local function collect(g)
  if #g > 1 then table.sort(g, by_seq) end
  local n = 0
  for _, i in ipairs(g) do
    local e = entries[i]
    for f = 3, #e, 2 do
      local name = e[f]
      if not slot[name] then
        n = n + 1
        slot[name], names[n], fields[n + 1] = n, name, dot(name)
      end
    end
  end
  return n
end

local stale, total, bytes, sessions, parts, p, sizes = 0, 0, 0, 0, {''}, 1, {}
for _, sid in ipairs(order) do
  local g = groups[sid]
  local key = prefix .. sid
  local n = collect(g)
  local old = redis.call('HMGET', key, unpack(fields, 1, n + 1))
  if not old[1] then
    for _, i in ipairs(g) do reject(i, 'session', "unknown session '" .. sid .. "'") end
  else
    local seq, applied = tonumber(old[1]), 0
    for _, i in ipairs(g) do
      local e = entries[i]
      if e[2] <= seq then
        stale = stale + 1
      else
        seq, applied = e[2], applied + 1
        for f = 3, #e, 2 do values[slot[e[f]]] = e[f + 1] end
      end
    end
    if applied > 0 then
      -- The delta goes into `parts` piece by piece, its header once its size is known.
      write[2] = string.format('%d', seq)
      local w, c, head, size = 2, 0, p + 2, 0
      parts[p + 1], p = packstr(sid), p + 2
      for j = 1, n do
        local value = values[j]
        if value ~= nil and old[j + 1] ~= value then
          local name = named[names[j]]
          write[w + 1], write[w + 2], w = fields[j + 1], value, w + 2
          parts[p + 1], parts[p + 2], p = name, value, p + 2
          c, size = c + 1, size + #name + #value
        end
      end
      redis.call('HSET', key, unpack(write, 1, w))
      parts[head] = '\\146' .. packint(seq) .. maphead(c)
      bytes = bytes + size + #parts[head]
      total, sessions = total + applied, sessions + 1
      if want_sizes then
        sizes[#sizes + 1] = sid
        sizes[#sizes + 1] = applied
      end
    end
  end
  for j = 1, n do slot[names[j]], values[j] = nil, nil end
end

parts[1] = maphead(sessions)
local message = table.concat(parts, '', 1, p)
if total > 0 then
  if channel ~= '' then redis.call('PUBLISH', channel, message) end
  redis.call('INCRBY', KEYS[1], total)
  redis.call('INCRBY', KEYS[2], bytes)
end
return {stale, message, bytes, total, rejected, sizes}
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

    def apply(self, batch: bytes, emit: Emit, per_session: bool = False) -> BatchOutcome:
        """Apply a batch, publish and count its deltas: one script call."""
        args = [emit.channel or "", KEY_PREFIX, "1" if per_session else "0", batch]
        try:
            reply = self._apply(keys=[emit.updates_counter, emit.bytes_counter], args=args)
        except redis.ResponseError as exc:
            if "cmsgpack" not in str(exc) and "Bad data format" not in str(exc):
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
            pipe.hgetall(state_key(session_id))
        return [_stored(raw) for raw in pipe.execute()]

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create or replace the hash when `seq` is newer, atomically."""
        args: list[bytes | str | int] = [seq]
        for name, value in fields.items():
            args += [PREFIX + name, value]
        # The script's HSET takes 'seq' and ARGV, so ARGV[1] is the seq's value.
        return bool(self._put(keys=[state_key(session_id)], args=args))


def _stored(raw: dict[bytes, bytes]) -> StoredState | None:
    if SEQ not in raw:
        return None
    fields = {_name(k): v for k, v in raw.items() if k != SEQ}
    return StoredState(int(raw[SEQ]), fields)


def _name(raw: bytes) -> str:
    return raw.decode()[len(PREFIX):]
