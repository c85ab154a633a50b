"""How gamesched talks to its broker: kombu's, with two changes for outages and one for
speed.

**Reconnecting.**  `Connection` (Celery's ``amqp_cls`` is `AMQP`, which uses it) tries again
0.1 s after it lost the broker, then 0.3, 0.5 ... and at most every 2 s; kombu's own waits
2 s, then 4, 6 ... up to 30.  kombu's first wait alone outlasts a short Redis restart; the
shorter waits bring every worker and the sweeper back soon after the broker
(docs/measurements.md).

**Closed channels.**  kombu's Redis transport, with closed channels failing as connection
errors.

When Redis goes away while a worker holds an unacknowledged message and waits on BRPOP for
the next, Celery 5.7 collects the broken connection and then closes it.  Collecting releases
the transport's client but leaves the channel open (its pending BRPOP could not be read);
the close then drops the channel's connection pools and tries to put the unacknowledged
messages back.  From then on, anything the channel does (that restore, or the late
acknowledgement of the task still running) rebuilds a pool from the released client and
raises ``AttributeError``.  That is not a connection error, so the worker stops with
"Unrecoverable error" instead of reconnecting: every worker holding a message at that moment
is gone until something restarts it.

Here such a channel raises ``redis.ConnectionError``, which kombu and Celery already treat
as a lost connection: the close ends, the late acknowledgement is logged and dropped, and the
worker reconnects.  The messages the channel could not put back stay unacknowledged in Redis,
which returns them to their queue after the visibility timeout (if Redis kept its data);
a ledger intent is sent again sooner by the sweeper.

**Shared clients.**  Each channel keeps one Redis client per connection pool instead of
building one per publish and per acknowledgement.

**Depth on publish.**  A publish keeps what Redis answers to its LPUSH, the length of the
list it pushed to: how many messages were waiting in that queue (at that priority step)
with it.  `published_depth()` reads it in the thread that published, for free.

Celery uses this transport for ``redis://`` and ``rediss://`` brokers (``broker_transport``
in ``celeryconfig``).
"""

from __future__ import annotations

import threading
from typing import Any

import redis
from celery.app.amqp import AMQP as CeleryAMQP
from kombu.connection import Connection as KombuConnection
from kombu.transport import redis as kombu_redis
from kombu.utils.json import dumps

NAME = "app.tasking.transport:Transport"
AMQP_NAME = "app.tasking.transport:AMQP"
RECONNECT = {"interval_start": 0.1, "interval_step": 0.2, "interval_max": 2.0}


class Connection(KombuConnection):
    """kombu's connection, trying again sooner after it lost the broker (`RECONNECT`)."""

    def ensure_connection(self, *args: Any, **kwargs: Any) -> Connection:
        for name, seconds in RECONNECT.items():
            kwargs.setdefault(name, seconds)
        return super().ensure_connection(*args, **kwargs)  # type: ignore[no-untyped-call,no-any-return]


class AMQP(CeleryAMQP):  # type: ignore[misc]
    """Celery's AMQP helper with `Connection`."""

    Connection = Connection
    BrokerConnection = Connection


_published = threading.local()


def published_depth() -> int | None:
    """The length of the queue list this thread's last publish pushed to, its message
    included, and forget it; None when no publish on this transport came since the last
    call (other transports say nothing)."""
    depth: int | None = getattr(_published, "depth", None)
    _published.depth = None
    return depth


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; once its transport let go of the connection, it fails as a
    lost connection does.  It also keeps one Redis client per connection pool, where kombu
    builds a new one for every publish and every acknowledgement, a cost paid on every
    message (docs/measurements.md): a client only borrows pooled connections per command and
    is safe to share between threads."""

    _shared_client: redis.Redis | None = None

    def _create_client(self, asynchronous: bool = False) -> Any:
        if asynchronous:
            return super()._create_client(asynchronous=True)  # type: ignore[no-untyped-call]
        pool = self.pool  # a closed channel raises here, as `_connparams` says
        client = self._shared_client
        if client is None or client.connection_pool is not pool:
            client = super()._create_client()  # type: ignore[no-untyped-call]
            self._shared_client = client
        return client

    def _put(self, queue: str, message: Any, **kwargs: Any) -> None:
        """kombu's publish, keeping the list's length that LPUSH answers (`published_depth`);
        batched and expiring publishes go kombu's way and keep nothing."""
        if kwargs.get("_publish_batch") is not None or (self._expires and queue in self._expires):
            _published.depth = None
            super()._put(queue, message, **kwargs)  # type: ignore[no-untyped-call]
            return
        step = self._get_message_priority(message, reverse=False)  # type: ignore[no-untyped-call]
        key = self._q_for_pri(queue, step)  # type: ignore[no-untyped-call]
        with self.conn_or_acquire() as client:
            _published.depth = int(client.lpush(key, dumps(message)))  # type: ignore[no-untyped-call]

    def _connparams(self, asynchronous: bool = False) -> dict[str, Any]:
        if self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        params: dict[str, Any] = super()._connparams(  # type: ignore[no-untyped-call]
            asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel`."""

    Channel = Channel
