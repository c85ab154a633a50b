"""Where a simulation runs: the broker and database it uses or starts, and how its data is
cleared between runs."""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import psutil
import redis
from celery import Celery
from kombu.exceptions import ChannelError

from app.db.migrate import upgrade
from app.errors import GameschedError
from app.protocol import keys
from app.protocol.queues import NAIVE_QUEUE, Queue
from app.settings import ENV_PREFIX, Settings, redact
from app.simulate.redisserver import PrivateRedis

QUEUE_NAMES = (*(q.value for q in Queue), NAIVE_QUEUE)
KOMBU_KEYS = ("_kombu.binding.*", "unacked", "unacked_index", "unacked_mutex")
PRIORITY_SEPARATORS = (":", "\x06\x16")  # an older fleet's, and kombu's (the fleet's now)


@dataclass
class Services:
    """The broker, hot-state Redis and database of a simulation, and the private Redis
    servers we started (`hot_url` None: hot state lives on the broker).  With server
    instances and private servers, each instance keeps its sessions' state on a
    redis-server of its own (`instance_hot`), as instances apart do."""

    broker_url: str
    database_url: str
    private_redis: PrivateRedis | None
    hot_url: str | None = None
    private_hot: PrivateRedis | None = None
    instance_hot: dict[str, PrivateRedis] = field(default_factory=dict)

    @property
    def instance_hot_urls(self) -> dict[str, str]:
        """Instance -> the URL of its own hot store (none: the instances share `hot_url`)."""
        return {name: server.url for name, server in self.instance_hot.items()}

    @property
    def hot_urls(self) -> list[str]:
        """Every store session state may live on: the shared one (or the broker), then each
        instance's own."""
        return [self.hot_url or self.broker_url, *self.instance_hot_urls.values()]

    @property
    def hot_servers(self) -> list[PrivateRedis]:
        """The private redis-servers of hot state: the shared one, then each instance's."""
        shared = [self.private_hot] if self.private_hot is not None else []
        return [*shared, *self.instance_hot.values()]

    @property
    def broker_label(self) -> str:
        """The broker, for the report (no password)."""
        kind = "private redis-server" if self.private_redis else "redis"
        return f"{kind} {redact(self.broker_url)}"

    @property
    def hot_label(self) -> str:
        """Where hot state lives, for the report (no password)."""
        if self.hot_url is None:
            return "the broker"
        kind = "private redis-server" if self.private_hot else "redis"
        apart = (f" (each of the {len(self.instance_hot)} instances' sessions on a "
                 "private redis-server of its own)" if self.instance_hot else "")
        return f"{kind} {redact(self.hot_url)}{apart}"

    @property
    def database_label(self) -> str:
        """The database, for the report (no password)."""
        return redact(self.database_url)

    @property
    def pids(self) -> tuple[int, ...]:
        """Service processes we own."""
        private = [self.private_redis] if self.private_redis is not None else []
        return tuple(server.pid for server in (*private, *self.hot_servers))


def configured(name: str) -> bool:
    """True when the setting `name` comes from the environment."""
    return f"{ENV_PREFIX}{name.upper()}" in os.environ


@contextlib.contextmanager
def services(settings: Settings, instances: Sequence[str] = ()) -> Iterator[Services]:
    """Use the configured Redis broker or start a private one; use the configured database
    or a SQLite file in a temporary folder; migrate it.

    Hot state goes to the configured `hot_url`; else, beside a private broker, to a second
    private redis-server (as a fleet should run it: the state scripts of player batches
    then never hold up the broker's deliveries), and beside a configured broker, to it.
    Beside a private broker and no configured `hot_url`, each of `instances` gets a
    private redis-server of its own for its sessions' state."""
    with contextlib.ExitStack() as stack:
        private: PrivateRedis | None = None
        private_hot: PrivateRedis | None = None
        apart: dict[str, PrivateRedis] = {}
        if settings.uses_redis:
            broker = settings.broker_url
        elif configured("broker_url"):
            raise GameschedError(
                f"the simulator needs a Redis broker (worker subprocesses cannot share "
                f"{settings.broker_url}); set GAMESCHED_BROKER_URL=redis://HOST:PORT/DB")
        else:
            private = stack.enter_context(PrivateRedis())
            broker = private.url
        hot = settings.hot_url
        if hot is None and private is not None:
            private_hot = stack.enter_context(PrivateRedis())
            hot = private_hot.url
            apart = {name: stack.enter_context(PrivateRedis()) for name in instances}
        if configured("database_url"):
            database = settings.database_url
        else:
            folder = stack.enter_context(tempfile.TemporaryDirectory(prefix="gamesched-sim-"))
            database = f"sqlite:///{os.path.join(folder, 'gamesched.db')}"
        upgrade(database)
        yield Services(broker_url=broker, database_url=database, private_redis=private,
                       hot_url=hot, private_hot=private_hot, instance_hot=apart)


def clear_broker(url: str, include_state: bool = True) -> int:
    """Delete gamesched's queues (every priority step), kombu's bookkeeping and, with
    `include_state`, gamesched's hot state and records.  Returns keys deleted."""
    patterns = [*KOMBU_KEYS, *(gamesched_queue_keys())]
    if include_state:
        patterns.append(keys.ALL)
    return _delete(url, patterns)


def _delete(url: str, patterns: Sequence[str]) -> int:
    client = redis.Redis.from_url(url)
    try:
        deleted = 0
        for pattern in patterns:
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                deleted += int(client.delete(*keys))
        return deleted
    finally:
        client.close()


def clear_state(url: str) -> int:
    """Delete gamesched's hot state and records on the Redis at `url`; returns keys
    deleted."""
    return _delete(url, [keys.ALL])


def gamesched_queue_keys() -> list[str]:
    """Match patterns for the Redis lists of every gamesched queue and priority step."""
    patterns = []
    for name in QUEUE_NAMES:
        patterns.append(_escape(name))
        patterns += [_escape(name + sep) + "[0-9]" for sep in PRIORITY_SEPARATORS]
    return [*patterns, _escape(f"{Queue.PHYSICS.value}.") + "*"]  # the units' queues, all steps


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
