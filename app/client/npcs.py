"""A game server's AI loop, as the client keeps it: which NPCs are decided in a tick.

Every tick (`AI_TICK_HZ`) the game server hands over all its NPCs.  Each NPC's tier is set
by the players it sees (`app.ai.tiers.tier_for`) and capped by the controller's
(`Decision.ai_tier`); an NPC is decided in the ticks its tier's rate makes due
(`app.ai.tiers.due`): the minimal tier still at least once a second.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

from app.ai.tiers import DEFAULT_RANGES, Tier, TierRanges, due, tier_for
from app.client.requests import AI_BATCH_MAX, decision_at
from app.errors import InvalidRequest
from app.priority import BANDS, Factors, Route, route
from app.protocol.queues import Queue

AI_TICK_HZ = 10.0  # a game server's AI loop, ticks a second


def ai_route(task: str, batch: Sequence[Sequence[Any]],
             weights: dict[str, float] | None = None) -> Route:
    """Where AI `task` deciding `batch` goes (one NPC's ``[npc_id, position, players,
    tier?]`` each): the step of the NPC in it that sees the most players, or the AI band's
    first step when it carries a minimal-tier NPC.  The minimal tier's once a
    second is the AI's guarantee, and its NPCs see nobody: left at their own step, the
    lowest, their batches wait behind every other AI batch for as long as any is queued
    (a queue's steps are served strictly in order), seconds on a busy server.  They are
    few and cheap, so they go first."""
    where = route(task, Factors(players=max(len(args[2]) for args in batch)),
                  weights=weights)
    if any(len(args) > 3 and args[3] == Tier.MINIMAL.value for args in batch):
        return replace(where, priority=BANDS[Queue.AI].low)
    return where


class AiLoop:
    """The NPCs due in each tick of one game server's AI loop (see the module)."""

    def __init__(self, cap: Callable[[], Tier], world: float,
                 ranges: TierRanges = DEFAULT_RANGES) -> None:
        self._cap, self._world, self._ranges = cap, world, ranges
        self.decided: Counter[Tier] = Counter()  # decisions sent, by tier

    def due(self, tick: Any, npcs: Sequence[Any], tick_hz: float) -> list[list[list[Any]]]:
        """The task arguments of the NPCs of `npcs` due in `tick`, each with its tier, in
        batches of at most `AI_BATCH_MAX`; InvalidRequest naming a bad NPC
        (``npcs.3.position``) or tick, and nothing is due then."""
        if isinstance(tick, bool) or not isinstance(tick, int) or tick < 0:
            raise InvalidRequest("tick", tick, "expected an integer >= 0")
        if isinstance(npcs, (str, bytes)) or not isinstance(npcs, Sequence):
            raise InvalidRequest("npcs", npcs, "expected a sequence of NPCs")
        cap = self._cap()
        chosen, tiers = [], Counter[Tier]()
        for i, call in enumerate(npcs):
            args = decision_at(i, call, self._world, field="npcs")
            if len(args) > 3:
                raise InvalidRequest(f"npcs.{i}.tier", args[3], "the tier is the client's: "
                                     "send (npc_id, position, players)")
            tier = tier_for(call[1], call[2] or (), self._ranges, cap)  # checked: tuples
            if due(args[0], tier, tick, tick_hz):
                chosen.append([*args, tier.value])
                tiers[tier] += 1
        self.decided.update(tiers)
        return [chosen[k:k + AI_BATCH_MAX] for k in range(0, len(chosen), AI_BATCH_MAX)]
