"""Physics units: each keeps the spaces of the regions it owns, steps them, and hands a
region over whole when the owner map moves it to another unit.

A unit is one worker process consuming a queue of its own (``physics.<unit>``); a frame
reaches it as one task carrying its due regions and the owner map's epoch its sender read.
A region's space lives on one unit only:

- a unit steps only the regions the owner map gives it (a task sent before a move, for a
  region that has left, steps nothing there: the region is reported skipped);
- when a task carries a newer epoch, the unit reads the map and hands every space it no
  longer owns over (`Handover.put`), and the sender's first frame of a new epoch reaches
  every unit, so a unit left with nothing still hands over;
- a unit asked to step a region it does not hold takes the space handed over when the map
  says the region is in transit, waiting up to `HANDOVER_WAIT_S` for it; if it has not
  arrived, the region is skipped this frame and taken at the next.  A region in nobody's
  hands before starts empty, and so does one whose space has not come within
  `HANDOVER_GIVE_UP_S` (the unit it left died before handing it over), with a warning.

A skipped region makes the frame partly run, which the frame's task reports as not done
(``docs/architecture.md``, physics units).  A unit that dies loses the spaces it held:
its regions start again empty on the unit that replaces it.
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import Counter, deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Protocol

import msgpack
import pymunk
import redis

from app.physics.anomalies import Limits
from app.physics.attention import MemoryPlayerCounts, PlayerCounts
from app.physics.engine import (
    BodySpawn,
    StepResult,
    named,
    new_space,
    remove,
    spawn,
    step_space,
)
from app.physics.handover import pack_space, unpack_space
from app.physics.owners import OwnerMap, OwnerView
from app.protocol import keys

HANDOVER_WAIT_S = 0.010  # past this, the region waits for the next frame
HANDOVER_GIVE_UP_S = 5.0  # past this, the space is taken as lost (its unit died) and restarted
HANDOVER_TTL_S = 600  # a packed space nobody took is dropped after this
NOTES_EVERY_S = 0.25  # a unit writes its region notes to Redis at most this often
COST_STEPS = 15  # a region's cost is the median of this many of its last steps
log = logging.getLogger(__name__)


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


@dataclass(frozen=True)
class RegionNote:
    """A region's last step, as the unit that ran it saw it: the director's cost input."""

    unit: int
    frame: int
    bodies: int
    steps: int
    step_ms: float
    at: float = 0.0  # when, in seconds since the epoch
    cost_ms: float = 0.0  # the median of its last steps' CPU times: preemption does not count


class RegionNotes(Protocol):
    """Where units leave each region's last step, and the running counts of what units and
    the director did (regions moved, skipped, handed over; anomalies by kind)."""

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`."""

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step."""

    def count(self, amounts: Mapping[str, int]) -> None:
        """Add each amount to its running count."""

    def totals(self) -> dict[str, int]:
        """The running counts."""

    def reset(self) -> None:
        """Forget every note and count."""


class MemoryRegionNotes:
    """Region notes in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[str, RegionNote] = {}
        self._totals: Counter[str] = Counter()

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`."""
        with self._lock:
            self._notes.update({s.region: _note(unit, s) for s in steps})

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step."""
        with self._lock:
            return dict(self._notes)

    def count(self, amounts: Mapping[str, int]) -> None:
        """Add each amount to its running count."""
        with self._lock:
            self._totals.update(amounts)

    def totals(self) -> dict[str, int]:
        """The running counts."""
        with self._lock:
            return dict(self._totals)

    def reset(self) -> None:
        """Forget every note and count."""
        with self._lock:
            self._notes.clear()
            self._totals.clear()


class RedisRegionNotes:
    """Region notes in a Redis hash, region to its packed note.  A unit writes its notes at
    most every `NOTES_EVERY_S` (the director reads them once a second): the newest note of
    each region waits, and a timer writes what is still waiting when the time comes."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._waiting: dict[str, bytes] = {}
        self._written = -math.inf  # when the notes were last written (monotonic)
        self._timer: threading.Timer | None = None

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`: now, or with the next write."""
        if not steps:
            return
        with self._lock:
            self._waiting.update({s.region: msgpack.packb(list(vars(_note(unit, s)).values()))
                                  for s in steps})
            if self._timer is not None:
                return
            delay = self._written + NOTES_EVERY_S - time.monotonic()
            if delay > 0:
                self._timer = threading.Timer(delay, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Write the notes waiting now."""
        with self._lock:
            waiting, self._waiting, self._timer = self._waiting, {}, None
            self._written = time.monotonic()
        if waiting:
            self._client.hset(keys.PHYSICS_REGIONS, mapping=waiting)  # type: ignore[arg-type]

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step (this process's notes still waiting included)."""
        raw = self._client.hgetall(keys.PHYSICS_REGIONS)
        with self._lock:
            waiting = dict(self._waiting)
        return {_text(region): RegionNote(*msgpack.unpackb(value))
                for region, value in (raw | waiting).items()}

    def count(self, amounts: Mapping[str, int]) -> None:
        """HINCRBY each running count, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for name, amount in amounts.items():
            pipe.hincrby(keys.PHYSICS_TOTALS, name, amount)
        pipe.execute()

    def totals(self) -> dict[str, int]:
        """The running counts."""
        raw = self._client.hgetall(keys.PHYSICS_TOTALS)
        return {_text(name): int(value) for name, value in raw.items()}

    def reset(self) -> None:
        """Forget every note and count."""
        self._client.delete(keys.PHYSICS_REGIONS, keys.PHYSICS_TOTALS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _note(unit: int, step: StepResult) -> RegionNote:
    return RegionNote(unit, step.frame, step.bodies, step.steps, round(step.step_ms, 3),
                      round(time.time(), 3), round(step.cost_ms, 4))


@dataclass(frozen=True)
class Links:
    """What a unit shares with the others: the owner map, the hand-over place, where it
    notes each region's step, how many units there are, and the limits it contains
    anomalies within."""

    owners: OwnerMap
    handover: Handover
    notes: RegionNotes
    units: int
    limits: Limits = field(default_factory=Limits)
    players: PlayerCounts = field(default_factory=MemoryPlayerCounts)  # by region, reported


@dataclass(frozen=True)
class FrameWork:
    """One frame's work for one unit: ``(region, bodies, dt_ms)`` each (the time that
    region advances), and the owner map's epoch its sender read."""

    frame: int
    regions: Sequence[tuple[str, int, float]]
    epoch: int = 0


