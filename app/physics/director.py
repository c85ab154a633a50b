"""The director: keeps the physics units balanced by moving regions between them, uses no
more units than the load needs, and keeps the partition in step with the load (`reshape`:
a crowded or costly region splits into its quarters, quiet quarters merge back).

Each controller tick it reads what the units noted of each region's last step
(`app.physics.units.RegionNote`) and keeps a smoothed cost per region (the median of its
last steps' CPU times as its unit measured them, so a unit preempted on a busy machine
does not look costlier, in an exponentially weighted mean).  While the costliest unit
carries no more than `tolerance` (10 %) over the mean, nothing moves.  Otherwise it cuts
the regions, in Hilbert-curve order, into one run of about equal cost per unit
(`app.physics.ownership`), and publishes the owner map with the regions that changed unit
in transit, so their spaces are handed over whole (`app.physics.units`).

Three guards keep it from churning:

- it moves only when the new cut is better than the current placement by more than the
  tolerance, so a placement no cut can improve (one region costlier than a unit's fair
  share) stays put;
- after a move it waits `settle_s` (5 s) for the costs to reflect it, and while any region
  is still in transit (a publish replaces the transit list);
- a region not stepped for `idle_s` (10 s) is left where it is and out of the balance.

A region too costly for a frame that cannot split is slowed instead (`app.physics.slowed`),
unless it has players; the director publishes the slowed regions when they change.

It also packs the regions onto as few units as the load needs: enough that no unit's
regions together take more than `unit_budget_ms` (4 ms) to step in a frame.  Every unit a
frame reaches costs a task (about a millisecond of a worker, whatever it carries) and the
frame waits for the slowest of them: on the two-core machine of the measurements, the
light physics of ``steady`` ran within 16 ms 0.97 of the time on one unit and 0.81 to
0.84 split over two, while ``physics-peak`` did better on two (docs/measurements.md).  A
unit is given back only once the others would carry at most 70 % of their budget, and a
unit is taken or given back only once the load has asked for that for `hold_s` (3 s) in a
row (one run at 5,000 players went from one unit to two and back near the boundary).

Only quadtree region names (``w`` and quarters, `app.physics.partition`) are balanced: the
curve gives them their order.  Other names keep the unit their name fixes
(`app.physics.owners.fallback_unit`).
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from app.errors import InvalidRequest
from app.physics.notes import RegionNote
from app.physics.owners import OwnerView
from app.physics.ownership import assign_places, curve_places
from app.physics.partition import QUARTERS, Partition, is_region_name
from app.physics.slowed import slowed
from app.physics.units import Links
from app.physics.world import World, in_world, resolve

MAX_DEPTH = 8
# A unit's share of a frame: the step times of its regions together.  The rest of the 16 ms
# frame goes to delivering the task and to what else runs on the machine.
UNIT_BUDGET_MS = 4.0
SHRINK_BELOW = 0.7
SPLIT_ABOVE = 1000.0  # bodies plus players in one region


@dataclass(frozen=True)
class Plan:
    """A rebalance: the whole owner map, the regions that change unit (region to the unit
    it leaves), and the costliest unit over the mean before and after, by the smoothed
    costs of the active regions."""

    owners: dict[str, int]
    moving: dict[str, int]
    before: float
    after: float
    splits: tuple[str, ...] = ()  # regions cut into their quarters (a reshape)
    merges: tuple[str, ...] = ()  # parents whose quarters became one region again


@dataclass(frozen=True)
class Move:
    """A published rebalance: the new map's epoch and its plan."""

    epoch: int
    plan: Plan


