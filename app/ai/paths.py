"""Paths across a `NavGrid`: A* search (the ``pathfinding`` package) within a budget,
routes kept between decisions, and steering without a search.

Every query has a defined result (`PathStatus`), and its cells say where to go:

- ``found``: a path from the start's cell to the goal's (both included);
- ``arrived``: start and goal are in one cell: that cell alone;
- ``partial``: the search expanded `budget` cells first: a path to the cell it reached
  nearest the goal (a query never costs more than its budget);
- ``unreachable``: no path exists: a path to the reachable cell nearest the goal;
- ``goal_blocked``: the goal's cell is blocked: a path to the open cell nearest it (within
  `SNAP_RINGS` rings), or no cells if there is none;
- ``start_blocked``: the start's cell is blocked (the map changed under the NPC): the open
  neighbour to step onto, or no cells;
- ``outside``: the start or the goal is off the map (`Path.detail` says which): no cells.
"""

from __future__ import annotations

import math
import threading
import weakref
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pathfinding.core.diagonal_movement import DiagonalMovement
from pathfinding.core.grid import Grid
from pathfinding.finder.a_star import AStarFinder
from pathfinding.finder.finder import ExecutionRunsException

from app.ai.navgrid import Cell, NavGrid, Point

SEARCH_BUDGET = 400  # cells one query may expand (about 3 ms of CPU at most)
SNAP_RINGS = 2  # how far from a blocked goal an open cell is looked for
_LOCAL = threading.local()  # each thread's pathfinding grids (their nodes hold search state)


class PathStatus(StrEnum):
    """What a path query found (see the module)."""

    FOUND = "found"
    ARRIVED = "arrived"
    PARTIAL = "partial"
    UNREACHABLE = "unreachable"
    GOAL_BLOCKED = "goal_blocked"
    START_BLOCKED = "start_blocked"
    OUTSIDE = "outside"


@dataclass(frozen=True)
class Path:
    """A query's result: its status, the cells to walk (start first), the cells it
    expanded, and the grid version it was planned on."""

    status: PathStatus
    cells: tuple[Cell, ...]
    searched: int
    version: int
    detail: str = ""


def find_path(nav: NavGrid, start: Point, goal: Point, budget: int = SEARCH_BUDGET) -> Path:
    """A path from `start` to `goal` (world points) on `nav`, expanding at most `budget`
    cells (see the module for each result)."""
    version = nav.version
    here, there = nav.cell_of(start), nav.cell_of(goal)
    if here is None or there is None:
        return Path(PathStatus.OUTSIDE, (), 0, version, "start" if here is None else "goal")
    if not nav.walkable(here):
        step = nearest_open(nav, here, 1)
        return Path(PathStatus.START_BLOCKED, (step,) if step else (), 0, version)
    if here == there:
        return Path(PathStatus.ARRIVED, (here,), 0, version)
    status = PathStatus.FOUND
    if not nav.walkable(there):
        snapped = nearest_open(nav, there, SNAP_RINGS, toward=here)
        if snapped is None:
            return Path(PathStatus.GOAL_BLOCKED, (), 0, version)
        status, there = PathStatus.GOAL_BLOCKED, snapped
    return _search(nav, here, there, budget, status)


def nearest_open(nav: NavGrid, cell: Cell, rings: int, toward: Cell | None = None) -> Cell | None:
    """The open cell nearest `cell` within `rings` rings around it (`cell` excluded), the
    one nearest `toward` first among equals; None if every one is blocked."""
    best: tuple[float, float, Cell] | None = None
    for dx in range(-rings, rings + 1):
        for dy in range(-rings, rings + 1):
            near = (cell[0] + dx, cell[1] + dy)
            if near == cell or not nav.walkable(near):
                continue
            key = (math.hypot(dx, dy), _octile(near, toward) if toward else 0.0, near)
            if best is None or key < best:
                best = key
    return best[2] if best else None


def steer(nav: NavGrid, start: Point, goal: Point) -> Point:
    """Where an NPC heads without a search: the goal itself when it is in the NPC's cell,
    else the middle of the open neighbouring cell nearest the goal (the NPC's own point
    when it is hemmed in or off the map)."""
    here, there = nav.cell_of(start), nav.cell_of(goal)
    if here is None:
        return start
    if here == there:
        return goal
    best: tuple[float, Cell] | None = None
    for dx in (-1, 0, 1):
        for dy in (-1, 0, 1):
            near = (here[0] + dx, here[1] + dy)
            if (dx or dy) and nav.walkable(near) and _open_corner(nav, here, near):
                key = (math.dist(nav.centre(near), goal), near)
                if best is None or key < best:
                    best = key
    return nav.centre(best[1]) if best else start


