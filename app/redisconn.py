"""Redis clients that ride out a restart of their server.

A pooled connection to a Redis that was restarted fails once when it is next used
(redis-py: "Connection closed by server"), and a command sent while the server starts
again fails to connect.  Every client gamesched makes retries such a command, after a short backoff,
on a fresh connection: a game server's or a worker's next call after the restart goes
through instead of raising.  A retried write may so run twice; everything sent this way
is idempotent (the state script keeps each field's newest value, placements and
heartbeats are set, not added), except counters, which may count a write twice.
"""

from __future__ import annotations

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

RETRIES = 3  # after the first try: about 10, 20 and 40 ms later
BACKOFF = ExponentialBackoff(cap=0.2, base=0.01)


def connect(url: str, timeout_s: float | None = None) -> redis.Redis:
    """A client of the Redis at `url` that retries a command failing on a lost connection
    or a timeout (`RETRIES` times, backing off); with `timeout_s`, connecting and each
    reply time out after that long (without, they wait as long as the OS does)."""
    return redis.Redis.from_url(
        url, retry=Retry(BACKOFF, RETRIES),
        retry_on_error=[redis.ConnectionError, redis.TimeoutError],
        socket_timeout=timeout_s, socket_connect_timeout=timeout_s)