@dataclass(frozen=True)
class UnitFrame:
    """What a unit did with a frame: the regions it stepped, those it could not (not its
    own, or still in transit), and those it handed over first."""

    unit: int
    stepped: tuple[StepResult, ...]
    skipped: tuple[str, ...]
    released: tuple[str, ...]


@dataclass(frozen=True)
class BodiesChanged:
    """What a change of a region's bodies did: the ids spawned and removed, those already
    there (not spawned again) and those asked to be removed that were not there."""

    spawned: tuple[str, ...]
    removed: tuple[str, ...]
    already: tuple[str, ...] = ()
    missing: tuple[str, ...] = ()


class Unit:
    """One physics unit's regions and their spaces (see the module)."""

    def __init__(self, number: int) -> None:
        self.number = number
        self.spaces: dict[str, pymunk.Space] = {}
        self.view = OwnerView(0)
        self._awaited: dict[str, float] = {}  # region in transit -> when it was first awaited
        self._recent: dict[str, deque[float]] = {}  # region -> its last steps' times
        self._lock = threading.Lock()  # pymunk spaces are not thread-safe

    def step(self, work: FrameWork, links: Links) -> UnitFrame:
        """Step this unit's regions of `work`, handing over first what it no longer owns."""
        with self._lock:
            released = self._follow(links) if work.epoch > self.view.epoch else ()
            stepped, skipped = [], []
            for region, bodies, dt_ms in work.regions:
                space = self._space(region, links)
                if space is None:
                    skipped.append(region)
                    continue
                result = step_space(space, region, frame=work.frame, dt_ms=dt_ms,
                                    bodies=bodies, limits=links.limits)
                stepped.append(replace(result, cost_ms=self._cost(region, result.cpu_ms)))
            links.notes.note(self.number, stepped)
            return UnitFrame(self.number, tuple(stepped), tuple(skipped), released)

    def change(self, region: str, spawns: Sequence[BodySpawn], removals: Sequence[str],
               epoch: int, links: Links) -> BodiesChanged | None:
        """Spawn and remove bodies of `region` (removals first); None if this unit cannot
        do it now: the region is another unit's (`view.owner_of` says which) or its space
        is still on its way here."""
        with self._lock:
            if epoch > self.view.epoch:
                self._follow(links)
            space = self._space(region, links)
            if space is None:
                return None
            gone = remove(space, set(removals))
            present = named(space)
            fresh = [b for b in spawns if b.body_id not in present]
            for body in fresh:
                spawn(space, body)
            return BodiesChanged(
                tuple(b.body_id for b in fresh), tuple(sorted(gone)),
                tuple(b.body_id for b in spawns if b.body_id in present),
                tuple(sorted(set(removals) - gone)))

    def _cost(self, region: str, cpu_ms: float) -> float:
        """The median of `region`'s last `COST_STEPS` steps' CPU times, this one included
        (CPU, not wall time: a unit preempted on a busy machine does not look costlier)."""
        recent = self._recent.setdefault(region, deque(maxlen=COST_STEPS))
        recent.append(cpu_ms)
        return statistics.median(recent)

    def _follow(self, links: Links) -> tuple[str, ...]:
        """Read the newer owner map; hand over every space it gives to another unit."""
        self.view = links.owners.read()
        leaving = [r for r in self.spaces if self.view.owner_of(r, links.units) != self.number]
        for region in leaving:
            links.handover.put(region, pack_space(self.spaces.pop(region)))
            self._recent.pop(region, None)
        return tuple(leaving)

    def _space(self, region: str, links: Links) -> pymunk.Space | None:
        """The space of `region` if this unit owns it: held, handed over, or new."""
        if self.view.owner_of(region, links.units) != self.number:
            return None
        space = self.spaces.get(region)
        if space is not None:
            return space
        source = self.view.moving.get(region)
        if source is not None and source != self.number:
            space = self._take(region, source, links)
            if space is None:
                return None
        else:
            space = new_space()
        self.spaces[region] = space
        return space

    def _take(self, region: str, source: int, links: Links) -> pymunk.Space | None:
        """The space handed over from unit `source`, None while it is still on its way."""
        blob = links.handover.take(region, HANDOVER_WAIT_S)
        first = self._awaited.setdefault(region, time.monotonic())
        if blob is not None:
            space = unpack_space(blob)
        elif time.monotonic() - first > HANDOVER_GIVE_UP_S:
            log.warning("region %s never came from physics unit %d: restarted empty on unit %d",
                        region, source, self.number)
            space = new_space()
        else:
            return None
        del self._awaited[region]
        links.owners.settle(region)
        return space


MEMORY_HANDOVER = MemoryHandover()  # the embedded default's, shared by its units
MEMORY_REGION_NOTES = MemoryRegionNotes()
_UNITS: dict[int, Unit] = {}
_UNITS_LOCK = threading.Lock()


def unit(number: int) -> Unit:
    """This process's unit `number` (a unit's worker holds one; the embedded fleet, all)."""
    with _UNITS_LOCK:
        return _UNITS.setdefault(number, Unit(number))
