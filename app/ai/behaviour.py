"""AI service: one NPC decision from its position and the players it can see."""

from __future__ import annotations

import math
from collections.abc import Sequence

AGGRO_RANGE = 300.0
ATTACK_RANGE = 30.0


def decide(npc: Sequence[float], players: Sequence[Sequence[float]]) -> str:
    """Return the NPC's next action: attack, chase or patrol.  Pure and idempotent."""
    if not players:
        return "patrol"
    nearest = min(math.dist(npc, p) for p in players)
    if nearest <= ATTACK_RANGE:
        return "attack"
    return "chase" if nearest <= AGGRO_RANGE else "patrol"
