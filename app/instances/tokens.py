"""Fencing tokens kept in each instance's hot store as well as in the registry.

The state script checks a writer's token on the Redis it writes session state to
(`app.players.statestore.Fence`), which is the instance's own hot store
(`GAMESCHED_HOT_URL`), not necessarily the registry's Redis.  So the registry copies each
instance's token into the ``gamesched:instances:token`` hash of that store when the
instance joins and when it is fenced, and the instance copies it there itself when a
heartbeat tells it that it was fenced.  A copy only ever raises the stored token (tokens
only grow), so copies arriving out of order, or twice, leave the newest.
"""

from __future__ import annotations

import logging
import threading

import redis

from app.protocol import keys

log = logging.getLogger(__name__)

TIMEOUT_S = 1.0  # a hot store that does not answer within this is unreachable

_RAISE = """
local current = tonumber(redis.call('HGET', KEYS[1], ARGV[1]) or '0')
if current >= tonumber(ARGV[2]) then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return 1
"""


class HotTokens:
    """Writes instances' tokens into their hot stores, one client per store URL, each with
    a short timeout and no retry (an unreachable store must not hold a takeover up)."""

    def __init__(self, timeout_s: float = TIMEOUT_S) -> None:
        self.timeout_s = timeout_s
        self._lock = threading.Lock()
        self._clients: dict[str, redis.Redis] = {}

    def copy(self, url: str, instance: str, token: int) -> bool:
        """Raise `instance`'s token in the hot store at `url` to `token` (a store holding a
        newer one keeps it).  True when the store has it now; False, logged, when it
        cannot be reached (or `url` is not a Redis URL)."""
        if not url.startswith(("redis://", "rediss://")):
            return False
        try:
            client = self._client(url)
            client.eval(_RAISE, 1, keys.INSTANCES_TOKEN, instance, token)
        except (redis.RedisError, OSError) as exc:
            log.warning("instance %s: token %d not written to its hot store (%s)",
                        instance, token, exc)
            return False
        return True

    def _client(self, url: str) -> redis.Redis:
        with self._lock:
            client = self._clients.get(url)
            if client is None:
                client = self._clients[url] = redis.Redis.from_url(
                    url, socket_timeout=self.timeout_s,
                    socket_connect_timeout=self.timeout_s)
            return client
