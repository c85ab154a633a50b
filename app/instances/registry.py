"""The instance registry: which server instances are alive, what they take, and which
instance each session runs on.

An instance's player worker says it is alive every `GAMESCHED_INSTANCE_HEARTBEAT_S`
(`heartbeat`, with its capacity in sessions); one silent for `GAMESCHED_INSTANCE_TTL_S` gets
no new session.  A game server's client places each session it opens (`place`): the
session goes to the first live instance of its rendezvous ranking with room under the load
bound and below its capacity (`app.instances.placement`), and stays there; its weight is
kept so that `release` takes it off when it closes.  Every live instance at capacity:
`ServerFull`, with a time to retry after.

`RedisRegistry` keeps it on the broker's Redis, shared by every instance and every game
server (placing is one Lua script, `place.lua`, so two game servers never both take the
last room); `MemoryRegistry` in this process, for the embedded default and fast tests.
Both make the same choice in the same arithmetic, on loads kept in milli-weights.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Protocol

import redis

from app.errors import ServerFull
from app.instances.placement import EPSILON, bound_of, ranked, roomy
from app.protocol import keys

RETRY_AFTER_S = 5.0  # what a refused session is told to wait: sessions close every second
NAMES_TTL_S = 1.0  # a client reads the registered instances' names at most this often


def milli(weight: float) -> int:
    """A session's weight in the registry's unit: thousandths, at least one."""
    return max(1, round(weight * 1000))


@dataclass(frozen=True)
class InstanceState:
    """One registered instance as the registry sees it."""

    name: str
    capacity: int
    sessions: int
    load: float  # the weights of its sessions
    silent_s: float  # since its last heartbeat
    live: bool


class Registry(Protocol):
    """Where the instances and the sessions' places are kept."""

    def heartbeat(self, instance: str, capacity: int) -> None:
        """`instance` is alive and takes up to `capacity` sessions."""

    def leave(self, instance: str) -> None:
        """`instance` stopped: it gets no new session (its sessions stay placed)."""

    def place(self, session: str, weight: float) -> str | None:
        """The instance `session` runs on: where it is if placed (its weight updated), else
        one chosen now.  None when no instance is live (the fleet's shared queue serves
        it); ServerFull when every live one is at capacity."""

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance.  Idempotent."""

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""


def choose(ranking: Sequence[str], loads: Mapping[str, int], room: Callable[[str], bool],
           weight: int, epsilon: float = EPSILON) -> str | None:
    """`place.lua`'s choice among the live instances `ranking` (in the session's order):
    the bound counts them all, the choice only those with `room` below their capacity;
    None when none has."""
    open_ = [name for name in ranking if room(name)]
    if not open_:
        return None
    bound = bound_of(sum(loads[name] for name in ranking), len(ranking), epsilon, weight)
    return roomy(open_, {name: float(loads[name]) for name in open_}, weight, bound)


class MemoryRegistry:
    """The registry in this process."""

    def __init__(self, ttl_s: float = 3.0, epsilon: float = EPSILON,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.epsilon, self._clock = ttl_s, epsilon, clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._capacity: dict[str, int] = {}
        self._owner: dict[str, str] = {}
        self._weight: dict[str, int] = {}
        self._load: dict[str, int] = {}
        self._count: dict[str, int] = {}

    def heartbeat(self, instance: str, capacity: int) -> None:
        """`instance` is alive and takes up to `capacity` sessions."""
        with self._lock:
            self._seen[instance], self._capacity[instance] = self._clock(), capacity

    def leave(self, instance: str) -> None:
        """`instance` stopped: it gets no new session (its sessions stay placed)."""
        with self._lock:
            self._seen.pop(instance, None)
            self._capacity.pop(instance, None)

    def place(self, session: str, weight: float) -> str | None:
        """See `Registry.place`."""
        w = milli(weight)
        with self._lock:
            owner = self._owner.get(session)
            if owner is not None:
                self._load[owner] += w - self._weight[session]
                self._weight[session] = w
                return owner
            now = self._clock()
            live = [i for i in ranked(session, self._seen) if now - self._seen[i] <= self.ttl_s]
            if not live:
                return None
            loads = {name: self._load.get(name, 0) for name in live}
            pick = choose(live, loads, self._room, w, self.epsilon)
            if pick is None:
                raise ServerFull(len(live), RETRY_AFTER_S)
            self._owner[session], self._weight[session] = pick, w
            self._load[pick] = self._load.get(pick, 0) + w
            self._count[pick] = self._count.get(pick, 0) + 1
            return pick

    def _room(self, instance: str) -> bool:
        return self._count.get(instance, 0) < self._capacity.get(instance, 0)

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""
        with self._lock:
            return self._owner.get(session)

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance."""
        with self._lock:
            owner = self._owner.pop(session, None)
            if owner is not None:
                self._load[owner] -= self._weight.pop(session)
                self._count[owner] -= 1

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""
        now = self._clock()
        with self._lock:
            return [InstanceState(name, self._capacity[name], self._count.get(name, 0),
                                  self._load.get(name, 0) / 1000, now - seen,
                                  now - seen <= self.ttl_s)
                    for name, seen in sorted(self._seen.items())]


