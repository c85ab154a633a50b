"""Which physics unit owns each region: the regions in Hilbert-curve order, cut into runs
of about equal cost, one run per unit.

Along a Hilbert curve every quadtree cell is one stretch of the curve, so a unit's run is a
patch of neighbouring regions, and a region's quarters, when it splits, stay where it was.
Units own their runs in curve order (unit 0 first); an `Assignment` keeps the cuts between
runs as places on the curve, so splits and merges need no bookkeeping.

Two bounds hold, and the tests check both:

- **Balance.** No unit carries more than the mean plus the costliest single region (a cut
  falls between regions, at most half a region from its ideal place at each end).
- **Moves.** `rebalance` leaves the assignment alone while the costliest unit is within
  `tolerance` of the mean; otherwise it moves only the cuts, so a region changes owner
  only if a cut passed over it, and no assignment of contiguous runs in that order moves
  fewer.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from hilbertcurve.hilbertcurve import HilbertCurve

from app.errors import InvalidRequest
from app.physics.partition import Partition, region_bounds


def curve_order(partition: Partition) -> list[tuple[int, str]]:
    """Each region with its place on the Hilbert curve, in curve order."""
    return curve_places(partition.regions(), partition.max_depth)


def curve_places(regions: Iterable[str], max_depth: int) -> list[tuple[int, str]]:
    """Each of `regions` (quadtree region names, none deeper than `max_depth`) with its
    place on the Hilbert curve, in curve order: the place depends on the name alone."""
    order = max_depth + 1
    curve = HilbertCurve(order, 2)
    cells = 2**order
    places = []
    for region in regions:
        b = region_bounds(region, 1.0)  # the name fixes the place, whatever the world's size
        if len(region) - 1 > max_depth:
            raise InvalidRequest("region", region, f"deeper than max_depth {max_depth}")
        # the grid cell just north-east of the region's centre lies inside the region
        x = min(cells - 1, int((b.x0 + b.x1) / 2 * cells))
        y = min(cells - 1, int((b.y0 + b.y1) / 2 * cells))
        places.append((int(curve.distance_from_point([x, y])), region))
    return sorted(places)


@dataclass(frozen=True)
class Assignment:
    """Unit k owns the regions whose place on the curve is at or past ``cuts[k - 1]`` and
    before ``cuts[k]`` (unit 0 from the start, the last unit to the end)."""

    units: int
    cuts: tuple[int, ...]

    def owner(self, place: int) -> int:
        """The unit owning the region at `place` on the curve."""
        return bisect_right(self.cuts, place)

    def owners(self, partition: Partition) -> dict[str, int]:
        """Every region's unit."""
        return {region: self.owner(place) for place, region in curve_order(partition)}

    def unit_costs(self, partition: Partition, costs: Mapping[str, float]) -> list[float]:
        """What each unit carries."""
        load = [0.0] * self.units
        for region, unit in self.owners(partition).items():
            load[unit] += costs.get(region, 0.0)
        return load


def assign(partition: Partition, costs: Mapping[str, float], units: int) -> Assignment:
    """Cut the regions, in curve order, into `units` runs of about equal cost (by count
    when nothing costs anything)."""
    return assign_places(curve_order(partition), costs, units)


def assign_places(order: Sequence[tuple[int, str]], costs: Mapping[str, float],
                  units: int) -> Assignment:
    """`assign` for regions already in curve order (`curve_places`)."""
    if units < 1:
        raise InvalidRequest("units", units, "expected at least one physics unit")
    for region, cost in costs.items():
        if not cost >= 0:  # NaN too
            raise InvalidRequest(f"costs.{region}", cost, "expected a cost >= 0")
    weights = [costs.get(region, 0.0) for _, region in order]
    if not sum(weights):
        weights = [1.0] * len(order)
    return Assignment(units, _cuts([place for place, _ in order], weights, units))


def _cuts(places: Sequence[int], weights: Sequence[float], units: int) -> tuple[int, ...]:
    total, cuts, before, i = sum(weights), [], 0.0, 0
    for k in range(1, units):
        target = total * k / units
        while i < len(weights) and before + weights[i] / 2 < target:  # nearer past it
            before += weights[i]
            i += 1
        cuts.append(places[i] if i < len(places) else (places[-1] + 1 if places else 0))
    return tuple(cuts)


def max_over_mean(partition: Partition, assignment: Assignment,
                  costs: Mapping[str, float]) -> float:
    """The costliest unit's load over the mean (1.0 when nothing costs anything)."""
    load = assignment.unit_costs(partition, costs)
    mean = sum(load) / len(load)
    return max(load) / mean if mean > 0 else 1.0


def rebalance(partition: Partition, current: Assignment, costs: Mapping[str, float],
              tolerance: float = 0.10) -> tuple[Assignment, list[str]]:
    """`current` while its costliest unit is within `tolerance` of the mean, else the
    cuts moved to balance `costs`; returns the assignment and the regions that changed
    unit."""
    if not tolerance >= 0:
        raise InvalidRequest("tolerance", tolerance, "expected a fraction >= 0")
    if max_over_mean(partition, current, costs) <= 1.0 + tolerance:
        return current, []
    new = assign(partition, costs, current.units)
    moved = [region for place, region in curve_order(partition)
             if new.owner(place) != current.owner(place)]
    return new, moved