@dataclass
class Director:
    """Balances regions across `units` physics units (see the module)."""

    units: int
    tolerance: float = 0.10
    settle_s: float = 5.0
    idle_s: float = 10.0
    smoothing: float = 0.3  # the newest step time's weight in a region's cost
    unit_budget_ms: float = UNIT_BUDGET_MS
    hold_s: float = 3.0  # how long the load must want another number of units
    split_above: float = SPLIT_ABOVE  # a region's bodies and players past which it splits
    merge_below: float = SPLIT_ABOVE / 2  # four quarters carrying less merge again
    reshape_every_s: float = 2.0
    costs: dict[str, float] = field(default_factory=dict)
    _pending: tuple[int, float] | None = None  # the number of units wanted, and since when
    _seen: dict[str, tuple[int, float]] = field(default_factory=dict)  # region -> (steps, at)
    slowed: dict[str, float] = field(default_factory=dict)  # as last published
    _moved_at: float = -math.inf
    _reshaped_at: float = -math.inf
    _slowed_published: bool = False

    def __post_init__(self) -> None:
        if self.units < 1:
            raise InvalidRequest("units", self.units, "expected at least one physics unit")
        if not self.tolerance >= 0:
            raise InvalidRequest("tolerance", self.tolerance, "expected a fraction >= 0")
        if not self.unit_budget_ms > 0:
            raise InvalidRequest("unit_budget_ms", self.unit_budget_ms, "expected a positive time")

    def observe(self, notes: Mapping[str, RegionNote]) -> None:
        """Fold each region's newest step into its cost (a note already seen changes
        nothing)."""
        for region, note in notes.items():
            if self._seen.get(region) == (note.steps, note.at):
                continue
            self._seen[region] = (note.steps, note.at)
            cost, old = note.cost_ms or note.step_ms, self.costs.get(region)
            self.costs[region] = cost if old is None else old + self.smoothing * (cost - old)

    def plan(self, view: OwnerView, now: float) -> Plan | None:
        """The rebalance due now, or None when the placement stands."""
        if now - self._moved_at < self.settle_s or view.moving:
            return None  # costs settling, or spaces still on their way: a publish drops them
        mapped = {r for r in view.owners if _balanced(r)}
        active = sorted(r for r in self.costs if _balanced(r) and self._active(r, now)
                        and resolve(r, mapped) == (r,))  # not a name split or merged away
        if not active:
            return None
        current = {r: view.owner_of(r, self.units) for r in active}
        using = len(set(current.values()))
        wanted = self._held(self._wanted(sum(self.costs[r] for r in active), using), using, now)
        before = self._max_over_mean(current)
        if wanted == using and before <= 1.0 + self.tolerance:
            if all(r in view.owners for r in active):
                return None
            # name every region in the map, where it is: units route a body crossing a
            # border by the regions they know (app.physics.world)
            return Plan({**view.owners, **current}, {}, round(before, 4), round(before, 4))
        order = curve_places(active, MAX_DEPTH)
        cut = assign_places(order, self.costs, wanted)
        proposed = {region: cut.owner(place) for place, region in order}
        after = self._max_over_mean(proposed)
        if wanted == using and after * (1.0 + self.tolerance) >= before:
            return None  # no cut does much better: moving would only churn
        moving = {r: current[r] for r in active if proposed[r] != current[r]}
        return Plan({**view.owners, **proposed}, moving, round(before, 4), round(after, 4))

    def _held(self, wanted: int, using: int, now: float) -> int:
        """`wanted` once the load has wanted it for `hold_s` in a row, else `using`."""
        if wanted == using:
            self._pending = None
            return using
        if self._pending is None or self._pending[0] != wanted:
            self._pending = (wanted, now)
        return wanted if now - self._pending[1] >= self.hold_s else using

    def _wanted(self, total_ms: float, using: int) -> int:
        """The units a frame's steps of `total_ms` need: enough that none carries more than
        `unit_budget_ms`, but one fewer than the `using` now only once the rest would carry
        at most `SHRINK_BELOW` of their budget (so a load near a boundary does not flap)."""
        need = max(1, min(self.units, math.ceil(total_ms / self.unit_budget_ms)))
        if need < using and total_ms > (using - 1) * self.unit_budget_ms * SHRINK_BELOW:
            return using
        return need

    def reshape(self, view: OwnerView, notes: Mapping[str, RegionNote],
                players: Mapping[str, int], world: World, now: float) -> Plan | None:
        """The partition's next step, or None: a region carrying more than `split_above`
        (its bodies, as its unit last noted them, plus its players), or whose step costs
        more than a unit's frame budget (`unit_budget_ms`: a pile-up of contacts), splits
        into its quarters on its unit, which the balancing can then spread over units;
        four quarters of one unit carrying together less than `merge_below` (and costing
        less than half the budget) merge (the hysteresis of `app.physics.partition`).  One level per
        call, at most every `reshape_every_s`, never while a region is in transit, and no
        region narrower than four halos."""
        if view.moving or now - self._reshaped_at < self.reshape_every_s:
            return None
        fresh = {r: n for r, n in notes.items() if in_world(r) and now - n.at <= self.idle_s}
        names = _partition_names(view, fresh)
        if not names:
            return None
        deepest = max(len(n) - 1 for n in names)  # a game server may name finer regions
        partition = Partition.covering(names, world.size, self.split_above, self.merge_below,
                                       max(deepest, MAX_DEPTH))
        partition.max_depth = split_depth(world)
        load = _load(partition.regions(), fresh, players)
        for region in load:  # a step costlier than a unit's budget splits whatever it holds
            cost = self.costs.get(region, 0.0)
            load[region] = max(load[region], cost / self.unit_budget_ms * self.split_above)
        changes = partition.adapt(load, lambda p: len(
            {view.owner_of(p + q, self.units) for q in QUARTERS}) == 1)
        leaves = partition.regions()
        if not changes.splits and not changes.merges and set(leaves) <= set(view.owners):
            return None
        self._reshaped_at = now
        owners = {r: u for r, u in view.owners.items() if not in_world(r)}  # arenas stay
        for leaf in leaves:
            source = leaf + "0" if leaf in changes.merges else leaf
            owners[leaf] = view.owners.get(source, view.owner_of(
                leaf[:-1] if leaf[:-1] in changes.splits else source, self.units))
        return Plan(owners, {}, 1.0, 1.0, changes.splits, changes.merges)

    def direct(self, links: Links, now: float | None = None) -> Move | None:
        """Observe the units' notes, publish the slowed regions when they change, and a
        reshape or a rebalance if one is due."""
        now = time.time() if now is None else now
        notes = links.notes.read()
        self.observe(notes)
        view = links.owners.read()
        players = links.players.totals()
        self._slow(links, players, now)
        plan = self.reshape(view, notes, players, links.world, now)
        if plan is None:
            plan = self.plan(view, now)
        if plan is None:
            return None
        epoch = links.owners.publish(plan.owners, moving=plan.moving)
        if plan.moving or plan.splits or plan.merges:
            self._moved_at = now
        return Move(epoch, plan)

    def _slow(self, links: Links, players: Mapping[str, int], now: float) -> None:
        """Slow the active regions without players too costly for a frame that cannot
        split (`app.physics.slowed`), and publish them when that changes."""
        depth = split_depth(links.world)
        active = {r: c for r, c in self.costs.items() if self._active(r, now)}
        occupied = _load(list(active), {}, players)  # without notes: players alone
        active = {r: c for r, c in active.items() if not occupied[r]}
        factors = slowed(active, lambda r: in_world(r) and len(r) - 1 < depth,
                         self.unit_budget_ms, self.slowed)
        if factors != self.slowed or not self._slowed_published:
            links.slowed.publish(factors)
            newly = len(set(factors) - set(self.slowed))
            if newly:
                links.notes.count({"slowed": newly})
            self.slowed, self._slowed_published = factors, True

    def _active(self, region: str, now: float) -> bool:
        seen = self._seen.get(region)
        return seen is not None and now - seen[1] <= self.idle_s

    def _max_over_mean(self, owners: Mapping[str, int]) -> float:
        """The costliest unit over the mean of the units in use."""
        load: dict[int, float] = {}
        for region, unit in owners.items():
            load[unit] = load.get(unit, 0.0) + self.costs.get(region, 0.0)
        mean = sum(load.values()) / len(load) if load else 0.0
        return max(load.values()) / mean if mean > 0 else 1.0


