"""Grid paths: every edge case has its defined result, a search never passes its budget,
and a found path is one an NPC can walk (checked against a breadth-first reference)."""

from __future__ import annotations

import heapq
import json
import math
from collections import deque
from itertools import pairwise
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.ai.navgrid import Cell, NavGrid, load_map
from app.ai.paths import PathStatus, Route, find_path, steer
from app.errors import InvalidRequest


def at(cell: Cell, nav: NavGrid) -> tuple[float, float]:
    return nav.centre(cell)


def walkable_path(nav: NavGrid, cells: tuple[Cell, ...]) -> bool:
    """Every cell open, each step to a neighbour, no diagonal between two blocked sides."""
    for a, b in pairwise(cells):
        dx, dy = b[0] - a[0], b[1] - a[1]
        if max(abs(dx), abs(dy)) != 1 or not nav.walkable(b):
            return False
        if dx and dy and not (nav.walkable((a[0] + dx, a[1])) and nav.walkable((a[0], a[1] + dy))):
            return False
    return all(nav.walkable(c) for c in cells)


def reachable(nav: NavGrid, start: Cell) -> set[Cell]:
    """The cells an NPC can reach from `start`: the reference the search is checked by."""
    seen, todo = {start}, deque([start])
    while todo:
        here = todo.popleft()
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                near = (here[0] + dx, here[1] + dy)
                if near in seen or not walkable_path(nav, (here, near)):
                    continue
                seen.add(near)
                todo.append(near)
    return seen


def test_a_path_around_a_wall_is_found_and_walkable() -> None:
    nav = NavGrid(1000.0, 100.0, [(5, y) for y in range(0, 8)])  # a wall with a gap at the top
    path = find_path(nav, at((2, 2), nav), at((8, 2), nav))
    assert path.status is PathStatus.FOUND and path.version == nav.version
    assert path.cells[0] == (2, 2) and path.cells[-1] == (8, 2)
    assert walkable_path(nav, path.cells) and any(y >= 8 for _, y in path.cells)


def test_start_and_goal_in_one_cell_arrive_at_once() -> None:
    nav = NavGrid(1000.0, 100.0)
    path = find_path(nav, (110.0, 120.0), (190.0, 180.0))
    assert (path.status, path.cells, path.searched) == (PathStatus.ARRIVED, ((1, 1),), 0)


def test_an_unreachable_goal_leads_to_the_nearest_cell_reached() -> None:
    nav = NavGrid(1000.0, 100.0, [(5, y) for y in range(10)])  # the world cut in two
    path = find_path(nav, at((1, 5), nav), at((8, 5), nav), budget=10_000)
    assert path.status is PathStatus.UNREACHABLE
    assert path.cells[0] == (1, 5) and path.cells[-1] == (4, 5)  # against the wall
    assert walkable_path(nav, path.cells)


def test_a_blocked_goal_leads_to_the_open_cell_nearest_it() -> None:
    nav = NavGrid(1000.0, 100.0, [(7, 5)])
    path = find_path(nav, at((2, 5), nav), at((7, 5), nav))
    assert path.status is PathStatus.GOAL_BLOCKED and path.cells[-1] == (6, 5)
    boxed = NavGrid(1000.0, 100.0, [(x, y) for x in range(5, 10) for y in range(5, 10)])
    assert find_path(boxed, at((1, 1), boxed), at((7, 7), boxed)).status is (
        PathStatus.GOAL_BLOCKED)
    assert find_path(boxed, at((1, 1), boxed), at((7, 7), boxed)).cells == ()  # none near


def test_a_blocked_start_steps_onto_an_open_neighbour() -> None:
    nav = NavGrid(1000.0, 100.0, [(3, 3), (2, 3), (4, 3), (3, 2), (2, 2), (4, 2), (2, 4),
                                  (3, 4)])
    path = find_path(nav, at((3, 3), nav), at((8, 8), nav))
    assert path.status is PathStatus.START_BLOCKED and path.cells == ((4, 4),)
    walled = NavGrid(300.0, 100.0, [(x, y) for x in range(3) for y in range(3)])
    assert find_path(walled, at((1, 1), walled), at((0, 0), walled)).cells == ()


@pytest.mark.parametrize(("start", "goal", "which"), [
    ((-1.0, 50.0), (50.0, 50.0), "start"), ((50.0, 50.0), (50.0, 1000.5), "goal")])
def test_a_point_off_the_map_has_no_path_and_says_which(
        start: tuple[float, float], goal: tuple[float, float], which: str) -> None:
    path = find_path(NavGrid(1000.0, 100.0), start, goal)
    assert (path.status, path.cells, path.detail) == (PathStatus.OUTSIDE, (), which)


def test_a_search_stops_at_its_budget_with_the_best_partial_path() -> None:
    nav = NavGrid(10_000.0, 100.0, [(x, 50) for x in range(1, 100)])  # a long wall
    path = find_path(nav, at((90, 40), nav), at((90, 60), nav), budget=300)
    assert path.status is PathStatus.PARTIAL and path.searched == 300
    assert path.cells[0] == (90, 40) and walkable_path(nav, path.cells)
    assert path.cells[-1][1] == 49  # as near the goal as the budget reached
    whole = find_path(nav, at((90, 40), nav), at((90, 60), nav), budget=100_000)
    assert whole.status is PathStatus.FOUND and (0, 50) in whole.cells  # round the end


