"""The instance registry on Redis: every instance and every game server shares it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from importlib import resources

import redis

from app.errors import ServerFull
from app.instances.base import RETRY_AFTER_S, InstanceState, Placing, milli, pulls
from app.instances.placement import EPSILON, Move, ranked
from app.instances.tokens import HotTokens
from app.protocol import keys

NAMES_TTL_S = 1.0  # a client reads the registered instances' names at most this often
KEEP_WEIGHT = -1  # place.lua: move a session with the weight it has

_PLACE = resources.files("app.instances").joinpath("place.lua").read_text(encoding="utf-8")
_HEARTBEAT = """
if ARGV[3] ~= '' and redis.call('HGET', KEYS[3], ARGV[1]) ~= ARGV[3] then return 0 end
local clock = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], clock[1] .. '.' .. string.format('%06d', clock[2]))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
return 1
"""
_RELEASE = """
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then return 0 end
local w = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HINCRBY', KEYS[3], owner, -w)
redis.call('HINCRBY', KEYS[4], owner, -1)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
redis.call('HDEL', KEYS[5], ARGV[1])
return 1
"""
_ARRIVED = """
for i = 2, #ARGV do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[1] then redis.call('HDEL', KEYS[1], ARGV[i]) end
end
return 1
"""
_PLACE_KEYS = [keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY, keys.PLACEMENT_OWNER,
               keys.PLACEMENT_WEIGHT, keys.PLACEMENT_LOAD, keys.PLACEMENT_COUNT,
               keys.INSTANCES_DRAINING, keys.PLACEMENT_EPOCH, keys.PLACEMENT_MOVED,
               keys.PLACEMENT_FROM]
_MOVE = resources.files("app.instances").joinpath("move.lua").read_text(encoding="utf-8")
_MOVE_KEYS = [keys.PLACEMENT_OWNER, keys.PLACEMENT_WEIGHT, keys.PLACEMENT_LOAD,
              keys.PLACEMENT_COUNT, keys.INSTANCES_CAPACITY, keys.PLACEMENT_EPOCH,
              keys.PLACEMENT_MOVED, keys.PLACEMENT_FROM]


class RedisRegistry:
    """The registry on a Redis every instance and game server shares
    (`app.instances.registry`).  Placing and moving a session is one script call,
    `place.lua`, so two game servers never both take the last room."""

    def __init__(self, client: redis.Redis, ttl_s: float = 3.0,
                 epsilon: float = EPSILON) -> None:
        self._client, self.ttl_s, self.epsilon = client, ttl_s, epsilon
        self._place = client.register_script(_PLACE)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._release = client.register_script(_RELEASE)
        self._move = client.register_script(_MOVE)
        self._arrived = client.register_script(_ARRIVED)
        self._names: list[str] = []
        self._names_at = float("-inf")
        self._tokens = HotTokens()

    def join(self, instance: str, capacity: int, hot_url: str = "", hot_name: str = "") -> int:
        """`instance` starts: it takes sessions again, its state on `hot_url`, a store named
        `hot_name`; returns its new token, written into that store too (raises when it
        cannot be: the instance could write nothing)."""
        self._client.srem(keys.INSTANCES_DRAINING, instance)
        self._client.set(keys.INSTANCES_GENERATION, uuid.uuid4().hex, nx=True)
        if hot_url:
            self._client.hset(keys.INSTANCES_HOT, instance, hot_url)
        if hot_name:
            self._client.hset(keys.INSTANCES_HOT_NAME, instance, hot_name)
        token = int(self._client.hincrby(keys.INSTANCES_TOKEN, instance, 1))
        if hot_url and not self._tokens.copy(hot_url, instance, token):
            raise redis.ConnectionError(f"instance {instance}: its hot store does not answer")
        self.heartbeat(instance, capacity, token)
        return token

    def heartbeat(self, instance: str, capacity: int, token: int | None = None) -> bool:
        """`instance` is alive (by Redis's clock) and takes up to `capacity` sessions
        (False: fenced)."""
        return bool(self._heartbeat(
            keys=[keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY, keys.INSTANCES_TOKEN],
            args=[instance, capacity, "" if token is None else token]))

    def fence(self, instance: str) -> None:
        """Take `instance` over: its token raised, here and in its hot store when that
        answers (else its writes there are refused only once it learns it was fenced)."""
        self._client.hincrby(keys.INSTANCES_TOKEN, instance, 1)
        self.copy_token(instance)

    def copy_token(self, instance: str) -> bool:
        """Write `instance`'s current token into its hot store (False: unreachable, or no
        store recorded)."""
        with self._client.pipeline(transaction=False) as pipe:
            pipe.hget(keys.INSTANCES_TOKEN, instance)
            pipe.hget(keys.INSTANCES_HOT, instance)
            token, url = pipe.execute()
        if token is None or url is None:
            return False
        return self._tokens.copy(_text(url), instance, int(token))

    def hot_urls(self) -> dict[str, str]:
        """The hot store of each instance that recorded one."""
        return {_text(k): _text(v) for k, v in self._client.hgetall(keys.INSTANCES_HOT).items()}

    def hot_names(self) -> dict[str, str]:
        """The hot store's name of each instance that recorded one."""
        return {_text(k): _text(v)
                for k, v in self._client.hgetall(keys.INSTANCES_HOT_NAME).items()}

    def refused(self, instance: str, writes: int = 1) -> None:
        """Count writes refused from `instance`."""
        self._client.hincrby(keys.INSTANCES_REFUSED, instance, writes)

    def leave(self, instance: str) -> None:
        """`instance` stopped: it is silent from now on."""
        if self._client.hexists(keys.INSTANCES_SEEN, instance):
            self._client.hset(keys.INSTANCES_SEEN, instance, 0)

    def forget(self, instance: str) -> None:
        """Remove `instance` from the registry."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.INSTANCES_SEEN, instance)
            pipe.hdel(keys.INSTANCES_CAPACITY, instance)
            pipe.srem(keys.INSTANCES_DRAINING, instance)
            pipe.execute()

    def place(self, session: str, weight: float, prefer: str | None = None) -> str | None:
        """See `Registry.place`: one script call."""
        name, outcome = self._call(session, milli(weight), self._registered(), prefer=prefer)
        if outcome == b"full":
            raise ServerFull(sum(state.live for state in self.instances()), RETRY_AFTER_S)
        return name or None

    def place_many(self, requests: Sequence[Placing]) -> list[str | None]:
        """See `Registry.place_many`: one script call each, all in one pipeline, over the
        registered instances read now."""
        names = self._registered(fresh=True)
        with self._client.pipeline(transaction=False) as pipe:
            for session, weight, prefer in requests:
                self._place(keys=_PLACE_KEYS, args=self._args(
                    session, milli(weight), names, prefer=prefer), client=pipe)
            replies = pipe.execute()
        return [_text(name) or None for name, _outcome in replies]

    def drain(self, instance: str) -> list[Move]:
        """See `Registry.drain`: one script call per session of `instance`."""
        self._client.sadd(keys.INSTANCES_DRAINING, instance)
        names = self._registered(fresh=True)
        ours = sorted(_text(s) for s, owner in self._client.hgetall(
            keys.PLACEMENT_OWNER).items() if _text(owner) == instance)
        moves = []
        for session in ours:
            target, outcome = self._call(session, KEEP_WEIGHT, names, avoid=instance)
            if outcome == 2:
                moves.append(Move(session, instance, target))
        return moves

    def rebalance(self) -> list[Move]:
        """See `Registry.rebalance`: the plan from one read, each move one script call."""
        live = [s.name for s in self.instances() if s.live and not s.draining]
        if len(live) < 2:
            return []
        with self._client.pipeline(transaction=False) as pipe:
            for key in (keys.PLACEMENT_LOAD, keys.PLACEMENT_OWNER, keys.PLACEMENT_WEIGHT):
                pipe.hgetall(key)
            load, owner, weight = pipe.execute()
        loads = {name: int(load.get(name.encode(), 0)) for name in live}
        owners = {_text(s): _text(i) for s, i in owner.items()}
        weights = {_text(s): int(w) for s, w in weight.items()}
        plan = pulls(live, loads, owners, weights, self.epsilon)
        return [move for move in plan if self._move(
            keys=_MOVE_KEYS, args=[move.session, move.source or "", move.target])]

    def moved(self) -> dict[str, int]:
        """Sessions moved so far, by why."""
        return {_text(k): int(v) for k, v in self._client.hgetall(keys.PLACEMENT_MOVED).items()}

    def _call(self, session: str, weight: int, names: Sequence[str],
              avoid: str = "", prefer: str | None = None) -> tuple[str, int | bytes]:
        name, outcome = self._place(keys=_PLACE_KEYS, args=self._args(
            session, weight, names, avoid, prefer))
        return name.decode(), outcome

    def _args(self, session: str, weight: int, names: Sequence[str], avoid: str = "",
              prefer: str | None = None) -> list[str | int]:
        """place.lua's arguments."""
        return [session, weight, repr(self.epsilon), repr(self.ttl_s), avoid, prefer or "",
                *ranked(session, names)]

    def _registered(self, fresh: bool = False) -> list[str]:
        """The registered instances' names, read again after NAMES_TTL_S (an instance
        that joins gets sessions from each game server within that long)."""
        now = time.monotonic()
        if fresh or now - self._names_at >= NAMES_TTL_S:
            self._names = [_text(n) for n in self._client.hkeys(keys.INSTANCES_SEEN)]
            self._names_at = now
        return self._names

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""
        return self.owners([session])[0]

    def owners(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance of each of `sessions`, in order, in one round trip."""
        if not sessions:
            return []
        return [None if o is None else _text(o)
                for o in self._client.hmget(keys.PLACEMENT_OWNER, list(sessions))]

    def epoch(self) -> int:
        """How many times a placed session has moved."""
        return int(self._client.get(keys.PLACEMENT_EPOCH) or 0)

    def generation(self) -> str:
        """The token the first instance to join set ("" before any did)."""
        value = self._client.get(keys.INSTANCES_GENERATION)
        return _text(value) if value is not None else ""

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance."""
        self._release(keys=[keys.PLACEMENT_OWNER, keys.PLACEMENT_WEIGHT, keys.PLACEMENT_LOAD,
                            keys.PLACEMENT_COUNT, keys.PLACEMENT_FROM], args=[session])

    def came_from(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance each of `sessions` last moved from, while its state is still to be
        taken from there (None otherwise), in one round trip."""
        if not sessions:
            return []
        return [None if o is None else _text(o)
                for o in self._client.hmget(keys.PLACEMENT_FROM, list(sessions))]

    def arrived(self, sessions: Sequence[str], source: str) -> None:
        """`sessions`' state was taken from `source`'s hot store: forget where they came
        from (unless they moved again since, from another instance)."""
        if sessions:
            self._arrived(keys=[keys.PLACEMENT_FROM], args=[source, *sessions])

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""
        with self._client.pipeline(transaction=False) as pipe:
            pipe.time()
            for key in (keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY, keys.PLACEMENT_COUNT,
                        keys.PLACEMENT_LOAD):
                pipe.hgetall(key)
            pipe.smembers(keys.INSTANCES_DRAINING)
            pipe.hgetall(keys.INSTANCES_REFUSED)
            pipe.hgetall(keys.INSTANCES_HOT)
            clock, seen, capacity, count, load, draining, refused, hot = pipe.execute()
        now = clock[0] + clock[1] / 1e6
        return [InstanceState(name.decode(), int(capacity.get(name, 0)),
                              int(count.get(name, 0)), int(load.get(name, 0)) / 1000,
                              now - float(at), now - float(at) <= self.ttl_s,
                              name in draining, int(refused.get(name, 0)),
                              _text(hot.get(name, b"")))
                for name, at in sorted(seen.items())]


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
