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

Each frame a unit also moves what crosses its regions' borders (`app.physics.world`):
before stepping, it takes the bodies that arrived for them and reads their neighbours'
halos; after, it leaves its regions' halos and the bodies that left them.  Between its
own regions that stays in the process; only what another unit's regions need goes
through the shared `Borders` (`app.physics.borders`).  When the map splits or merges a
region the unit holds, it reshapes the spaces first (`app.physics.reshape`).
"""

from __future__ import annotations

import logging
import math
import statistics
import threading
import time
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import pymunk

from app.physics.anomalies import Limits
from app.physics.attention import MemoryPlayerCounts, PlayerCounts
from app.physics.borders import Arrival, Borders, Gathered, MemoryBorders
from app.physics.engine import (
    BodySpawn,
    StepResult,
    adopt,
    named,
    new_space,
    release,
    remove,
    spawn,
    step_space,
)
from app.physics.handover import Handover, pack_space, put_body, take_body, unpack_space
from app.physics.notes import RegionNotes
from app.physics.owners import OwnerMap, OwnerView
from app.physics.reshape import Retired, reshape, resolve_frame
from app.physics.slowed import MemorySlowedRegions, SlowedRegions
from app.physics.world import (
    BOUND_FOR,
    Crossings,
    GhostPool,
    GhostRow,
    Leaves,
    World,
    crossings,
    ghosts_near,
)

HANDOVER_WAIT_S = 0.010  # past this, the region waits for the next frame
HANDOVER_GIVE_UP_S = 5.0  # past this, the space is taken as lost (its unit died) and restarted
COST_STEPS = 15  # a region's cost is the median of this many of its last steps
RETIRED_S = 5.0  # a split or merged region's name still takes bodies sent to it this long
log = logging.getLogger(__name__)


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
    borders: Borders = field(default_factory=MemoryBorders)  # halos and emigrants
    world: World = field(default_factory=World)
    slowed: SlowedRegions = field(default_factory=MemorySlowedRegions)  # app.physics.slowed


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
    own, or still in transit), those it handed over first, and how many bodies crossed
    into and out of its regions."""

    unit: int
    stepped: tuple[StepResult, ...]
    skipped: tuple[str, ...]
    released: tuple[str, ...]
    arrived: int = 0
    left: int = 0


