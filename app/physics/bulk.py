"""Every body's state of a space read in one call (`pymunk.batch`), as numpy arrays.

Reading a body's position or velocity through its Python properties costs about a
microsecond a value; a unit looks at every body of every region each frame (anomalies,
what crosses a border), so those looks go through here: one pass in C over the space's
bodies, asleep or awake, into a buffer kept per thread.
"""

from __future__ import annotations

import threading
import weakref
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import pymunk
import pymunk.batch

FIELDS = (pymunk.batch.BodyFields.BODY_ID | pymunk.batch.BodyFields.POSITION
          | pymunk.batch.BodyFields.ANGLE | pymunk.batch.BodyFields.VELOCITY
          | pymunk.batch.BodyFields.ANGULAR_VELOCITY)
COLUMNS = 6  # x, y, angle, vx, vy, spin: pymunk.batch's order of FIELDS
_BUFFERS = threading.local()  # a pymunk.batch.Buffer per thread, reused (it is never freed)


@dataclass(frozen=True)
class States:
    """Each body's `Body.id` and its ``x, y, angle, vx, vy, spin`` (one row each), copied
    out of the buffer."""

    ids: npt.NDArray[np.uintp]
    rows: npt.NDArray[np.float64]

    @property
    def x(self) -> npt.NDArray[np.float64]:
        return self.rows[:, 0]

    @property
    def y(self) -> npt.NDArray[np.float64]:
        return self.rows[:, 1]

    @property
    def vx(self) -> npt.NDArray[np.float64]:
        return self.rows[:, 3]

    @property
    def vy(self) -> npt.NDArray[np.float64]:
        return self.rows[:, 4]


def states(space: pymunk.Space) -> States:
    """The state of every body of `space` (dynamic and kinematic; asleep or not), as
    `pymunk.Space.bodies` lists them."""
    buffer: pymunk.batch.Buffer | None = getattr(_BUFFERS, "buffer", None)
    if buffer is None:
        buffer = _BUFFERS.buffer = pymunk.batch.Buffer()
    buffer.clear()
    pymunk.batch.get_space_bodies(space, FIELDS, buffer)
    rows = np.frombuffer(buffer.float_buf(), dtype=np.float64).reshape(-1, COLUMNS)
    ids = np.frombuffer(buffer.int_buf(), dtype=np.uintp)
    own = ids != space.static_body.id  # the space's own static body (its walls) is listed
    return States(ids[own], rows[own])  # (masking copies out of the buffer)


def bodies_by_id(space: pymunk.Space,
                 wanted: npt.NDArray[np.uintp]) -> list[pymunk.Body | None]:
    """The body of `space` each `Body.id` of `wanted` (read by `states`) names, if it is a
    dynamic one (None for a static or kinematic body, or an id of none).

    The map from id to body is kept per space, and when an id is missing from it only the
    bodies added since are read (reading a body's id costs half a microsecond).  The map
    holds the bodies it names, so an id it has cannot pass to a new body; a body removed
    from the space stays in it (its id is not in a later `states`) until it is made
    afresh, once it holds more than twice the bodies the space has."""
    ids = wanted.tolist()
    with _KNOWN_LOCK:
        known = _KNOWN.get(space)
        if known is None or len(known.bodies) > 2 * len(space.bodies) + 64:
            known = _KNOWN[space] = _Known()
        if any(i not in known.dynamic and i not in known.others for i in ids):
            known.add_new(space)
        return list(map(known.dynamic.get, ids))


class _Known:
    """The bodies of one space seen so far, by id: the dynamic ones, and the others."""

    def __init__(self) -> None:
        self.bodies: set[pymunk.Body] = set()
        self.dynamic: dict[int, pymunk.Body] = {}
        self.others: dict[int, pymunk.Body] = {}

    def add_new(self, space: pymunk.Space) -> None:
        """Add the bodies of `space` not seen yet."""
        for body in space.bodies:
            if body not in self.bodies:
                self.bodies.add(body)
                kind = self.dynamic if body.body_type == pymunk.Body.DYNAMIC else self.others
                kind[body.id] = body


_KNOWN: weakref.WeakKeyDictionary[pymunk.Space, _Known] = (
    weakref.WeakKeyDictionary())  # not on the space: a packed space must not carry it
_KNOWN_LOCK = threading.Lock()
