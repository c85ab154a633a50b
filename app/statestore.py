"""Session state storage: per-session fields with the newest applied sequence number.

A session's state is a hash of field name -> msgpack-packed value, plus its sequence number.
Applying a batch is one atomic step per store (a Lua script on Redis, a lock in memory):
updates at or below the stored sequence are skipped as stale, newer ones are merged in
sequence order, and only the fields whose packed value changed are written and returned.
No read-modify-write crosses the network, so concurrent batches that share sessions never
conflict or retry.

Values stay packed end to end: the store compares bytes and never decodes them.

Redis layout: ``gamesched:state:<session>`` is a hash with ``seq`` and one ``.<name>`` field
per state field.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Protocol

import redis

Packed = dict[str, bytes]  # field name -> msgpack-packed value


@dataclass(frozen=True)
class SessionUpdates:
    """The valid updates of one session in a batch, in ascending sequence order."""

    session_id: str
    updates: list[tuple[int, Packed]]


@dataclass
class Outcome:
    """What applying one session's updates did.  `applied` is None for an unknown session;
    `changed` holds the fields whose value differs from the state before the batch."""

    applied: int | None
    stale: int = 0
    seq: int = 0
    changed: Packed = field(default_factory=dict)


@dataclass(frozen=True)
class StoredState:
    """A session's stored sequence number and packed fields."""

    seq: int
    fields: Packed


class StateStore(Protocol):
    """Where sessions' hot state lives."""

    def apply(self, batch: list[SessionUpdates]) -> list[Outcome]:
        """Apply each session's updates atomically; one outcome per entry of `batch`."""

    def read(self, session_ids: list[str]) -> list[StoredState | None]:
        """The stored states of `session_ids` (None for an unknown session)."""

    def put_if_newer(self, session_id: str, seq: int, fields: Packed) -> bool:
        """Create the session's state, or replace it when `seq` is newer; True if written."""


def state_key(session_id: str) -> str:
    """The Redis key of a session's state hash."""
    return f"gamesched:state:{session_id}"


SEQ = b"seq"
PREFIX = "."


class MemoryStateStore:
    """Session state in this process (the embedded default and fast tests)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, tuple[int, Packed]] = {}

    def apply(self, batch: list[SessionUpdates]) -> list[Outcome]:
        """Apply each session's updates under one lock."""
        with self._lock:
            return [self._apply_one(entry) for entry in batch]

    def _apply_one(self, entry: SessionUpdates) -> Outcome:
        current = self._states.get(entry.session_id)
        if current is None:
            return Outcome(applied=None)
        seq, fields = current
        applied, stale, newest = 0, 0, {}
        for update_seq, values in entry.updates:
            if update_seq <= seq:
                stale += 1
                continue
            newest.update(values)
            seq, applied = update_seq, applied + 1
        if not applied:
            return Outcome(applied=0, stale=stale, seq=seq)
        changed = {k: v for k, v in newest.items() if fields.get(k) != v}
        self._states[entry.session_id] = (seq, {**fields, **changed})
        return Outcome(applied=applied, stale=stale, seq=seq, changed=changed)

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


# ARGV, per session in KEYS order: the number of updates, then per update its seq, its
# number of fields and the (".name", packed value) pairs.  Reply, per session: {-1} when
# unknown, else {applied, stale, seq, ".name", value, ...} with only the changed fields.
_APPLY = """
local out, a = {}, 1
for i, key in ipairs(KEYS) do
  local count = tonumber(ARGV[a]); a = a + 1
  local current = redis.call('HGET', key, 'seq')
  if not current then
    for u = 1, count do a = a + 2 + 2 * tonumber(ARGV[a + 1]) end
    out[i] = {-1}
  else
    local seq, seqtext = tonumber(current), current
    local applied, stale, newest, names = 0, 0, {}, {}
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
    local reply = {applied, stale, seqtext}
    if applied > 0 then
      local write = {'seq', seqtext}
      if #names > 0 then
        local old = redis.call('HMGET', key, unpack(names))
        for j, name in ipairs(names) do
          if old[j] ~= newest[name] then
            write[#write + 1] = name; write[#write + 1] = newest[name]
            reply[#reply + 1] = name; reply[#reply + 1] = newest[name]
          end
        end
      end
      redis.call('HSET', key, unpack(write))
    end
    out[i] = reply
  end
end
return out
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

    def apply(self, batch: list[SessionUpdates]) -> list[Outcome]:
        """Apply the batch in one script call."""
        if not batch:
            return []
        args: list[bytes | str | int] = []
        for entry in batch:
            args.append(len(entry.updates))
            for seq, values in entry.updates:
                args += [seq, len(values)]
                for name, value in values.items():
                    args += [PREFIX + name, value]
        replies = self._apply(keys=[state_key(e.session_id) for e in batch], args=args)
        return [_outcome(reply) for reply in replies]

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


def _outcome(reply: list[bytes | int]) -> Outcome:
    """Read one session's part of the apply script's reply (strings as bytes)."""
    if reply[0] == -1:
        return Outcome(applied=None)
    applied, stale, seq = int(reply[0]), int(reply[1]), int(reply[2])
    pairs = reply[3:]
    changed = {_name(pairs[i]): bytes(pairs[i + 1])
               for i in range(0, len(pairs), 2)}
    return Outcome(applied=applied, stale=stale, seq=seq, changed=changed)


def _stored(raw: dict[bytes, bytes]) -> StoredState | None:
    if SEQ not in raw:
        return None
    fields = {_name(k): v for k, v in raw.items() if k != SEQ}
    return StoredState(int(raw[SEQ]), fields)


def _name(raw: object) -> str:
    text = raw.decode() if isinstance(raw, bytes) else str(raw)
    return text[len(PREFIX):]