def split_depth(world: World) -> int:
    """The partition's deepest level in `world`: no region narrower than four halos."""
    return max(0, min(MAX_DEPTH, int(math.log2(world.size / (4 * world.halo)))))


def _partition_names(view: OwnerView, notes: Mapping[str, RegionNote]) -> set[str]:
    """The regions the partition has: the map's, and those the units step that the map
    does not cover at all (a retired name's notes linger, and are not)."""
    mapped = {r for r in view.owners if in_world(r)}
    return mapped | {r for r in notes if resolve(r, mapped) == (r,)}


def _load(regions: list[str], notes: Mapping[str, RegionNote],
          players: Mapping[str, int]) -> dict[str, float]:
    """Each region's bodies (as its unit last noted them) and players (reported under the
    region, a region it is in, or shared evenly when reported under a region it cuts)."""
    mapped = set(regions)
    load = {r: float(notes[r].bodies) if r in notes else 0.0 for r in regions}
    for name, count in players.items():
        if not in_world(name):
            continue
        targets = resolve(name, mapped)
        for target in targets:
            if target in load:
                load[target] += count / len(targets)
    return load


def _balanced(region: str) -> bool:
    """Whether `region` is a quadtree name the curve can place."""
    return is_region_name(region, MAX_DEPTH)
