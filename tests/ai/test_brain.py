"""The default brain: attack, chase along a path, patrol, hold; each tier thinks as much
as it should; what it remembers is bounded; a game's own brain plugs in."""

from __future__ import annotations

from app.ai.brain import AGGRO_RANGE, PATROL_RADIUS, Decision, Npc, TreeBrain
from app.ai.navgrid import NavGrid
from app.ai.paths import PathStatus
from app.ai.tiers import Tier


def test_a_player_in_reach_is_attacked_and_one_in_sight_chased_around_a_wall() -> None:
    nav = NavGrid(1000.0, 100.0, [(4, y) for y in range(0, 6)])
    brain = TreeBrain(nav)
    hit = brain.decide(Npc("orc", (250.0, 250.0), ((260.0, 250.0),)))
    assert (hit.action, hit.target) == ("attack", (260.0, 250.0))
    chase = brain.decide(Npc("orc", (350.0, 350.0), ((550.0, 350.0),)))  # the wall between
    assert chase.action == "chase" and chase.path is PathStatus.FOUND
    assert nav.cell_of(chase.target) in {(3, 4), (3, 5), (2, 4)}  # up along the wall, not into it
    assert nav.walkable(nav.cell_of(chase.target) or (4, 0))


def test_an_npc_nobody_sees_patrols_its_square_corner_after_corner() -> None:
    nav = NavGrid(5000.0, 100.0)
    brain = TreeBrain(nav)
    home = (1050.0, 1050.0)
    first = brain.decide(Npc("wolf", home, (), Tier.MINIMAL))
    assert first.action == "patrol" and first.target[0] > home[0]  # toward the first corner
    corner = (home[0] + PATROL_RADIUS, home[1])
    there = brain.decide(Npc("wolf", corner, (), Tier.MINIMAL))
    assert there.target[1] > corner[1]  # reached: on to the next corner, up
    far = brain.decide(Npc("wolf", (4000.0, 4000.0), ((4000.0 + 2 * AGGRO_RANGE, 4000.0),)))
    assert far.action == "patrol"  # a player out of sight is not chased


def test_an_npc_off_the_map_holds_where_it_is() -> None:
    brain = TreeBrain(NavGrid(1000.0, 100.0))
    assert brain.decide(Npc("ghost", (-50.0, 500.0))) == Decision("hold", (-50.0, 500.0))


def test_each_tier_searches_as_much_as_it_should() -> None:
    nav = NavGrid(5000.0, 100.0)
    player = ((1250.0, 1050.0),)

    def moves(tier: Tier) -> list[Decision]:
        brain = TreeBrain(nav)
        return [brain.decide(Npc("orc", (1050.0 + 10 * k, 1050.0), player, tier))
                for k in range(4)]

    assert all(d.searched > 0 for d in moves(Tier.FULL))  # searched anew every time
    reduced = moves(Tier.REDUCED)
    assert reduced[0].searched > 0 and all(d.searched == 0 for d in reduced[1:])  # kept
    assert all(d.path is None and d.searched == 0 for d in moves(Tier.MINIMAL))  # steering
    assert {d.action for d in moves(Tier.MINIMAL)} == {"chase"}


def test_a_kept_route_is_searched_again_when_the_map_blocks_it() -> None:
    nav = NavGrid(5000.0, 100.0)
    brain = TreeBrain(nav)
    npc = Npc("orc", (1050.0, 1050.0), ((1250.0, 1050.0),), Tier.REDUCED)
    assert brain.decide(npc).searched > 0
    assert brain.decide(npc).searched == 0  # the route holds
    nav.block([(11, 10)])  # the next cell on it
    again = brain.decide(npc)
    assert again.searched > 0 and nav.cell_of(again.target) != (11, 10)


def test_the_brain_remembers_at_most_its_bound_of_npcs() -> None:
    brain = TreeBrain(NavGrid(1000.0, 100.0), memory_max=2)
    for name in ("a", "b", "c"):
        brain.decide(Npc(name, (500.0, 500.0)))
    assert brain.remembered() == 2
