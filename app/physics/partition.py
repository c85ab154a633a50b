"""The world partitioned by proximity: an adaptive quadtree over the square world.

A region is a leaf of the tree, named by its path from the root: ``w`` is the whole world,
and each level adds the quarter taken, ``0`` south-west, ``1`` south-east, ``2`` north-west,
``3`` north-east (``w31`` is the north-east quarter's south-east quarter).  A region's
bounds are half-open, ``[x0, x1) x [y0, y1)``, except on the world's far edges, which
belong to the regions along them, so every position of the world lies in exactly one
region.

`Partition.adapt` follows the load (players and bodies, weighted as the caller likes): a
region carrying more than `split_above` splits into its four quarters, and four sibling
regions carrying together less than `merge_below` merge back into their parent.  The
thresholds are hysteresis: `merge_below` may be at most half of `split_above`, so a region
just split carries more than twice what would merge it, and a region just merged carries
less than half of what would split it.  Nothing flaps between two calls with the same
load.  One call splits or merges one level; a crowd pouring in deepens the tree over
successive calls, at most to `max_depth`.
"""

from __future__ import annotations

from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field
from functools import lru_cache

from app.errors import InvalidRequest

ROOT = "w"
QUARTERS = "0123"  # south-west, south-east, north-west, north-east


@dataclass(frozen=True)
class Bounds:
    """A region's rectangle: ``[x0, x1) x [y0, y1)``, closed on the world's far edges."""

    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def area(self) -> float:
        """Its area."""
        return (self.x1 - self.x0) * (self.y1 - self.y0)

    def touches(self, other: Bounds) -> bool:
        """True if the two rectangles share an edge or a corner (or overlap)."""
        return (self.x0 <= other.x1 and other.x0 <= self.x1
                and self.y0 <= other.y1 and other.y0 <= self.y1)


def is_region_name(name: str, max_depth: int) -> bool:
    """Whether `name` names a node of a quadtree no deeper than `max_depth`."""
    return (name[:1] == ROOT and len(name) - 1 <= max_depth
            and all(c in QUARTERS for c in name[1:]))


@lru_cache(maxsize=8192)
def region_bounds(region: str, size: float) -> Bounds:
    """The rectangle of the node `region` in a world of `size` (its name alone fixes it)."""
    if region[:1] != ROOT or any(c not in QUARTERS for c in region[1:]):
        raise InvalidRequest("region", region, "not a region name")
    x0, y0, x1, y1 = 0.0, 0.0, size, size
    for quarter in region[1:]:
        q = int(quarter)
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        x0, x1 = (xm, x1) if q & 1 else (x0, xm)
        y0, y1 = (ym, y1) if q & 2 else (y0, ym)
    return Bounds(x0, y0, x1, y1)


@lru_cache(maxsize=16)
def touching(names: tuple[str, ...], max_depth: int) -> dict[str, frozenset[str]]:
    """Which of `names` share an edge or a corner, by their quadtree names alone; a name
    off the quadtree, or deeper than `max_depth`, touches none (remembered: the same
    regions are asked about frame after frame)."""
    bounds = {n: region_bounds(n, 1.0) for n in names if is_region_name(n, max_depth)}
    return {n: frozenset(m for m, b in bounds.items() if m != n and bounds[n].touches(b))
            if n in bounds else frozenset() for n in names}


def locate(x: float, y: float, size: float, regions: Container[str],
           above: Container[str] | None = None) -> str | None:
    """The node of `regions` holding ``(x, y)`` (inside a world of `size`), walking down
    the quadtree from the root; None if the walk reaches a node that is neither in
    `regions` nor in `above` (the nodes some region lies under; None: every node)."""
    node, x0, y0, x1, y1 = ROOT, 0.0, 0.0, size, size
    while node not in regions:
        if above is not None and node not in above:
            return None
        xm, ym = (x0 + x1) / 2, (y0 + y1) / 2
        east, north = x >= xm, y >= ym
        node += QUARTERS[east + 2 * north]
        x0, x1 = (xm, x1) if east else (x0, xm)
        y0, y1 = (ym, y1) if north else (y0, ym)
    return node


@dataclass(frozen=True)
class Changes:
    """What one `Partition.adapt` did: each split region and each merged parent."""

    splits: tuple[str, ...] = ()
    merges: tuple[str, ...] = ()


