"""Combat in ``physics-peak``: blasts where players are, with debris, projectiles faster
than the units allow and packed piles, each checked as the client checks it, and cleared."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from typing import Any

from app.client.requests import MAX_SPEED, body_change
from app.physics.world import World
from app.simulate.combat import BodyChange
from app.simulate.population import WHOLE, Share
from app.simulate.scenarios import SCENARIOS, Combat
from app.simulate.schedule import TICK_S, Schedule

PEAK = SCENARIOS["physics-peak"]
COMBAT = Combat()


def changes(players: int, seconds: float, share: Share = WHOLE, seed: int = 1,
            ) -> list[tuple[float, BodyChange]]:
    schedule = Schedule(PEAK, players, seed, duration_s=seconds, share=share)
    schedule.initial_sessions()
    return [(plan.at, change) for k in range(schedule.ticks)
            for plan in [schedule.plan(k)] for change in plan.bodies]


def in_tick(t: float, tick_at: float) -> bool:
    """Whether `t` falls in the tick starting at `tick_at`, which plans ``(at, at + 5 ms]``."""
    return tick_at - 1e-9 < t <= tick_at + TICK_S + 1e-9


def speed(body: dict[str, Any]) -> float:
    return math.hypot(body["vx"], body["vy"])


def test_blasts_go_off_at_the_scenarios_rate_and_are_cleared_after_their_lifetime() -> None:
    planned = changes(5000, 10.0)
    spawned = {c.blast: at for at, c in planned if c.spawn}
    assert sorted(spawned) == list(range(1, 21))  # 0.4/s per 1,000 players: 2/s for 10 s
    for blast, at in spawned.items():
        assert in_tick(blast / 2.0, at)
    removed = [(at, c) for at, c in planned if c.remove]
    assert {c.blast for _, c in removed} == set(range(1, 13))  # cleared 4 s later, in the run
    for at, change in removed:
        assert in_tick(change.blast / 2.0 + COMBAT.lifetime_s, at)
        twin = next(c for _, c in planned if c.blast == change.blast and c.spawn
                    and c.region == change.region)
        assert change.remove == [b["id"] for b in twin.spawn]  # the region's own bodies


def test_a_blast_spawns_debris_projectiles_and_a_pile_the_client_accepts_as_planned() -> None:
    blast = [c for _, c in changes(5000, 0.6) if c.blast == 1]
    bodies = [b for c in blast for b in c.spawn]
    assert len(bodies) == COMBAT.debris + COMBAT.projectiles + COMBAT.pile
    assert len({b["id"] for b in bodies}) == len(bodies)
    world = World()
    for change in blast:  # each inside its region, every field as the client takes it
        region, spawns, _ = body_change(change.region, change.spawn, [], world.size)
        bounds = world.bounds(region)
        assert all(bounds.x0 <= s[1] <= bounds.x1 and bounds.y0 <= s[2] <= bounds.y1
                   for s in spawns)
    small = [b for b in bodies if b["radius"] == 2.0]
    assert len(small) == COMBAT.projectiles
    assert max(speed(b) for b in small) > MAX_SPEED  # some will be clamped: too_fast
    assert all(abs(b["vx"]) <= MAX_SPEED and abs(b["vy"]) <= MAX_SPEED for b in small)
    pile = [b for b in bodies if b["radius"] == 5.0 and speed(b) == 0.0]
    assert len(pile) == COMBAT.pile
    gaps = [math.dist((a["x"], a["y"]), (b["x"], b["y"])) for a, b in itertools.pairwise(pile)]
    assert min(gaps) < 2 * 5.0  # packed tighter than they fit: a storm of contacts


def test_blasts_are_a_pure_function_of_the_seed() -> None:
    assert changes(3000, 2.0, seed=4) == changes(3000, 2.0, seed=4)
    assert changes(3000, 2.0, seed=4) != changes(3000, 2.0, seed=5)


def test_the_game_servers_shares_send_each_blast_once() -> None:
    whole = Counter(c.blast for _, c in changes(5000, 6.0))
    parts = [changes(5000, 6.0, Share(i, 3)) for i in range(3)]
    assert sum((Counter(c.blast for _, c in part) for part in parts), Counter()) == whole
    assert all({c.blast % 3 for _, c in part} == {i} for i, part in enumerate(parts))


def test_only_physics_peak_fights() -> None:
    assert [name for name, s in SCENARIOS.items() if s.combat] == ["physics-peak"]
    assert changes(5000, 0.0) == []
