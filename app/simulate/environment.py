"""Where a simulation runs: the broker and database it uses or starts, and how its data is
cleared between runs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import psutil
import redis
from celery import Celery
from kombu.exceptions import ChannelError

from app.errors import GameschedError
from app.migrate import upgrade
from app.roles import Queue
from app.settings import ENV_PREFIX, Settings
from app.simulate.redisserver import PrivateRedis
from celeryconfig import NAIVE_QUEUE

QUEUE_NAMES = (*(q.value for q in Queue), NAIVE_QUEUE)
KOMBU_KEYS = ("_kombu.binding.*", "unacked", "unacked_index", "unacked_mutex")
PRIORITY_SEPARATORS = (":", "\x06\x16")  # ours, and kombu's default (the baseline's)


@dataclass
class Services:
    """The broker and database of a simulation, and the private Redis if we started one."""

    broker_url: str
    database_url: str
    private_redis: PrivateRedis | None

    @property
    def broker_label(self) -> str:
        """The broker, for the report (no password)."""
        kind = "private redis-server" if self.private_redis else "redis"
        return f"{kind} {redact(self.broker_url)}"

    @property
    def database_label(self) -> str:
        """The database, for the report (no password)."""
        return redact(self.database_url)

    @property
    def pids(self) -> tuple[int, ...]:
        """Service processes we own."""
        return (self.private_redis.pid,) if self.private_redis else ()


def redact(url: str) -> str:
    """`url` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username or ''}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def configured(name: str) -> bool:
    """True when the setting `name` comes from the environment."""
    return f"{ENV_PREFIX}{name.upper()}" in os.environ


@contextlib.contextmanager
def services(settings: Settings) -> Iterator[Services]:
    """Use the configured Redis broker or start a private one; use the configured database
    or a SQLite file in a temporary folder; migrate it."""
    with contextlib.ExitStack() as stack:
        private: PrivateRedis | None = None
        if settings.uses_redis:
            broker = settings.broker_url
        elif configured("broker_url"):
            raise GameschedError(
                f"the simulator needs a Redis broker (worker subprocesses cannot share "
                f"{settings.broker_url}); set GAMESCHED_BROKER_URL=redis://HOST:PORT/DB")
        else:
            private = stack.enter_context(PrivateRedis())
            broker = private.url
        if configured("database_url"):
            database = settings.database_url
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gamesched-sim-"))
            database = f"sqlite:///{os.path.join(folder, 'gamesched.db')}"
        upgrade(database)
        yield Services(broker_url=broker, database_url=database, private_redis=private)


def clear_broker(url: str, include_state: bool = True) -> int:
    """Delete gamesched's queues (every priority step), kombu's bookkeeping and, with
    `include_state`, gamesched's hot state and records.  Returns keys deleted."""
    client = redis.Redis.from_url(url)
    patterns = [*KOMBU_KEYS, *(gamesched_queue_keys())]
    if include_state:
        patterns.append("gamesched:*")
    try:
        deleted = 0
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                deleted += int(client.delete(*keys))
        return deleted
    finally:
        client.close()


def gamesched_queue_keys() -> list[str]:
    """Match patterns for the Redis lists of every gamesched queue and priority step."""
    patterns = []
    for name in QUEUE_NAMES:
        patterns.append(_escape(name))
        patterns += [_escape(name + sep) + "[0-9]" for sep in PRIORITY_SEPARATORS]
    return patterns


def _escape(text: str) -> str:
    return "".join(f"\\{c}" if c in "*?[]\\" else c for c in text)


def depth_reader(app: Celery, names: Sequence[str]) -> dict[str, int]:
    """Messages waiting in each queue of `names` (every priority step summed)."""
    depths: dict[str, int] = {}
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        for name in names:
            try:
                depths[name] = int(channel.queue_declare(name, passive=True)[1])
            except ChannelError:  # no message was ever queued there: empty
                depths[name] = 0
    return depths


def machine() -> dict[str, float]:
    """Cores and memory of this machine."""
    return {"cores": psutil.cpu_count() or 1,
            "memory_mb": round(psutil.virtual_memory().total / (1024 * 1024))}
