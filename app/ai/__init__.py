"""NPC behaviour: behaviour trees over grid paths, in tiers of thought (`app.ai.tiers`).

A game's own AI implements `Brain`; the default is `TreeBrain` (`app.ai.brain`).

The trees and the path finder (`app.ai.brain`, `app.ai.paths`: py_trees, pathfinding and
numpy) load on first use of their names: every process that routes AI work imports this
package for the tiers, while only AI workers think (docs/measurements.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from app import lazy
from app.ai.navgrid import NavGrid
from app.ai.tiers import TIER_HZ, Tier, TierRanges, due, tier_for, tier_named

if TYPE_CHECKING:
    from app.ai.brain import Brain, Decision, Npc, TreeBrain
    from app.ai.paths import Path, PathStatus, Route, find_path, steer

__getattr__ = lazy.exports(__name__, lazy.by_module({
    "app.ai.brain": ("Brain", "Decision", "Npc", "TreeBrain"),
    "app.ai.paths": ("Path", "PathStatus", "Route", "find_path", "steer"),
}))

__all__ = ["TIER_HZ", "Brain", "Decision", "NavGrid", "Npc", "Path", "PathStatus", "Route",
           "Tier", "TierRanges", "TreeBrain", "due", "find_path", "steer", "tier_for",
           "tier_named"]
