"""The simulator report's controller section: what its degradation ladder engaged, when,
and how far (from the decision sampled each second)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from app.ai.tiers import ORDER, Tier, tier_named
from app.simulate.runner import RunResult
from app.simulate.sections import Section, window

RUNGS: dict[str, Callable[[dict[str, Any]], bool]] = {
    "background": lambda c: bool(c.get("shed_background")) or c.get("background_level", 1) < 1,
    "ai": lambda c: c.get("ai_tier", Tier.FULL.value) != Tier.FULL.value,
    "physics_detail": lambda c: c.get("physics_detail", 1) < 1,
}


def controller_section(run: RunResult) -> Section:
    """Per rung: the share of the run it was engaged, when it first was (seconds into the
    load) and the lowest it went; and the order the rungs engaged in (those first engaged
    in one sample grouped: a load that jumps past all three rungs within a second engages
    them together).  Empty when no controller decided during the run."""
    decided = [s for s in window(run) if s.control]
    if not decided:
        return {}
    section: Section = {"decisions_sampled": len(decided)}
    first: dict[str, float] = {}
    for rung, engaged in RUNGS.items():
        hits = [s for s in decided if engaged(s.control)]
        if hits:
            first[rung] = hits[0].at
        section[rung] = {"engaged_share": round(len(hits) / len(decided), 3),
                         "first_s": round(hits[0].at, 1) if hits else None}
    section["background"]["lowest_level"] = min(
        s.control.get("background_level", 1.0) for s in decided)
    section["ai"]["lowest_tier"] = max(
        (tier_named(s.control.get("ai_tier", "full")) for s in decided), key=ORDER.index).value
    section["physics_detail"]["lowest"] = min(s.control.get("physics_detail", 1.0)
                                              for s in decided)
    section["order"] = _order(first)
    return section


def _order(first: dict[str, float]) -> list[list[str]]:
    """The rungs by when they first engaged, those engaged in one sample together."""
    order: list[list[str]] = []
    for at in sorted(set(first.values())):
        order.append([rung for rung in RUNGS if first.get(rung) == at])
    return order
