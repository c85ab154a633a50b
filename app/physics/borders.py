"""Where regions leave their halos and emigrants for their neighbours, whichever unit owns
them (`app.physics.world` says what these are).

Each frame a unit gathers, in one call, the bodies that arrived for the regions it steps
and the latest halos of their neighbours; after stepping, it scatters, in one call, the
halos of the regions it stepped and the bodies that left them.  Between two regions of
one unit this goes through the unit's own `MemoryBorders`; only what crosses between
units goes through the shared one (`app.physics.units`).  Arrivals come in a fixed
order (by the region they left, then the order they left it in), so a region's history
does not depend on which unit sent what first.  `RedisBorders` keeps them in the hot store
(a key per region's halo, a list per region's arrivals: two round trips a frame per unit);
`MemoryBorders` in this process.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import msgpack
import redis

from app.physics.world import GhostRow
from app.protocol import keys

HALO_TTL_MS = 5_000  # a halo nobody renewed (its region stopped stepping) fades after this
ARRIVALS_TTL_S = 600
Arrival = tuple[str, int, bytes]  # the region it left, its order there, the packed body


@dataclass(frozen=True)
class Gathered:
    """What a unit reads before a frame: packed bodies arrived per region, in order, and
    halo rows per neighbour."""

    arrivals: dict[str, list[Arrival]] = field(default_factory=dict)
    halos: dict[str, list[GhostRow]] = field(default_factory=dict)

    def merged(self, other: Gathered) -> Gathered:
        """Both, arrivals in order (a region's arrivals may come from either)."""
        arrivals = {r: _ordered([*self.arrivals.get(r, ()), *other.arrivals.get(r, ())])
                    for r in self.arrivals.keys() | other.arrivals.keys()}
        return Gathered(arrivals, self.halos | other.halos)


class Borders(Protocol):
    """Halos and emigrants between regions (see the module)."""

    def gather(self, regions: Sequence[str], neighbours: Sequence[str]) -> Gathered:
        """Take the bodies arrived for `regions`, and read the halos of `neighbours`."""

    def scatter(self, halos: Mapping[str, list[GhostRow]],
                migrants: Mapping[str, Sequence[Arrival]]) -> None:
        """Leave each region's halo, and each region's arriving bodies."""


def _ordered(arrivals: Sequence[Arrival]) -> list[Arrival]:
    return sorted(arrivals, key=lambda a: (a[0], a[1]))


class MemoryBorders:
    """Halos and arrivals in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._halos: dict[str, list[GhostRow]] = {}
        self._arrivals: dict[str, list[Arrival]] = {}

    def gather(self, regions: Sequence[str], neighbours: Sequence[str]) -> Gathered:
        """Take the bodies arrived for `regions`, and read the halos of `neighbours`."""
        with self._lock:
            taken = {r: self._arrivals.pop(r) for r in regions if r in self._arrivals}
            halos = {n: self._halos[n] for n in neighbours if n in self._halos}
        return Gathered({r: _ordered(a) for r, a in taken.items()}, halos)

    def scatter(self, halos: Mapping[str, list[GhostRow]],
                migrants: Mapping[str, Sequence[Arrival]]) -> None:
        """Leave each region's halo, and each region's arriving bodies."""
        with self._lock:
            self._halos.update(halos)
            for region, bodies in migrants.items():
                self._arrivals.setdefault(region, []).extend(bodies)


def _arrival(raw: list[Any]) -> Arrival:
    left, order, blob = raw
    return str(left), int(order), bytes(blob)


class RedisBorders:
    """Halos and arrivals in Redis: a key per region's halo (msgpack rows, expiring), a
    list per region's arrivals (msgpack ``[region left, order, packed body]``)."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client

    def gather(self, regions: Sequence[str], neighbours: Sequence[str]) -> Gathered:
        """Take the arrivals and read the halos, in one MULTI."""
        pipe = self._client.pipeline(transaction=True)
        for region in regions:
            pipe.lrange(keys.physics_arrivals(region), 0, -1)
        if regions:
            pipe.delete(*(keys.physics_arrivals(r) for r in regions))
        if neighbours:
            pipe.mget([keys.physics_halo(n) for n in neighbours])
        replies: list[Any] = pipe.execute() if regions or neighbours else []
        arrivals = {}
        for region, raw in zip(regions, replies, strict=False):
            if raw:
                arrivals[region] = _ordered([_arrival(msgpack.unpackb(b)) for b in raw])
        halos = {}
        if neighbours:
            for name, raw in zip(neighbours, replies[-1], strict=True):
                if raw is not None:
                    halos[name] = msgpack.unpackb(raw)
        return Gathered(arrivals, halos)

    def scatter(self, halos: Mapping[str, list[GhostRow]],
                migrants: Mapping[str, Sequence[Arrival]]) -> None:
        """Leave the halos and the arriving bodies, in one round trip."""
        if not halos and not migrants:
            return
        pipe = self._client.pipeline(transaction=False)
        for region, rows in halos.items():
            pipe.set(keys.physics_halo(region), msgpack.packb(rows), px=HALO_TTL_MS)
        for region, bodies in migrants.items():
            key = keys.physics_arrivals(region)
            pipe.rpush(key, *(msgpack.packb(list(b)) for b in bodies))
            pipe.expire(key, ARRIVALS_TTL_S)
        pipe.execute()
