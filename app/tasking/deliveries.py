"""A message taken off a queue's Redis list, and its run through Celery's own tracer: what
a Celery worker does with a message between its consumer and its pool, for a consumer of
gamesched's own (`app.tasking.direct`).

The message is kombu's JSON envelope as the client published it (task protocol 2: the
task's name, id, ETA, expiry, retries and gamesched's headers in ``headers``; the body
base64 in ``body``).  The run goes through `celery.app.trace.build_tracer`, as a Celery
worker's pool runs it: ``task_prerun`` and ``task_postrun`` (the memory guard's running
jobs), the task's own ``__call__`` (`GameTask`: claims, metrics, execution records, the
controller's latency note), retries sent again, results stored where a backend is set,
errors logged.  The request it sees holds what a Celery worker's would: the headers, the
properties, the delivery info (exchange, routing key, priority), the host name.
"""

from __future__ import annotations

import base64
import json
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from celery import Celery
from celery.app.trace import build_tracer
from kombu.exceptions import DecodeError
from kombu.serialization import loads, prepare_accept_content

log = logging.getLogger(__name__)


class BadMessage(ValueError):
    """A message that is not a task this consumer can run (its reason in the text)."""


@dataclass(frozen=True)
class Delivery:
    """A message taken off `key`, one of `queue`'s lists: the raw bytes as Redis held them,
    kombu's envelope parsed, and when it was taken (seconds since the epoch)."""

    key: str
    queue: str
    raw: bytes
    message: dict[str, Any] = field(repr=False)
    taken: float

    @property
    def headers(self) -> dict[str, Any]:
        headers: dict[str, Any] = self.message["headers"]
        return headers

    @property
    def properties(self) -> dict[str, Any]:
        properties: dict[str, Any] = self.message["properties"]
        return properties

    @property
    def task_id(self) -> str:
        return str(self.headers["id"])

    @property
    def tag(self) -> str:
        """kombu's delivery tag: the key of its unacknowledged set's entries."""
        return str(self.properties["delivery_tag"])

    @property
    def exchange(self) -> str:
        return str(self.properties.get("delivery_info", {}).get("exchange") or "")

    @property
    def routing_key(self) -> str:
        return str(self.properties.get("delivery_info", {}).get("routing_key") or self.queue)

    def eta(self) -> float | None:
        """When the task may run (seconds since the epoch), None for at once."""
        return _instant(self.headers.get("eta"), "eta")

    def expired(self, now: float) -> bool:
        """Whether its expiry has passed by `now`."""
        expires = _instant(self.headers.get("expires"), "expires")
        return expires is not None and expires <= now


def delivery(key: str, queue: str, raw: bytes, taken: float | None = None) -> Delivery:
    """The delivery of `raw`, taken off `key` (one of `queue`'s lists); BadMessage naming
    what is wrong when it is not kombu's envelope of a task."""
    try:
        message = json.loads(raw)
        headers, properties = message["headers"], message["properties"]
        if not isinstance(headers, dict) or not isinstance(properties, dict):
            raise BadMessage("headers and properties: expected objects")
        for name in ("task", "id"):
            if not isinstance(headers.get(name), str):
                raise BadMessage(f"headers.{name}: expected a string, got "
                                 f"{headers.get(name)!r}")
        if not isinstance(properties.get("delivery_tag"), str):
            raise BadMessage("properties.delivery_tag: expected a string, got "
                             f"{properties.get('delivery_tag')!r}")
    except (ValueError, KeyError, TypeError) as exc:
        raise BadMessage(str(exc)) from exc
    return Delivery(key, queue, raw, message, time.time() if taken is None else taken)


class Runner:
    """Runs deliveries of `app`'s tasks as a Celery worker named `hostname` would."""

    def __init__(self, app: Celery, hostname: str) -> None:
        self._app = app
        self._hostname = hostname
        self._accept = prepare_accept_content(  # type: ignore[no-untyped-call]
            app.conf.accept_content)
        self._tracers: dict[str, Any] = {}

    def run(self, one: Delivery) -> bool:
        """Run `one`'s task to its end; False when it could not be run at all (an unknown
        task, a body that does not decode: logged, and the message dropped, as a Celery
        worker drops it).  A failure of the task itself is the task's (logged, counted,
        stored) and returns True."""
        name = str(one.headers["task"])
        tracer = self._tracer(name)
        if tracer is None:
            log.error("received an unregistered task %r (id %s); it is dropped", name,
                      one.task_id)
            return False
        try:
            args, kwargs, embed = body(one.message, self._accept)
        except (BadMessage, DecodeError, ValueError, TypeError) as exc:
            log.error("task %s (id %s): its body does not decode (%s); it is dropped", name,
                      one.task_id, exc)
            return False
        tracer(one.task_id, args, kwargs, self._request(one, args, kwargs, embed))
        return True

    def _tracer(self, name: str) -> Any:
        tracer = self._tracers.get(name)
        if tracer is None and name in self._app.tasks:
            task = self._app.tasks[name]
            tracer = build_tracer(name, task, loader=self._app.loader,
                                  hostname=self._hostname, app=self._app)
            self._tracers[name] = tracer
        return tracer

    def _request(self, one: Delivery, args: list[Any], kwargs: dict[str, Any],
                 embed: dict[str, Any]) -> dict[str, Any]:
        """The request a Celery worker's pool hands the tracer (`celery.worker.request`)."""
        properties = one.properties
        request = dict(one.headers)
        request.update(
            properties=properties, reply_to=properties.get("reply_to"),
            correlation_id=properties.get("correlation_id"), hostname=self._hostname,
            delivery_info={"exchange": one.exchange, "routing_key": one.routing_key,
                           "priority": properties.get("priority"), "redelivered": False},
            args=args, kwargs=kwargs, is_eager=False, **embed)
        return request


def body(message: dict[str, Any],
         accept: Any) -> tuple[list[Any], dict[str, Any], dict[str, Any]]:
    """The args, kwargs and embedded options of kombu's envelope `message` (task protocol
    2), its body base64-decoded where it says so and deserialised when its content type is
    one of `accept`; BadMessage, DecodeError or ValueError when it does not decode so."""
    raw: Any = message.get("body")
    if message["properties"].get("body_encoding") == "base64":
        raw = base64.b64decode(raw)
    decoded = loads(raw, message.get("content-type"),  # type: ignore[no-untyped-call]
                    message.get("content-encoding"), accept=accept)
    if not isinstance(decoded, list | tuple) or len(decoded) != 3:
        raise BadMessage("body: expected [args, kwargs, embed] (task protocol 2)")
    args, kwargs, embed = decoded
    return list(args), dict(kwargs), dict(embed or {})


def _instant(value: Any, name: str) -> float | None:
    """An ETA or expiry header as seconds since the epoch (ISO 8601, naive taken as UTC)."""
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise BadMessage(f"headers.{name}: expected an ISO 8601 time, got {value!r}") from exc
    if at.tzinfo is None:
        at = at.replace(tzinfo=UTC)
    return at.timestamp()
