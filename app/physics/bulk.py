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


def bodies_by_id(space: pymunk.Space, wanted: npt.NDArray[np.uintp]) -> list[pymunk.Body]:
    """The bodies of `space` whose `Body.id` is in `wanted`, in `wanted`'s order.

    The map from id to body is kept per space and made again only when an id is missing
    from it (a body added since): reading every body's id costs half a microsecond each.
    The map holds the bodies it names, so an id it has cannot pass to a new body."""
    ids = wanted.tolist()
    with _KNOWN_LOCK:
        known = _KNOWN.get(space)
        if known is None or any(i not in known for i in ids):
            known = _KNOWN[space] = {body.id: body for body in space.bodies}
    return [known[i] for i in ids if i in known]


_KNOWN: weakref.WeakKeyDictionary[pymunk.Space, dict[int, pymunk.Body]] = (
    weakref.WeakKeyDictionary())  # not on the space: a packed space must not carry it
_KNOWN_LOCK = threading.Lock()
