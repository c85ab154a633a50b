"""The instance registry: which server instances are alive, what they take, and which
instance each session runs on.

An instance's player worker says it is alive every `GAMESCHED_INSTANCE_HEARTBEAT_S`
(`heartbeat`, with its capacity in sessions); one silent for `GAMESCHED_INSTANCE_TTL_S` gets
no new session.  A game server's client places each session it opens (`place`): the
session goes to the first live instance of its rendezvous ranking with room under the load
bound and below its capacity (`app.instances.placement`), and stays there; its weight is
kept so that `release` takes it off when it closes.  Every live instance at capacity:
`ServerFull`, with a time to retry after.  `drain` moves every session off an instance,
each where `place` would put it without that instance, and raises the placement `epoch`
by which game servers learn that their sessions moved.

`RedisRegistry` (`app.instances.shared`) keeps it on the broker's Redis, shared by every
instance and every game server; `MemoryRegistry` (`app.instances.memory`) in this process,
for the embedded default and fast tests.  Both make the same choice in the same
arithmetic, on loads kept in milli-weights.
"""

from __future__ import annotations

from app.instances.base import RETRY_AFTER_S, InstanceState, Registry, choose, milli
from app.instances.memory import MemoryRegistry
from app.instances.shared import RedisRegistry
from app.redisconn import connect

__all__ = ["MEMORY_REGISTRY", "RETRY_AFTER_S", "InstanceState", "MemoryRegistry",
           "RedisRegistry", "Registry", "choose", "milli", "registry_for"]

MEMORY_REGISTRY = MemoryRegistry()


def registry_for(url: str, ttl_s: float) -> Registry:
    """The registry shared by every process using the broker `url` (its Redis; anything
    else is the embedded default's memory)."""
    if url.startswith(("redis://", "rediss://")):
        return RedisRegistry(connect(url), ttl_s)
    MEMORY_REGISTRY.ttl_s = ttl_s
    return MEMORY_REGISTRY