def test_a_route_holds_until_the_map_blocks_a_cell_ahead() -> None:
    nav = NavGrid(1000.0, 100.0)
    goal = at((8, 1), nav)
    route = Route.of(nav, find_path(nav, at((1, 1), nav), goal), goal)
    assert route is not None and route.holds(nav)
    assert route.next_point(nav, at((3, 1), nav)) == at((4, 1), nav)  # passed cells dropped
    nav.block([(0, 9)])  # elsewhere: the route still holds, at the new version
    assert route.holds(nav) and route.version == nav.version
    nav.block([(6, 1)])
    assert not route.holds(nav)
    assert route.next_point(nav, at((1, 5), nav)) is None  # off the route


def test_steering_heads_for_the_open_neighbour_nearest_the_goal_without_cutting_corners() -> None:
    open_ = NavGrid(1000.0, 100.0)
    assert steer(open_, at((2, 2), open_), at((8, 8), open_)) == at((3, 3), open_)
    nav = NavGrid(1000.0, 100.0, [(3, 2), (2, 3)])  # (3, 3) only past a corner: not taken,
    # nor (1, 3) and (3, 1); of the rest, (1, 2) and (2, 1) are as near: the lesser cell
    assert steer(nav, at((2, 2), nav), at((8, 8), nav)) == at((1, 2), nav)
    assert steer(nav, (250.0, 250.0), (260.0, 270.0)) == (260.0, 270.0)  # same cell
    assert steer(nav, (-5.0, 5.0), (500.0, 500.0)) == (-5.0, 5.0)  # off the map: stays


def test_bad_grids_and_cells_are_refused_naming_the_field() -> None:
    with pytest.raises(InvalidRequest, match="cell"):
        NavGrid(1000.0, 0.0)
    with pytest.raises(InvalidRequest, match="cell"):
        NavGrid(10_000_000.0, 1.0)  # millions of cells along a side
    nav = NavGrid(1000.0, 100.0)
    with pytest.raises(InvalidRequest) as refused:
        nav.block([(1, 1), (10, 0)])
    assert refused.value.field == "cells.1" and nav.blocked == frozenset()  # nothing blocked
    assert nav.version == 0 and nav.cell_of((1000.0, 1000.0)) == (9, 9)


@settings(max_examples=120, deadline=None)
@given(st.sets(st.tuples(st.integers(0, 9), st.integers(0, 9)), max_size=45),
       st.tuples(st.integers(0, 9), st.integers(0, 9)),
       st.tuples(st.integers(0, 9), st.integers(0, 9)))
def test_a_goal_is_found_exactly_when_it_can_be_reached_and_the_path_is_shortest_in_steps(
        blocked: set[Cell], start: Cell, goal: Cell) -> None:
    nav = NavGrid(1000.0, 100.0, blocked - {start, goal})
    path = find_path(nav, at(start, nav), at(goal, nav), budget=10_000)
    reached = reachable(nav, start)
    if start == goal:
        assert path.status is PathStatus.ARRIVED
    elif goal in reached:
        assert path.status is PathStatus.FOUND and walkable_path(nav, path.cells)
        assert (path.cells[0], path.cells[-1]) == (start, goal)
        steps = sum(math.dist(a, b) for a, b in pairwise(path.cells))
        assert steps <= _shortest(nav, start, goal) + 1e-9
    else:
        assert path.status is PathStatus.UNREACHABLE and set(path.cells) <= reached


def _shortest(nav: NavGrid, start: Cell, goal: Cell) -> float:
    """Dijkstra over the same moves (1 straight, sqrt 2 diagonal): the optimum."""
    best = {start: 0.0}
    heap = [(0.0, start)]
    while heap:
        d, here = heapq.heappop(heap)
        if here == goal:
            return d
        if d > best[here]:
            continue
        for dx in (-1, 0, 1):
            for dy in (-1, 0, 1):
                near = (here[0] + dx, here[1] + dy)
                if (dx or dy) and walkable_path(nav, (here, near)):
                    nd = d + math.hypot(dx, dy)
                    if nd < best.get(near, math.inf):
                        best[near] = nd
                        heapq.heappush(heap, (nd, near))
    return math.inf


def test_a_map_file_blocks_every_cell_its_rectangles_overlap(tmp_path: Path) -> None:
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"blocked": [[250.0, 0.0, 350.0, 800.0], [0, 950, 1000, 1000]]}))
    nav = load_map(path, 1000.0, 100.0)
    assert nav.version == 0
    assert nav.blocked == {(c, r) for c in (2, 3) for r in range(8)} | {
        (c, 9) for c in range(10)}
    route = find_path(nav, nav.centre((0, 0)), nav.centre((5, 0)))
    assert route.status is PathStatus.FOUND and (4, 8) in route.cells  # round the wall's end


@pytest.mark.parametrize(("content", "field"), [
    ("not json", "ai_map"), ('{"walls": []}', "blocked"),
    ('{"blocked": [[0, 0, 100, 100], [50, 50, 10]]}', "blocked.1"),
    ('{"blocked": [[500, 0, 400, 100]]}', "blocked.0"),
    ('{"blocked": [[0, 0, 100, 2000]]}', "blocked.0")])
def test_a_bad_map_file_is_refused_naming_what_is_wrong(tmp_path: Path, content: str,
                                                       field: str) -> None:
    path = tmp_path / "map.json"
    path.write_text(content)
    with pytest.raises(InvalidRequest) as refused:
        load_map(path, 1000.0, 100.0)
    assert refused.value.field == field
