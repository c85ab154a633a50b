"""The ground NPCs walk on: the world cut into square cells, each open or blocked.

A cell is ``(column, row)``, from the world's origin.  Blocking or opening cells bumps the
grid's `version`, so a path planned on an older version is checked again before it is
followed (`app.ai.paths.Route`).
"""

from __future__ import annotations

import json
import math
import threading
from collections.abc import Iterable
from pathlib import Path

from app.errors import InvalidRequest

Cell = tuple[int, int]
Point = tuple[float, float]
MAX_SIDE = 2048  # cells along a side: a pathfinding grid of 4 million nodes at most


class NavGrid:
    """A square world of `size` units in cells of `cell` units, some of them blocked."""

    def __init__(self, size: float, cell: float, blocked: Iterable[Cell] = ()) -> None:
        if not (math.isfinite(size) and size > 0):
            raise InvalidRequest("size", size, "expected a positive world size")
        if not (math.isfinite(cell) and 0 < cell <= size):
            raise InvalidRequest("cell", cell, f"expected a cell size in (0, {size:g}]")
        if math.ceil(size / cell) > MAX_SIDE:
            raise InvalidRequest("cell", cell, f"expected at most {MAX_SIDE} cells along "
                                 f"the world's {size:g} (a cell of {size / MAX_SIDE:g} or more)")
        self.size, self.cell = float(size), float(cell)
        self.side = math.ceil(self.size / self.cell)
        self.version = 0
        self._blocked: frozenset[Cell] = frozenset()
        self._lock = threading.Lock()
        self.block(blocked)
        self.version = 0  # a grid starts at version 0, whatever it was made with

    @property
    def blocked(self) -> frozenset[Cell]:
        """The blocked cells now."""
        return self._blocked

    def inside(self, cell: Cell) -> bool:
        """Whether `cell` is on the grid."""
        return 0 <= cell[0] < self.side and 0 <= cell[1] < self.side

    def walkable(self, cell: Cell) -> bool:
        """Whether `cell` is on the grid and open."""
        return self.inside(cell) and cell not in self._blocked

    def cell_of(self, point: Point) -> Cell | None:
        """The cell `point` lies in, None off the world (the far edges belong to it)."""
        x, y = point
        if not (0.0 <= x <= self.size and 0.0 <= y <= self.size):
            return None
        last = self.side - 1
        return min(int(x // self.cell), last), min(int(y // self.cell), last)

    def centre(self, cell: Cell) -> Point:
        """The middle of `cell`, in world units."""
        return (cell[0] + 0.5) * self.cell, (cell[1] + 0.5) * self.cell

    def block(self, cells: Iterable[Cell]) -> None:
        """Block `cells` (each on the grid, or InvalidRequest naming it; none is blocked
        then)."""
        self._change(cells, blocked=True)

    def open(self, cells: Iterable[Cell]) -> None:
        """Open `cells` again (each on the grid, or InvalidRequest naming it)."""
        self._change(cells, blocked=False)

    def _change(self, cells: Iterable[Cell], *, blocked: bool) -> None:
        wanted = set()
        for i, cell in enumerate(cells):
            if (not isinstance(cell, tuple) or len(cell) != 2
                    or not all(isinstance(c, int) for c in cell) or not self.inside(cell)):
                raise InvalidRequest(f"cells.{i}", cell,
                                     f"expected a (column, row) from 0 to {self.side - 1}")
            wanted.add(cell)
        if not wanted:
            return
        with self._lock:
            changed = (self._blocked | wanted) if blocked else (self._blocked - wanted)
            if changed != self._blocked:
                self._blocked = frozenset(changed)
                self.version += 1

    def rows(self) -> list[list[int]]:
        """The grid as rows of 1 (open) and 0 (blocked), row by row from the origin."""
        blocked = self._blocked
        return [[0 if (x, y) in blocked else 1 for x in range(self.side)]
                for y in range(self.side)]


def load_map(path: str | Path, size: float, cell: float) -> NavGrid:
    """The grid of a map file: JSON ``{"blocked": [[x0, y0, x1, y1], ...]}``, rectangles
    in world units whose cells are blocked (every cell a rectangle overlaps).  A file that
    cannot be read or a bad rectangle raises InvalidRequest naming it (``blocked.3``)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise InvalidRequest("ai_map", str(path),
                             f"expected a readable JSON file ({exc})") from None
    rects = data.get("blocked") if isinstance(data, dict) else None
    if not isinstance(rects, list):
        raise InvalidRequest("blocked", rects, "expected a list of [x0, y0, x1, y1]")
    plan = NavGrid(size, cell)  # the geometry the rectangles are measured against
    return NavGrid(size, cell, [c for i, rect in enumerate(rects) for c in _cells(plan, i, rect)])


def _cells(nav: NavGrid, index: int, rect: object) -> list[Cell]:
    """The cells rectangle `rect` (the `index`-th) overlaps."""
    if (not isinstance(rect, list) or len(rect) != 4
            or not all(isinstance(v, int | float) and not isinstance(v, bool) for v in rect)):
        raise InvalidRequest(f"blocked.{index}", rect, "expected [x0, y0, x1, y1]")
    x0, y0, x1, y1 = (float(v) for v in rect)
    if not (0 <= x0 < x1 <= nav.size and 0 <= y0 < y1 <= nav.size):
        raise InvalidRequest(f"blocked.{index}", rect,
                             f"expected 0 <= x0 < x1 <= {nav.size:g}, and so y0, y1")
    last = nav.side - 1
    cols = range(int(x0 // nav.cell), min(last, math.ceil(x1 / nav.cell) - 1) + 1)
    rows = range(int(y0 // nav.cell), min(last, math.ceil(y1 / nav.cell) - 1) + 1)
    return [(c, r) for c in cols for r in rows]
