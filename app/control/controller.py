"""The controller: every tick it reads load and writes a decision workers act on.

The controller measures queue depths, the server's CPU (`app.control.cpu`) and the player
batches that ran late.  It degrades in order (`ladder`): background work (its pace and
the tasks each background worker runs at once), then AI (its level, the tier cap game
servers keep and the tasks each AI worker runs at once), then the detail of regions
without players, by the server's CPU a few ticks ahead (`app.control.forecast`: it acts
before a spike peaks) or by a run of ticks with player batches past the late bar;
background also slows while player batches miss their target (`app.control.dilation`).
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass

from app.ai.tiers import ORDER, Tier, tier_named
from app.control import dilation
from app.control.forecast import Holt
from app.players.hotstore import HotStore
from app.protocol import keys


@dataclass(frozen=True)
class Load:
    """What the controller reads each tick."""

    depths: dict[str, int]
    cpu: float
    slow_total: int = 0  # late player batches counted so far (`app.control.dilation`)
    late_total: int = 0  # those past GAMESCHED_PLAYER_LATE_MS, counted so far


@dataclass(frozen=True)
class Decision:
    """What the controller decided: AI runs at `ai_level` of its full rate and background
    work at `background_level` of its speed (floors included)."""

    at: float
    cpu: float
    depths: dict[str, int]
    ai_level: float
    shed_background: bool
    background_level: float = 1.0
    slow_total: int = 0
    # Physics level of detail: the factor on the step rates of regions without players
    # (`app.physics.detail`); players' own regions always step every frame.
    physics_detail: float = 1.0
    # The highest AI tier game servers give an NPC (`app.ai.tiers`): lowered with
    # `ai_level`, raised one tier a tick once CPU is `TIER_HYSTERESIS` under the cap.
    ai_tier: str = Tier.FULL.value
    # The CPU forecast's state (`app.control.forecast`) and what the decision acted on:
    # CPU `HORIZON_TICKS` ahead, or now if higher.
    cpu_level: float | None = None
    cpu_trend: float = 0.0
    cpu_ahead: float = 0.0
    # Player batches past the late bar: the count so far, the ticks in a row that saw more
    # than `LATE_ALLOWED`, and the load the ladder acted on (CPU ahead, or the pressure of
    # that run of late ticks, if higher).
    late_total: int = 0
    late_streak: int = 0
    strain: float = 0.0
    # The AI tasks each AI worker runs at once (its slots, `app.tasking.slots`), following
    # the tier cap: the role's concurrency at full, half of it reduced, one at minimal
    # (0: not managed).
    ai_slots: int = 0
    # The background tasks each background worker runs at once: the role's concurrency,
    # one while background work is shed (0: not managed, the role runs one at a time).
    background_slots: int = 0

    def gauges(self) -> dict[str, float]:
        """The decision as numbers, for Prometheus (`app.observe.metrics.CONTROL_GAUGES`)."""
        return {
            "ai_level": self.ai_level, "ai_tier": float(ORDER.index(tier_named(self.ai_tier))),
            "ai_slots": self.ai_slots, "background_slots": self.background_slots,
            "background_level": self.background_level,
            "shed_background": float(self.shed_background),
            "physics_detail": self.physics_detail, "cpu": self.cpu,
            "cpu_ahead": self.cpu_ahead, "strain": self.strain,
            "late_streak": self.late_streak,
        }


AI_FLOOR = 0.25
PHYSICS_DETAIL_FLOOR = 0.25
TIER_HYSTERESIS = 0.05  # CPU this far under the cap before the AI tier goes up again
BACKGROUND_MARGIN = 0.10  # background work gives way from this far under the CPU cap
LATE_ALLOWED = 2  # player batches past the late bar a tick that are not yet a strain
LATE_STEP = 0.05  # each tick in a row of late batches strains the ladder this much past the cap
HORIZON_TICKS = 2.0  # how far ahead the CPU forecast looks (0: act on what is seen)
HOLT = Holt()


def decide(load: Load, cpu_cap: float, previous: Decision | None = None,
           horizon: float = HORIZON_TICKS, *, ai_slots_max: int = 0,
           background_slots_max: int = 0) -> Decision:
    """Degrade in order as the strain climbs (`ladder`): background work first, then AI,
    then the detail of the regions without players; players' and transactions' work
    never.  The strain is the server's CPU `horizon` ticks ahead (forecast from the ticks
    before, `previous`; now, if higher), or, while player batches run past the late bar
    tick after tick, the cap plus `LATE_STEP` for each such tick in a row: players late
    with CPU to spare (the machine is shared, or a queue is the bottleneck) degrade too.
    Background also slows while player batches run late (compared with `previous`)."""
    level, trend = HOLT.fold(load.cpu, previous.cpu_level if previous else None,
                             previous.cpu_trend if previous else 0.0)
    ahead = Holt.ahead(load.cpu, level, trend, horizon)
    streak = _late_streak(load, previous)
    strain = max(ahead, cpu_cap + LATE_STEP * streak if streak else 0.0)
    rungs = ladder(strain, cpu_cap)
    ai_level = max(AI_FLOOR, 1.0 - rungs.ai)
    tier = _ai_tier(ai_level, strain < cpu_cap - TIER_HYSTERESIS, previous)
    return Decision(
        at=time.time(), cpu=load.cpu, depths=load.depths, ai_level=round(ai_level, 3),
        shed_background=rungs.background,
        background_level=_background_level(load, previous, rungs.background),
        background_slots=background_slots(rungs.background, background_slots_max),
        slow_total=load.slow_total,
        physics_detail=round(max(PHYSICS_DETAIL_FLOOR, 1.0 - rungs.physics), 3),
        ai_tier=tier.value, ai_slots=ai_slots(tier, ai_slots_max),
        cpu_level=round(level, 4), cpu_trend=round(trend, 4), cpu_ahead=round(ahead, 4),
        late_total=load.late_total, late_streak=streak, strain=round(strain, 4),
    )


ACTIONS = ("shed_background", "background_slots", "ai_tier", "ai_slots", "physics_detail")


def changed(previous: Decision | None, decision: Decision) -> str | None:
    """A line naming the actions `decision` changes from `previous`, with the inputs it
    acted on (for the controller's log), or None when no action changed."""
    before = asdict(previous) if previous is not None else {}
    after = asdict(decision)
    moved = [f"{name} {before.get(name, '-')} -> {after[name]}" for name in ACTIONS
             if before.get(name) != after[name]]
    if not moved:
        return None
    return (f"{', '.join(moved)} (cpu {decision.cpu:.2f}, ahead {decision.cpu_ahead:.2f}, "
            f"late streak {decision.late_streak}, strain {decision.strain:.2f}, "
            f"background level {decision.background_level}, depths {decision.depths})")


def ai_slots(tier: Tier, most: int) -> int:
    """The AI tasks an AI worker runs at once at `tier`, out of `most` (0: not managed)."""
    if most <= 0:
        return 0
    return {Tier.FULL: most, Tier.REDUCED: max(1, most // 2)}.get(tier, 1)


def background_slots(shed: bool, most: int) -> int:
    """The background tasks a background worker runs at once, out of `most`: one while
    background work is `shed`, all of them otherwise (0: not managed, `most` is 1 or
    less and there is nothing to take away)."""
    if most <= 1:
        return 0
    return 1 if shed else most


def _late_streak(load: Load, previous: Decision | None) -> int:
    """Ticks in a row whose player batches past the late bar were more than
    `LATE_ALLOWED` (a hot store that lost its count starts it again)."""
    if previous is None:
        return 0
    late = _since(load.late_total, previous.late_total)
    return previous.late_streak + 1 if late > LATE_ALLOWED else 0


def _since(total: int, before: int) -> int:
    """What a running count in the hot store grew by since `before` (all of `total` when
    it went down: the hot store restarted and lost the count)."""
    return total - before if total >= before else total


@dataclass(frozen=True)
class Rungs:
    """How far down each rung of the degradation ladder a strain reaches: background gives
    way (a yes or no), AI and physics detail by how far past their start (0..1)."""

    background: bool
    ai: float
    physics: float


def ladder(strain: float, cpu_cap: float) -> Rungs:
    """The rungs `strain` (a share of the machine, as CPU) reaches: background from
    `BACKGROUND_MARGIN` under the cap, AI from the cap, physics detail from halfway between
    the cap and a full machine."""
    physics_from = cpu_cap + (1.0 - cpu_cap) / 2

    def past(start: float) -> float:
        return min(1.0, max(0.0, strain - start) / max(1e-9, 1.0 - start))

    return Rungs(strain > cpu_cap - BACKGROUND_MARGIN, past(cpu_cap), past(physics_from))


def _ai_tier(ai_level: float, cool: bool, previous: Decision | None) -> Tier:
    """The AI tier cap for `ai_level`: full at 1, minimal at the floor, reduced between.
    It falls at once; it rises one tier a tick, and only while CPU is `cool` (well under
    the cap), so it does not flap around the cap."""
    wanted = (Tier.FULL if ai_level >= 1.0 else Tier.MINIMAL if ai_level <= AI_FLOOR
              else Tier.REDUCED)
    before = tier_named(previous.ai_tier) if previous is not None else Tier.FULL
    if ORDER.index(wanted) >= ORDER.index(before):
        return wanted
    return ORDER[ORDER.index(before) - 1] if cool else before


def _background_level(load: Load, previous: Decision | None, shed: bool) -> float:
    if previous is None:
        return dilation.next_level(1.0, 0, shed)
    late = _since(load.slow_total, previous.slow_total)
    return dilation.next_level(previous.background_level, late, shed)


def write_decision(hot: HotStore, decision: Decision) -> None:
    """Publish `decision` for workers and `gamesched status`."""
    hot.set(keys.CONTROL_DECISION, json.dumps(asdict(decision)).encode())


def read_decision(hot: HotStore) -> Decision | None:
    """The last published decision, or None before the first tick."""
    raw = hot.get(keys.CONTROL_DECISION)
    return Decision(**json.loads(raw)) if raw else None