@dataclass(frozen=True)
class Outgoing:
    """What a unit's frame leaves at its regions' borders, for `Unit.send`."""

    halos: dict[str, list[GhostRow]] = field(default_factory=dict)
    migrants: dict[str, list[Arrival]] = field(default_factory=dict)


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
        self._known: Leaves | None = None
        self._departed: dict[str, list[GhostRow]] = {}  # region -> its last emigrants' rows
        self._pools: dict[str, GhostPool] = {}  # a region's ghosts, kept for its next step
        self._halos: dict[str, list[GhostRow]] = {}  # a region's halo after its last step
        self._local = MemoryBorders()  # between this unit's own regions
        self._retired: dict[str, tuple[tuple[str, ...], float]] = {}  # name -> regions, when
        self._mapped: Leaves | None = None  # the owner map's regions
        self._drained = -math.inf  # when every region's shared arrivals were last read
        self._lock = threading.Lock()  # pymunk spaces are not thread-safe

    drain_every_s = 1.0  # every region's shared arrivals are read at least this often

    def step(self, work: FrameWork, links: Links) -> UnitFrame:
        """Step this unit's regions of `work`, handing over first what it no longer owns,
        and leave what crossed their borders for their neighbours."""
        done, outgoing = self.advance(work, links)
        self.send(outgoing, links)
        return done

    def advance(self, work: FrameWork, links: Links) -> tuple[UnitFrame, Outgoing]:
        """Step this unit's regions of `work`, with the bodies that arrived for them and
        their neighbours' halos, and keep what crosses their borders for `send` (a
        scenario's replay sends only once every unit has advanced, so every region steps
        with its neighbours' halos of the frame before, however they are spread)."""
        with self._lock:
            released = self._follow(links) if work.epoch > self.view.epoch else ()
            due, skipped = [], []
            for region, bodies, dt_ms in self._resolved(work.regions, links.world):
                space = self._space(region, links)
                if space is None:
                    skipped.append(region)
                else:
                    due.append((region, space, bodies, dt_ms))
            leaves = self._leaves([r for r, *_ in due], links.world)
            gathered = self._gather([r for r, *_ in due], leaves, links)
            stepped, outgoing = [], Outgoing()
            arrived = 0
            for region, space, bodies, dt_ms in due:
                arrived += self._arrive(space, gathered.arrivals.get(region, ()))
                result = step_space(space, region, frame=work.frame, dt_ms=dt_ms,
                                    bodies=bodies, limits=links.limits, world=links.world,
                                    ghosts=self._ghosts(region, leaves, gathered),
                                    pool=self._pools.setdefault(region, GhostPool()))
                found = self._crossings(space, region, leaves, result)
                self._departed[region] = [row for row in found.halo if row[BOUND_FOR]]
                _leave(space, region, found, outgoing)
                stepped.append(replace(result, cost_ms=self._cost(region, result.cpu_ms),
                                       bodies=len(space.bodies)))  # those that stayed
            links.notes.note(self.number, stepped)
            left = sum(len(m) for m in outgoing.migrants.values())
            return (UnitFrame(self.number, tuple(stepped), tuple(skipped), released, arrived,
                              left), outgoing)

    def send(self, outgoing: Outgoing, links: Links) -> None:
        """Leave the halos and the emigrants of a frame `advance` stepped: for this unit's
        own regions here, and through the shared borders what another unit's regions
        need (the halo of a region next to one, the bodies bound for one)."""
        with self._lock:
            self._local.scatter(outgoing.halos, {r: m for r, m in outgoing.migrants.items()
                                                 if self._mine(r, links)})
            known = self._known
            shared_halos = {r: rows for r, rows in outgoing.halos.items()
                            if known is not None and self._exposed(r, known, links)}
            away = {r: m for r, m in outgoing.migrants.items() if not self._mine(r, links)}
        if shared_halos or away:
            links.borders.scatter(shared_halos, away)

    def receive(self, links: Links) -> int:
        """Put every body still on its way to this unit's regions into their spaces (the
        end of a replay); returns how many."""
        with self._lock:
            regions = list(self.spaces)
            got = self._local.gather(regions, []).merged(links.borders.gather(regions, []))
            return sum(self._arrive(self.spaces[r], got.arrivals.get(r, ())) for r in regions)

    def _gather(self, regions: list[str], leaves: Leaves, links: Links) -> Gathered:
        """Arrivals and neighbours' halos for `regions`: from this unit's own exchange, and
        from the shared one for what another unit may have left (every region's arrivals
        at least every `drain_every_s`, for a body sent by a unit whose map was stale)."""
        near = sorted({n for r in regions for n in leaves.neighbours(r)})
        local = self._local.gather(regions, [n for n in near if self._mine(n, links)])
        now = time.monotonic()
        self._retired = {n: (t, at) for n, (t, at) in self._retired.items()
                         if now - at <= RETIRED_S}
        drain = now - self._drained >= self.drain_every_s
        exposed = [r for r in regions if drain or self._exposed(r, leaves, links)]
        away = [n for n in near if not self._mine(n, links)]
        if drain:
            self._drained = now
        if not exposed and not away and not self._retired:
            return local
        shared = links.borders.gather([*exposed, *self._retired], away)
        for name in self._retired:  # sent to a retired name: to a region replacing it
            late = shared.arrivals.pop(name, [])
            if late:
                first = self._retired[name][0][0]
                shared.arrivals[first] = [*shared.arrivals.get(first, []), *late]
        return local.merged(shared)

    def _resolved(self, regions: Sequence[tuple[str, int, float]],
                  world: World) -> list[tuple[str, int, float]]:
        """`regions` as the owner map now has them: a name split since the frame's sender
        read the map stands for its quarters (its bodies shared among them), a merged one
        for the region it is in."""
        resolved = resolve_frame(self._map(world).names, regions)
        return [(r, bodies, dt_ms) for r, (bodies, dt_ms) in resolved.items()]

    def _map(self, world: World) -> Leaves:
        """The owner map's regions, as last read (`_follow` renews them)."""
        if self._mapped is None or self._mapped.world != world:
            self._mapped = Leaves(frozenset(self.view.owners), world)
        return self._mapped

    def _mine(self, region: str, links: Links) -> bool:
        return self.view.owner_of(region, links.units) == self.number

    def _exposed(self, region: str, leaves: Leaves, links: Links) -> bool:
        """Whether `region` has a neighbour on another unit."""
        return any(not self._mine(n, links) for n in leaves.neighbours(region))

    @staticmethod
    def _arrive(space: pymunk.Space, arrivals: Sequence[Arrival]) -> int:
        for _, _, blob in arrivals:
            adopt(space, put_body(blob, space))
        return len(arrivals)

    def _crossings(self, space: pymunk.Space, region: str, leaves: Leaves,
                   step: StepResult) -> Crossings:
        """`region`'s halo and emigrants after its `step`: those of its last step again
        when it rested (nothing moved), else found anew (from the bodies' state the step
        read, when it still holds)."""
        kept = self._halos.get(region)
        if step.rested and kept is not None:
            return Crossings(halo=kept)
        found = crossings(space, region, leaves, step.seen)
        self._halos[region] = found.halo
        return found

    def _ghosts(self, region: str, leaves: Leaves, gathered: Gathered) -> list[GhostRow]:
        """Ghosts of `region`'s neighbours' bodies near it, and of its own last emigrants
        (they are in their new regions' halos only from that region's next step)."""
        bounds, reach = leaves.world.bounds(region), leaves.world.halo
        near = [row for n in leaves.neighbours(region)
                for row in ghosts_near(region, bounds, gathered.halos.get(n, ()), reach)]
        return near + self._departed.pop(region, [])

    def _leaves(self, stepping: Sequence[str], world: World) -> Leaves:
        """The regions this unit knows of: the owner map's, its own, and those it steps."""
        names = frozenset(self.view.owners).union(self.spaces, stepping)
        if self._known is None or self._known.names != names or self._known.world != world:
            self._known = Leaves(names, world)
        return self._known

    def change(self, region: str, spawns: Sequence[BodySpawn], removals: Sequence[str],
               epoch: int, links: Links) -> BodiesChanged | None:
        """Spawn and remove bodies of `region` (removals first); None if this unit cannot
        do it now: the region is another unit's (`view.owner_of` says which) or its space
        is still on its way here."""
        with self._lock:
            if epoch > self.view.epoch:
                self._follow(links)
            region = self._changed_region(region, spawns, links)
            space = self._space(region, links)
            if space is None:
                return None
            gone = self._remove(space, set(removals))
            present = named(space)
            fresh = [b for b in spawns if b.body_id not in present]
            for body in fresh:
                spawn(space, body)
            return BodiesChanged(
                tuple(b.body_id for b in fresh), tuple(sorted(gone)),
                tuple(b.body_id for b in spawns if b.body_id in present),
                tuple(sorted(set(removals) - gone)))

    def _remove(self, space: pymunk.Space, ids: set[str]) -> set[str]:
        """Remove the bodies named in `ids` from `space`, and those it does not hold from
        the unit's other spaces (a body may have crossed since it was spawned; one that
        crossed to another unit stays)."""
        gone = remove(space, ids) if ids else set()
        for other in self.spaces.values():
            if len(gone) == len(ids):
                break
            if other is not space:
                gone |= remove(other, ids - gone)
        return gone

    def owner_of(self, name: str, links: Links) -> int:
        """The unit owning the region `name` stands for now (its first, when split)."""
        return self.view.owner_of(self._map(links.world).resolve(name)[0], links.units)

    def _changed_region(self, name: str, spawns: Sequence[BodySpawn], links: Links) -> str:
        """The region a change named `name` goes to: `name`, or the region replacing it
        that holds the first spawn (a body spawned in a sibling crosses there at its next
        step), or the first of them."""
        targets = self._map(links.world).resolve(name)
        if len(targets) == 1:
            return targets[0]
        inside = Leaves(frozenset(targets), links.world)
        first = inside.find(*spawns[0].position) if spawns else None
        return first or targets[0]

    def _cost(self, region: str, cpu_ms: float) -> float:
        """The median of `region`'s last `COST_STEPS` steps' CPU times, this one included
        (CPU, not wall time: a unit preempted on a busy machine does not look costlier)."""
        recent = self._recent.setdefault(region, deque(maxlen=COST_STEPS))
        recent.append(cpu_ms)
        return statistics.median(recent)

    def _follow(self, links: Links) -> tuple[str, ...]:
        """Read the newer owner map; split or merge spaces to its regions
        (`app.physics.reshape`); hand over every space it gives to another unit."""
        self.view = links.owners.read()
        self._mapped = None
        retired = reshape(self.spaces, self._map(links.world), links.world)
        if retired:
            self._retire(retired, links)
        leaving = [r for r in self.spaces if self.view.owner_of(r, links.units) != self.number]
        for region in leaving:
            links.handover.put(region, pack_space(self.spaces.pop(region)))
            self._forget(region)
        pending = self._local.gather(leaving, []).arrivals  # bodies on their way to them
        if pending:
            links.borders.scatter({}, pending)
        return tuple(leaving)

    def _forget(self, region: str) -> None:
        """Drop what this unit kept of `region`'s steps: it left the unit, or was retired."""
        for cache in (self._recent, self._pools, self._departed, self._halos):
            cache.pop(region, None)

    def _retire(self, retired: Retired, links: Links) -> None:
        """Forget what this unit kept of the retired regions; bodies on their way to them
        go to the regions that replaced them, and for `RETIRED_S` so do those still sent
        to their names by a unit with an older map."""
        now = time.monotonic()
        for name, targets in retired.items():
            self._forget(name)
            self._retired[name] = (targets, now)
        pending = self._local.gather(list(retired), []).arrivals
        for name, arrivals in pending.items():
            self._arrive(self.spaces[retired[name][0]], arrivals)

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
            space = new_space(region, links.world)
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
            space = new_space(region, links.world)
        else:
            return None
        del self._awaited[region]
        links.owners.settle(region)
        return space


def _leave(space: pymunk.Space, region: str, found: Crossings, outgoing: Outgoing) -> None:
    """Take `region`'s emigrants out of `space` into `outgoing`, with its halo."""
    outgoing.halos[region] = found.halo
    for order, (target, body) in enumerate(found.emigrants):
        outgoing.migrants.setdefault(target, []).append((region, order, take_body(body, space)))
    release(space, [body for _, body in found.emigrants])


MEMORY_BORDERS = MemoryBorders()
_UNITS: dict[int, Unit] = {}
_UNITS_LOCK = threading.Lock()


def unit(number: int) -> Unit:
    """This process's unit `number` (a unit's worker holds one; the embedded fleet, all)."""
    with _UNITS_LOCK:
        return _UNITS.setdefault(number, Unit(number))