@dataclass
class Route:
    """A path an NPC follows over several decisions, toward `goal`'s cell."""

    goal: Cell
    cells: list[Cell]
    version: int
    status: PathStatus

    @classmethod
    def of(cls, nav: NavGrid, path: Path, goal: Point) -> Route | None:
        """The route of `path` toward `goal`, None when it has no cells."""
        there = nav.cell_of(goal)
        if not path.cells or there is None:
            return None
        return cls(there, list(path.cells), path.version, path.status)

    def holds(self, nav: NavGrid) -> bool:
        """Whether every cell still ahead is open on `nav` now (checked again only when the
        grid changed since the route was planned or last checked)."""
        if self.version == nav.version:
            return True
        if all(nav.walkable(c) for c in self.cells):
            self.version = nav.version
            return True
        return False

    def next_point(self, nav: NavGrid, at: Point) -> Point | None:
        """The middle of the next cell ahead of `at` on the route, dropping those passed;
        None when `at` is off the route (or past its end)."""
        here = nav.cell_of(at)
        cells = self.cells  # (read once and replaced whole: two threads may decide one NPC)
        if here is None or here not in cells:
            return None
        ahead = self.cells = cells[cells.index(here):]
        return nav.centre(ahead[1]) if len(ahead) > 1 else nav.centre(here)


class _Search(AStarFinder):  # type: ignore[misc]
    """A* that resets only the nodes its last search touched (a whole grid's cleanup cost
    more than a short search), and keeps them, to find the nearest reached when the goal
    was not."""

    def __init__(self, budget: int) -> None:
        super().__init__(diagonal_movement=DiagonalMovement.only_when_no_obstacle,
                         max_runs=budget, time_limit=math.inf)
        self.touched: list[Any] = []
        self._start: Any = None

    def find_path(self, start: Any, end: Any, grid: Grid) -> tuple[list[Any], int]:
        self._start = start
        result: tuple[list[Any], int] = super().find_path(start, end, grid)
        return result

    def clean_grid(self, grid: Grid) -> None:
        for node in self.touched:
            node.cleanup()
        self.touched = [self._start]

    def process_node(self, graph: Grid, node: Any, parent: Any, end: Any,  # noqa: PLR0917
                     open_list: Any, open_value: Any = True) -> None:  # (the library's)
        self.touched.append(node)
        super().process_node(graph, node, parent, end, open_list, open_value)


def _search(nav: NavGrid, here: Cell, there: Cell, budget: int, status: PathStatus) -> Path:
    grid, finder = _grid(nav)
    finder.max_runs = max(1, budget)
    end = grid.node(*there)
    try:
        nodes, runs = finder.find_path(grid.node(*here), end, grid)
    except ExecutionRunsException:
        cells = _nearest_reached(finder.touched, there)
        return Path(PathStatus.PARTIAL, cells, finder.runs, nav.version)
    if not nodes:
        cells = _nearest_reached(finder.touched, there)
        return Path(PathStatus.UNREACHABLE, cells, runs, nav.version)
    return Path(status, tuple((n.x, n.y) for n in nodes), runs, nav.version)


def _nearest_reached(touched: list[Any], goal: Cell) -> tuple[Cell, ...]:
    """The path to the expanded cell nearest `goal` (then the cheapest to reach)."""
    closed = [n for n in touched if n.closed]
    if not closed:
        return ()
    best = min(closed, key=lambda n: (_octile((n.x, n.y), goal), n.g, n.x, n.y))
    cells = []
    node = best
    while node is not None:
        cells.append((node.x, node.y))
        node = node.parent
    return tuple(reversed(cells))


def _grid(nav: NavGrid) -> tuple[Grid, _Search]:
    """This thread's pathfinding grid of `nav` at its version now, and its finder."""
    kept: weakref.WeakKeyDictionary[NavGrid, tuple[int, Grid, _Search]] | None = getattr(
        _LOCAL, "grids", None)
    if kept is None:
        kept = _LOCAL.grids = weakref.WeakKeyDictionary()
    entry = kept.get(nav)
    if entry is None or entry[0] != nav.version:
        entry = kept[nav] = (nav.version, Grid(matrix=nav.rows()), _Search(SEARCH_BUDGET))
    return entry[1], entry[2]


def _open_corner(nav: NavGrid, here: Cell, near: Cell) -> bool:
    """A diagonal step passes only between two open cells (no cutting a corner)."""
    dx, dy = near[0] - here[0], near[1] - here[1]
    return not (dx and dy) or (nav.walkable((here[0] + dx, here[1]))
                               and nav.walkable((here[0], here[1] + dy)))


def _octile(a: Cell, b: Cell | None) -> float:
    if b is None:
        return 0.0
    dx, dy = abs(a[0] - b[0]), abs(a[1] - b[1])
    return max(dx, dy) + (math.sqrt(2) - 1) * min(dx, dy)
