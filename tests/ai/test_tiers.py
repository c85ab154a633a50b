"""AI tiers: the players an NPC sees set its tier, a cap only lowers it, and each tier is
decided at its rate (the minimal one at least once a second)."""

from __future__ import annotations

import numpy as np
import pytest

from app.ai.tiers import TIER_HZ, Tier, TierRanges, due, lowest, tier_for, tier_named
from app.errors import InvalidRequest


def test_the_nearest_player_seen_sets_the_tier_and_a_cap_only_lowers_it() -> None:
    ranges = TierRanges(full=600.0, reduced=1500.0)
    assert tier_for((0.0, 0.0), [(3000.0, 0.0), (500.0, 0.0)], ranges) is Tier.FULL
    assert tier_for((0.0, 0.0), [(1000.0, 0.0)], ranges) is Tier.REDUCED
    assert tier_for((0.0, 0.0), [(2000.0, 0.0)], ranges) is Tier.MINIMAL
    assert tier_for((0.0, 0.0), [], ranges) is Tier.MINIMAL  # nobody sees it
    assert tier_for((0.0, 0.0), [(10.0, 0.0)], ranges, cap=Tier.REDUCED) is Tier.REDUCED
    assert tier_for((0.0, 0.0), [], ranges, cap=Tier.REDUCED) is Tier.MINIMAL  # not raised
    assert lowest(Tier.FULL, Tier.MINIMAL) is lowest(Tier.MINIMAL, Tier.REDUCED) is Tier.MINIMAL


@pytest.mark.parametrize(("tick_hz", "tier", "every"), [
    (10.0, Tier.FULL, 1), (10.0, Tier.REDUCED, 2), (10.0, Tier.MINIMAL, 8),
    (20.0, Tier.FULL, 2), (20.0, Tier.REDUCED, 5), (20.0, Tier.MINIMAL, 16),
    (0.5, Tier.MINIMAL, 1)])
def test_each_npc_is_decided_at_its_tiers_rate(tick_hz: float, tier: Tier, every: int) -> None:
    for npc in ("orc-1", "orc-2", "wolf-17"):
        ticks = [t for t in range(round(tick_hz * 12)) if due(npc, tier, t, tick_hz)]
        assert ticks[0] < every and set(np.diff(ticks)) == {every}
    assert TIER_HZ[Tier.MINIMAL] > 1.0  # sent every 0.8 s: decided within each second
    assert 2.0 <= TIER_HZ[Tier.REDUCED] <= 5.0 and TIER_HZ[Tier.FULL] == 10.0


def test_bad_tiers_and_ranges_are_refused_naming_the_field() -> None:
    assert tier_named("reduced") is Tier.REDUCED
    with pytest.raises(InvalidRequest, match="full, reduced, minimal") as refused:
        tier_named("heroic", "decisions.2.tier")
    assert refused.value.field == "decisions.2.tier"
    with pytest.raises(InvalidRequest, match="reduced"):
        TierRanges(full=800.0, reduced=500.0)
    with pytest.raises(InvalidRequest, match="full"):
        TierRanges(full=-1.0)


def test_lowered_npcs_are_decided_together_so_fewer_batches_leave() -> None:
    npcs = [f"orc-{n}" for n in range(200)]

    def busy_ticks(tier: Tier) -> list[int]:
        return [t for t in range(16) if any(due(npc, tier, t, 10.0) for npc in npcs)]

    assert busy_ticks(Tier.FULL) == list(range(16))
    assert busy_ticks(Tier.REDUCED) == [0, 2, 4, 6, 8, 10, 12, 14]
    assert busy_ticks(Tier.MINIMAL) == [0, 8]  # every NPC in each, once every 0.8 s
    assert len({n for n in npcs if due(n, Tier.FULL, 3, 20.0)}) < len(npcs)  # spread