_PLACE = resources.files("app.instances").joinpath("place.lua").read_text(encoding="utf-8")
_HEARTBEAT = """
local clock = redis.call('TIME')
redis.call('HSET', KEYS[1], ARGV[1], clock[1] .. '.' .. string.format('%06d', clock[2]))
redis.call('HSET', KEYS[2], ARGV[1], ARGV[2])
"""
_RELEASE = """
local owner = redis.call('HGET', KEYS[1], ARGV[1])
if not owner then return 0 end
local w = tonumber(redis.call('HGET', KEYS[2], ARGV[1]) or '0')
redis.call('HINCRBY', KEYS[3], owner, -w)
redis.call('HINCRBY', KEYS[4], owner, -1)
redis.call('HDEL', KEYS[1], ARGV[1])
redis.call('HDEL', KEYS[2], ARGV[1])
return 1
"""
_PLACE_KEYS = [keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY, keys.PLACEMENT_OWNER,
               keys.PLACEMENT_WEIGHT, keys.PLACEMENT_LOAD, keys.PLACEMENT_COUNT]


class RedisRegistry:
    """The registry on a Redis every instance and game server shares (see the module)."""

    def __init__(self, client: redis.Redis, ttl_s: float = 3.0,
                 epsilon: float = EPSILON) -> None:
        self._client, self.ttl_s, self.epsilon = client, ttl_s, epsilon
        self._place = client.register_script(_PLACE)
        self._heartbeat = client.register_script(_HEARTBEAT)
        self._release = client.register_script(_RELEASE)
        self._names: list[str] = []
        self._names_at = float("-inf")

    def heartbeat(self, instance: str, capacity: int) -> None:
        """`instance` is alive (by Redis's clock) and takes up to `capacity` sessions."""
        self._heartbeat(keys=[keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY],
                        args=[instance, capacity])

    def leave(self, instance: str) -> None:
        """`instance` stopped: it gets no new session (its sessions stay placed)."""
        with self._client.pipeline(transaction=True) as pipe:
            pipe.hdel(keys.INSTANCES_SEEN, instance)
            pipe.hdel(keys.INSTANCES_CAPACITY, instance)
            pipe.execute()

    def place(self, session: str, weight: float) -> str | None:
        """See `Registry.place`: one script call."""
        ranking = ranked(session, self._registered())
        name, placed = self._place(keys=_PLACE_KEYS, args=[
            session, milli(weight), repr(self.epsilon), repr(self.ttl_s), *ranking])
        if placed == b"full":
            raise ServerFull(sum(state.live for state in self.instances()), RETRY_AFTER_S)
        return name.decode() if name else None

    def _registered(self) -> list[str]:
        """The registered instances' names, read again after NAMES_TTL_S (an instance
        that joins gets sessions from each game server within that long)."""
        now = time.monotonic()
        if now - self._names_at >= NAMES_TTL_S:
            names = self._client.hkeys(keys.INSTANCES_SEEN)
            self._names = [n.decode() if isinstance(n, bytes) else n for n in names]
            self._names_at = now
        return self._names

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""
        name = self._client.hget(keys.PLACEMENT_OWNER, session)
        return name.decode() if isinstance(name, bytes) else None

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance."""
        self._release(keys=[keys.PLACEMENT_OWNER, keys.PLACEMENT_WEIGHT, keys.PLACEMENT_LOAD,
                            keys.PLACEMENT_COUNT], args=[session])

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""
        with self._client.pipeline(transaction=False) as pipe:
            pipe.time()
            for key in (keys.INSTANCES_SEEN, keys.INSTANCES_CAPACITY, keys.PLACEMENT_COUNT,
                        keys.PLACEMENT_LOAD):
                pipe.hgetall(key)
            clock, seen, capacity, count, load = pipe.execute()
        now = clock[0] + clock[1] / 1e6
        return [InstanceState(name.decode(), int(capacity.get(name, 0)),
                              int(count.get(name, 0)), int(load.get(name, 0)) / 1000,
                              now - float(at), now - float(at) <= self.ttl_s)
                for name, at in sorted(seen.items())]


MEMORY_REGISTRY = MemoryRegistry()


def registry_for(url: str, ttl_s: float) -> Registry:
    """The registry shared by every process using the broker `url` (its Redis; anything
    else is the embedded default's memory)."""
    if url.startswith(("redis://", "rediss://")):
        return RedisRegistry(redis.Redis.from_url(url), ttl_s)
    MEMORY_REGISTRY.ttl_s = ttl_s
    return MEMORY_REGISTRY
