"""The server side's processes, found from the services themselves: each Redis says its
own process id (``INFO server``), PostgreSQL's postmaster is the parent of this
connection's backend.  Their CPU is measured from these process trees, never by matching
process names across the machine; a service on another machine has no local process and
is reported as unmeasured."""

from __future__ import annotations

from collections.abc import Callable, Mapping

import psutil
import redis
from sqlalchemy import text

from app.db import make_engine

REDIS_TIMEOUT_S = 1.0


def redis_pid(url: str) -> int | None:
    """The process id of the Redis at `url` when it runs on this machine, else None."""
    client = redis.Redis.from_url(url, socket_timeout=REDIS_TIMEOUT_S,
                                  socket_connect_timeout=REDIS_TIMEOUT_S)
    try:
        pid = int(client.info("server")["process_id"])
    except (redis.RedisError, KeyError, ValueError, OSError):
        return None
    finally:
        client.close()
    return pid if _local(pid, "redis") else None


def postgres_pid(url: str) -> int | None:
    """The postmaster's process id of the PostgreSQL at `url` when it runs on this
    machine; None for SQLite (no server) or a remote server."""
    if not url.startswith("postgresql"):
        return None
    engine = make_engine(url)
    try:
        with engine.connect() as conn:  # the backend's parent, read while it still runs
            backend = int(conn.execute(text("SELECT pg_backend_pid()")).scalar_one())
            postmaster = _parent(backend)
    finally:
        engine.dispose()
    return postmaster if postmaster is not None and _local(postmaster, "postgres") else None


def _parent(pid: int) -> int | None:
    try:
        return psutil.Process(pid).ppid()
    except psutil.Error:  # not on this machine
        return None


def _local(pid: int, name: str) -> bool:
    try:
        return name in psutil.Process(pid).name()
    except psutil.Error:
        return False


class ServerProcesses:
    """The root process of each server-side service, by kind (``broker_redis``,
    ``hot_redis``, each instance's own ``hot_redis_<instance>``, ``postgres``); Redis is
    asked again on every call, so a restarted server is followed."""

    def __init__(self, broker_url: str, hot_url: str | None, database_url: str,
                 find_redis: Callable[[str], int | None] = redis_pid, *,
                 instance_hot: Mapping[str, str] | None = None) -> None:
        self.urls = {"broker_redis": broker_url}
        if hot_url is not None and hot_url != broker_url:
            self.urls["hot_redis"] = hot_url
        for instance, url in (instance_hot or {}).items():  # instances' own, "hot_redis_i0"
            self.urls[f"hot_redis_{instance}"] = url
        self.find_redis = find_redis
        self.postgres = postgres_pid(database_url)
        self.last: dict[str, int | None] = {}

    def current(self) -> dict[str, int | None]:
        """Kind -> root pid (None: not on this machine, or not answering and never seen)."""
        for kind, url in self.urls.items():
            pid = self.find_redis(url)
            self.last[kind] = pid if pid is not None else self.last.get(kind)
        if self.postgres is not None:
            self.last["postgres"] = self.postgres
        return dict(self.last)
