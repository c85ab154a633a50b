"""NPC behaviour: behaviour trees over grid paths, in tiers of thought (`app.ai.tiers`).

A game's own AI implements `Brain`; the default is `TreeBrain` (`app.ai.brain`)."""

from app.ai.brain import Brain, Decision, Npc, TreeBrain
from app.ai.navgrid import NavGrid
from app.ai.paths import Path, PathStatus, Route, find_path, steer
from app.ai.tiers import TIER_HZ, Tier, TierRanges, due, tier_for, tier_named

__all__ = ["TIER_HZ", "Brain", "Decision", "NavGrid", "Npc", "Path", "PathStatus", "Route",
           "Tier", "TierRanges", "TreeBrain", "due", "find_path", "steer", "tier_for",
           "tier_named"]