@dataclass
class Partition:
    """An adaptive quadtree over the world ``[0, size] x [0, size]``; see the module."""

    size: float
    split_above: float
    merge_below: float
    max_depth: int = 8
    _leaves: set[str] = field(default_factory=lambda: {ROOT}, init=False, repr=False)

    def __post_init__(self) -> None:
        if not self.size > 0:
            raise InvalidRequest("size", self.size, "expected a positive world size")
        if not self.split_above > 0:
            raise InvalidRequest("split_above", self.split_above, "expected a positive load")
        if not 0 <= self.merge_below <= self.split_above / 2:
            raise InvalidRequest("merge_below", self.merge_below,
                                 f"expected 0 to half of split_above ({self.split_above:g})")
        if not 0 <= self.max_depth <= 20:
            raise InvalidRequest("max_depth", self.max_depth, "expected 0 to 20")

    @classmethod
    def covering(cls, regions: Iterable[str], size: float, split_above: float,
                 merge_below: float, max_depth: int = 8) -> Partition:
        """The partition whose regions include `regions` (quadtree names), the rest of the
        world filled with the coarsest regions beside them (a region with a finer one
        inside it is split)."""
        partition = cls(size, split_above, merge_below, max_depth)
        for region in sorted(regions, key=len):
            if not is_region_name(region, max_depth):
                raise InvalidRequest("region", region, "not a region name")
            node = ROOT
            for quarter in region[1:]:
                if node in partition._leaves:
                    partition.split(node)
                node += quarter
        return partition

    def regions(self) -> list[str]:
        """Every region, in name order."""
        return sorted(self._leaves)

    def bounds(self, region: str) -> Bounds:
        """The rectangle of `region` (a region of the partition or any node of the tree)."""
        return region_bounds(region, self.size)

    def region_of(self, x: float, y: float) -> str:
        """The region holding the position ``(x, y)``."""
        if not (0.0 <= x <= self.size and 0.0 <= y <= self.size):  # NaN fails both
            raise InvalidRequest("position", (x, y), f"outside the world [0, {self.size:g}]")
        region = locate(x, y, self.size, self._leaves)
        assert region is not None  # the regions cover the world
        return region

    def neighbours(self, region: str) -> list[str]:
        """The regions sharing an edge or a corner with `region`, in name order."""
        self._leaf(region)
        mine = self.bounds(region)
        return sorted(r for r in self._leaves if r != region and mine.touches(self.bounds(r)))

    def split(self, region: str) -> tuple[str, ...]:
        """Split `region` into its four quarters; returns their names."""
        self._leaf(region)
        if len(region) - 1 >= self.max_depth:
            raise InvalidRequest("region", region, f"already at max_depth {self.max_depth}")
        children = tuple(region + q for q in QUARTERS)
        self._leaves.remove(region)
        self._leaves.update(children)
        return children

    def merge(self, parent: str) -> str:
        """Merge the four quarters of `parent`, each a region, back into it."""
        children = [parent + q for q in QUARTERS]
        if parent in self._leaves or not all(c in self._leaves for c in children):
            raise InvalidRequest("region", parent, "its four quarters are not all regions")
        self._leaves.difference_update(children)
        self._leaves.add(parent)
        return parent

    def tally(self, positions: Iterable[tuple[float, float]],
              weights: Iterable[float] | None = None) -> dict[str, float]:
        """The load of each region from entities at `positions` (each weighing 1, or its
        entry of `weights`); regions without any are absent."""
        load: dict[str, float] = {}
        weight_of = iter(weights) if weights is not None else None
        for x, y in positions:
            region = self.region_of(x, y)
            load[region] = load.get(region, 0.0) + (next(weight_of) if weight_of else 1.0)
        return load

    def adapt(self, load: Mapping[str, float],
              may_merge: Callable[[str], bool] = lambda parent: True) -> Changes:
        """Split the regions carrying more than `split_above` and merge the sibling
        quartets carrying less than `merge_below` together (a region absent from `load`
        carries nothing; a parent `may_merge` refuses stays split); one level per call."""
        splits = tuple(r for r in sorted(self._leaves)
                       if load.get(r, 0.0) > self.split_above and len(r) - 1 < self.max_depth)
        merges = tuple(p for p in self._mergeable()
                       if sum(load.get(p + q, 0.0) for q in QUARTERS) < self.merge_below
                       and may_merge(p))
        for region in splits:
            self.split(region)
        for parent in merges:
            self.merge(parent)
        return Changes(splits, merges)

    def _mergeable(self) -> list[str]:
        parents = {r[:-1] for r in self._leaves if len(r) > 1}
        return sorted(p for p in parents if all(p + q in self._leaves for q in QUARTERS))

    def _leaf(self, region: str) -> None:
        if region not in self._leaves:
            raise InvalidRequest("region", region, "no such region in the partition")
