"""State batches gathered: a player worker that runs a state batch takes the state
batches waiting behind it in its queue and applies them in the same task.

What a state batch costs a player worker is mostly Celery's and kombu's consuming loop,
whatever the batch carries (docs/measurements.md): popping each message, decoding its
envelope, building its request, handing it to the pool, popping again.  A batch taken here
costs one share of one Redis call and a JSON decode; the worker applies it after the
task's own, each with a state script call of its own, so that Redis still runs no script
longer than one batch's (`GAMESCHED_BATCH_MAX_UPDATES` bounds it).  When the workers fall
behind and batches wait, a task carries several; with nothing waiting, the call takes
nothing.

A message is taken only while it is what the task would run the same way itself: a
state batch (`UPDATE_TASK`) in msgpack, without an ETA, an expiry or a priority claim
(`CLAIM_HEADER`).  Messages are taken in the order a consumer would receive them, highest
priority step first, oldest first, and the first one that is not such a batch stops the
taking: a session's open waiting in front of its updates still runs before them.

A batch taken is out of the queue and not recorded as unacknowledged, as the task's own
message is not (`app.tasking.transport`): a worker killed outright between taking and
applying loses its updates, as it loses those of a message it had just received.  A
message that passes the script's test but does not decode as a state batch (an array of
entries in wire form) goes back to the consuming end of its list, with everything taken
after it, in their order: the task runs it alone, and fails with it alone.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from importlib import resources
from typing import Any

import redis
from kombu.exceptions import DecodeError
from redis.commands.core import Script

from app.players import wire
from app.protocol.names import CLAIM_HEADER, HANDOFF_HEADER, SENT_HEADER, UPDATE_TASK
from app.protocol.queues import PRIORITY_STEPS
from app.tasking import deliveries
from app.tasking.broker import step_key

log = logging.getLogger(__name__)

# Bound to no client (redis-py needs one only to encode a text script): each call names
# the broker client it runs on.
_GATHER = Script(None, resources.files("app.tasking").joinpath(  # type: ignore[arg-type]
    "gather.lua").read_bytes())
# What kombu's JSON envelope of a state batch holds (`json.dumps`' default separators),
# and what it must not.
_CONTENT = "application/x-msgpack"  # how a state batch is sent (`arrivals.send_updates`)
_MUST = (f'"task": "{UPDATE_TASK}"', '"eta": null, "expires": null',
         f'"content-type": "{_CONTENT}"')
_MUST_NOT = (f'"{CLAIM_HEADER}"',)


@dataclass(frozen=True)
class Gathered:
    """A state batch taken from the queue: its task id, its batch in wire form, its
    hand-off and send times (seconds since the epoch), when it was taken, the priority
    step it was sent at, and whether it ran without failing (False once it failed)."""

    task_id: str
    batch: bytes
    handoff: float
    sent: float
    taken: float
    step: int | None = None
    ok: bool = True


def take_waiting(client: redis.Redis, queue: str, most: int) -> list[Gathered]:
    """Take up to `most` state batches waiting at the head of `queue` on the broker Redis
    `client` (kombu's lists, one per priority step), in delivery order."""
    if most <= 0:
        return []
    keys = [step_key(queue, step) for step in PRIORITY_STEPS]
    reply = _GATHER(keys=keys, args=[most, len(_MUST), *_MUST, *_MUST_NOT], client=client)
    now = time.time()
    taken: list[Gathered] = []
    for at in range(0, len(reply), 2):
        batch = _decoded(reply[at + 1], now)
        if batch is None:
            _give_back(client, keys, reply[at:])
            break
        taken.append(batch)
    return taken


def _decoded(raw: bytes, now: float) -> Gathered | None:
    """The state batch in a kombu message, or None when it does not hold one."""
    try:
        message = json.loads(raw)
        headers, properties = message["headers"], message["properties"]
        args, kwargs, _ = deliveries.body(message, {_CONTENT})
        if kwargs or len(args) != 1 or not isinstance(args[0], bytes | bytearray):
            raise ValueError("not one state batch")
        batch = bytes(args[0])
        wire.batch_size(batch)  # applied as a batch of its own: an array of entries
        step = properties.get("priority")
        return Gathered(str(headers["id"]), batch,
                        float(headers.get(HANDOFF_HEADER) or now),
                        float(headers.get(SENT_HEADER) or 0.0), now,
                        step if isinstance(step, int) else None)
    except (ValueError, KeyError, TypeError, DecodeError) as exc:
        log.warning("a waiting message is not a state batch this worker can gather (%s); "
                    "it goes back to its queue", exc)
        return None


def _give_back(client: redis.Redis, keys: list[str], reply: list[Any]) -> None:
    """Put taken messages back at the consuming end of their lists, the first taken
    last-pushed so that it is received first again."""
    with client.pipeline(transaction=False) as pipe:
        for at in range(len(reply) - 2, -1, -2):
            pipe.rpush(keys[int(reply[at]) - 1], reply[at + 1])
        pipe.execute()
