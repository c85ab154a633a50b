"""Handing bodies and whole regions over between pymunk spaces.

A body crossing a border leaves its region's space with its whole state (position,
velocity, angle, angular velocity, mass, moment, its shapes and their material, and any
attribute the game set on it, such as its id) and joins the neighbour's space as it was:
`move_body` within a process, `take_body` and `put_body` across processes.  A region
moving to another physics unit goes whole, `pack_space` and `unpack_space`: every body
arrives exactly as it was, and bodies not touching anything step on exactly as they would
have.  The contact solver's cached impulses do not travel (pymunk does not pickle them), so
bodies resting on each other may settle a little differently: about 1e-4 world units over
the next second in a pile of six (the tests hold it under 1e-2).

A packed space waits between the unit it leaves and its new owner in a `Handover`: in this
process (the embedded default) or in Redis.

The bytes are pickles, for the fleet's own processes only (one gamesched version, one
pymunk version): never unpack bytes from outside the fleet.
"""

from __future__ import annotations

import pickle
import threading
from typing import Protocol

import pymunk
import redis

from app.errors import InvalidRequest
from app.protocol import keys

HANDOVER_TTL_S = 600  # a packed space nobody took is dropped after this


def move_body(body: pymunk.Body, source: pymunk.Space, target: pymunk.Space) -> None:
    """Move `body` and its shapes from `source` to `target`, unchanged."""
    _check_in(body, source)
    shapes = list(body.shapes)
    source.remove(body, *shapes)
    target.add(body, *shapes)


def take_body(body: pymunk.Body, source: pymunk.Space) -> bytes:
    """Remove `body` and its shapes from `source`; returns them packed for `put_body`."""
    _check_in(body, source)
    shapes = list(body.shapes)
    blob = pickle.dumps((body, shapes), protocol=pickle.HIGHEST_PROTOCOL)
    source.remove(body, *shapes)
    return blob


def put_body(blob: bytes, target: pymunk.Space) -> pymunk.Body:
    """Add a body packed by `take_body` to `target`, as it was; returns it."""
    body, shapes = pickle.loads(blob)  # the fleet's own bytes only (module doc)
    target.add(body, *shapes)
    return body  # type: ignore[no-any-return]


def pack_space(space: pymunk.Space) -> bytes:
    """A region's whole space (bodies, shapes, constraints, settings) as bytes."""
    return pickle.dumps(space, protocol=pickle.HIGHEST_PROTOCOL)


def unpack_space(blob: bytes) -> pymunk.Space:
    """The space packed by `pack_space`."""
    space = pickle.loads(blob)  # the fleet's own bytes only (module doc)
    if not isinstance(space, pymunk.Space):
        raise InvalidRequest("space", type(space).__name__, "not a packed pymunk space")
    return space


def _check_in(body: pymunk.Body, space: pymunk.Space) -> None:
    if body.space is not space:
        raise InvalidRequest("body", getattr(body, "gs_id", repr(body)),
                             "not in the space it is handed over from")


class Handover(Protocol):
    """Where a region's packed space waits between the unit it leaves and its new owner."""

    def put(self, region: str, blob: bytes) -> None:
        """Leave `region`'s packed space for its new owner."""

    def take(self, region: str, wait_s: float) -> bytes | None:
        """`region`'s packed space, waiting up to `wait_s` for it; None if it has not come."""


class MemoryHandover:
    """Hand-overs inside this process (the embedded default, fast tests)."""

    def __init__(self) -> None:
        self._ready = threading.Condition()
        self._blobs: dict[str, bytes] = {}

    def put(self, region: str, blob: bytes) -> None:
        """Leave `region`'s packed space for its new owner."""
        with self._ready:
            self._blobs[region] = blob
            self._ready.notify_all()

    def take(self, region: str, wait_s: float) -> bytes | None:
        """`region`'s packed space, waiting up to `wait_s` for it."""
        with self._ready:
            self._ready.wait_for(lambda: region in self._blobs, timeout=wait_s)
            return self._blobs.pop(region, None)


class RedisHandover:
    """Hand-overs through Redis: a list per region, pushed by the unit it leaves and popped,
    blocking, by its new owner."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def put(self, region: str, blob: bytes) -> None:
        """Leave `region`'s packed space for its new owner."""
        key = keys.physics_handover(region)
        pipe = self._client.pipeline(transaction=True)
        pipe.delete(key)  # a stale copy from an abandoned move never outlives a newer one
        pipe.rpush(key, blob)
        pipe.expire(key, HANDOVER_TTL_S)
        pipe.execute()

    def take(self, region: str, wait_s: float) -> bytes | None:
        """`region`'s packed space, waiting up to `wait_s` for it (BLPOP)."""
        reply = self._client.blpop([keys.physics_handover(region)], timeout=wait_s)
        if reply is None:
            return None
        blob = reply[1]
        return blob if isinstance(blob, bytes) else blob.encode()


MEMORY_HANDOVER = MemoryHandover()  # the embedded default's, shared by its units
