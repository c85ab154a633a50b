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

A channel closed with its connection (kombu closes it when it collects a connection that
failed) raised the same ``AttributeError`` on its next publish: a game server's send
just after a full restart of the fleet failed that way instead of reconnecting.

Here such a channel raises ``redis.ConnectionError``, which kombu and Celery already treat
as a lost connection: a publish reconnects and sends again; in a worker, the close ends,
the late acknowledgement is logged and dropped, and the worker reconnects.  The messages
the channel could not put back stay unacknowledged in Redis, which returns them to their
queue after the visibility timeout (if Redis kept its data); a ledger intent is sent again
sooner by the sweeper.

**Shared clients.**  Each channel keeps one Redis client per connection pool instead of
building one per publish and per acknowledgement.

**Unacknowledged messages recorded once held.**  kombu writes every message it delivers to
Redis's unacknowledged set (a sorted-set entry and the whole message in a hash) and deletes
both when it is acknowledged: two Redis transactions per task, whatever the task.  Most of
gamesched's tasks are done within milliseconds, so here a delivered message is kept in the
worker's memory and written to the unacknowledged set only once it has been held
`RECORD_AFTER_S` (from the consumer's loop, which turns at least once a second), or
before the worker gives its messages back (shutdown, reject, recover).  What a worker
killed outright had held for less than that and not finished is not redelivered after
Redis's visibility timeout: the updates of such a state batch are not applied, a ledger
intent is sent again by the sweeper, and a physics frame or AI tick that late would be
stale (docs/operations.md#broker-outages).  Measured, a player worker's CPU per batch
task fell by about a fifth (docs/measurements.md).

**Depth on publish.**  A publish keeps what Redis answers to its LPUSH, the length of the
list it pushed to: how many messages were waiting in that queue (at that priority step)
with it.  `published_depth()` reads it in the thread that published, for free.

Celery uses this transport for ``redis://`` and ``rediss://`` brokers (``broker_transport``
in ``celeryconfig``).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from typing import Any

import redis
from celery.app.amqp import AMQP as CeleryAMQP
from kombu.connection import Connection as KombuConnection
from kombu.transport import redis as kombu_redis
from kombu.transport import virtual
from kombu.utils.json import dumps

NAME = "app.tasking.transport:Transport"
AMQP_NAME = "app.tasking.transport:AMQP"
RECONNECT = {"interval_start": 0.1, "interval_step": 0.2, "interval_max": 2.0}
RECORD_AFTER_S = 0.5  # a delivered message held this long is recorded as unacknowledged


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


class QoS(kombu_redis.QoS):
    """kombu's Redis acknowledgement emulation, recording a delivered message in Redis's
    unacknowledged set only once it has been held `RECORD_AFTER_S`; one acknowledged
    before then costs Redis nothing.  Thread-safe (pool threads may acknowledge)."""

    record_after_s = RECORD_AFTER_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[no-untyped-call]
        self._held: OrderedDict[Any, tuple[float, Any]] = OrderedDict()  # by delivery
        self._held_lock = threading.Lock()

    def append(self, message: Any, delivery_tag: Any) -> None:
        """Track `message` in memory; record those held long enough by now."""
        virtual.QoS.append(self, message, delivery_tag)  # type: ignore[no-untyped-call]
        with self._held_lock:
            self._held[delivery_tag] = (time.time(), message)
        self.record_held()

    def can_consume(self) -> bool:
        """kombu's prefetch check, which its consumer loop makes on every turn: the
        moment to record the messages held long enough."""
        self.record_held()
        return bool(super().can_consume())  # type: ignore[no-untyped-call]

    def record_held(self, everything: bool = False) -> int:
        """Write the messages held at least `record_after_s` (all with `everything`) to
        the unacknowledged set, as kombu would have on delivery; returns how many."""
        with self._held_lock:
            due = self._due(everything)
            if due:
                with self.pipe_or_acquire() as pipe:
                    for tag, (at, message) in due:
                        info = message.delivery_info
                        pipe.zadd(self.unacked_index_key, {tag: at}).hset(
                            self.unacked_key, tag,
                            dumps([message._raw, info["exchange"],  # type: ignore[no-untyped-call]
                                   info["routing_key"]]))
                    pipe.execute()
                for tag, _ in due:
                    del self._held[tag]
        return len(due)

    def _due(self, everything: bool) -> list[tuple[Any, tuple[float, Any]]]:
        ceil = time.time() - self.record_after_s
        due = []
        for tag, entry in self._held.items():  # oldest first
            if not everything and entry[0] > ceil:
                break
            due.append((tag, entry))
        return due

    def ack(self, delivery_tag: Any) -> None:
        """Acknowledge: in memory if it was never recorded, else as kombu does."""
        with self._held_lock:
            unrecorded = self._held.pop(delivery_tag, None) is not None
        if unrecorded:
            virtual.QoS.ack(self, delivery_tag)  # type: ignore[no-untyped-call]
        else:
            super().ack(delivery_tag)  # type: ignore[no-untyped-call]

    def reject(self, delivery_tag: Any, requeue: bool = False) -> None:
        """Reject as kombu does, from the unacknowledged set (recorded first)."""
        self.record_held(everything=True)
        super().reject(delivery_tag, requeue=requeue)  # type: ignore[no-untyped-call]

    def restore_unacked(self, client: Any = None) -> None:
        """Give every unacknowledged message back to its queue, as kombu does (recorded
        first)."""
        self.record_held(everything=True)
        super().restore_unacked(client)  # type: ignore[no-untyped-call]


class Channel(kombu_redis.Channel):
    """kombu's Redis channel; once its transport let go of the connection, it fails as a
    lost connection does.  It also keeps one Redis client per connection pool, where kombu
    builds a new one for every publish and every acknowledgement, a cost paid on every
    message (docs/measurements.md): a client only borrows pooled connections per command and
    is safe to share between threads."""

    QoS = QoS
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
        if self.connection is None or self.connection.client is None:
            raise redis.ConnectionError("the broker connection of this channel was closed")
        params: dict[str, Any] = super()._connparams(  # type: ignore[no-untyped-call]
            asynchronous=asynchronous)
        return params


class Transport(kombu_redis.Transport):
    """kombu's Redis transport with `Channel`."""

    Channel = Channel
