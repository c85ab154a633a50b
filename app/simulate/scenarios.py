"""Scenarios of ``gamesched simulate``: small declarative descriptions of a workload.

A scenario says who plays (session types, activity levels and their rates), what the
world runs besides them (physics regions, NPCs, background work, purchases) and what
happens during the run (an influx into one region, a surge of sessions).  The schedule
module turns one into seeded, reproducible ticks.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from app.errors import InvalidRequest
from app.protocol.vocab import SessionType


@dataclass(frozen=True)
class ActivityClass:
    """Players that send `hz` state updates per second and move at `speed` units/s."""

    name: str
    share: float
    hz: float
    speed: float


@dataclass(frozen=True)
class Influx:
    """At `at` (fraction of the run), `share` of the sessions travel into one region,
    arriving within `within_s` seconds."""

    at: float
    within_s: float
    share: float


@dataclass(frozen=True)
class Combat:
    """Blasts where players are (`app.simulate.combat`): `per_1000_players_s` a second for
    each thousand players, each spawning `debris` balls over a disc of `radius` flung out at
    up to `debris_speed`, `projectiles` at `projectile_speed` (low, high; units/s) and a
    `pile` of balls packed tighter than they fit; all removed `lifetime_s` later."""

    per_1000_players_s: float = 0.4
    debris: int = 150
    radius: float = 120.0
    debris_speed: float = 400.0
    projectiles: int = 20
    projectile_speed: tuple[float, float] = (3000.0, 6500.0)
    pile: int = 100
    lifetime_s: float = 4.0


@dataclass(frozen=True)
class Surge:
    """At `at` (fraction of the run), sessions and purchases grow to `factor` times their
    number within `within_s` seconds."""

    at: float
    within_s: float
    factor: float


STEADY_ACTIVITY = (
    ActivityClass("active", 0.40, 10.0, 6.0),
    ActivityClass("idle", 0.40, 1.0, 0.5),
    ActivityClass("away", 0.20, 0.2, 0.0),
)
PEAK_ACTIVITY = (
    ActivityClass("active", 0.70, 10.0, 6.0),
    ActivityClass("idle", 0.25, 1.0, 0.5),
    ActivityClass("away", 0.05, 0.2, 0.0),
)
# A store event: most players are in menus and the shop, few are in a match.
STORE_ACTIVITY = (
    ActivityClass("active", 0.10, 10.0, 6.0),
    ActivityClass("idle", 0.55, 1.0, 0.5),
    ActivityClass("away", 0.35, 0.2, 0.0),
)
SESSION_TYPES = ((SessionType.RANKED, 0.20), (SessionType.CASUAL, 0.40), (SessionType.COOP, 0.15),
                 (SessionType.SPECTATOR, 0.10), (SessionType.LOBBY, 0.15))


@dataclass(frozen=True)
class Scenario:
    """One workload.  Rates are per second; `*_per_player` figures scale with --players."""

    name: str
    summary: str
    activity: tuple[ActivityClass, ...] = STEADY_ACTIVITY
    session_types: tuple[tuple[str, float], ...] = SESSION_TYPES
    activity_churn: float = 0.01  # share of sessions that change activity class per second
    regions_per_side: int = 4  # a quadtree two levels deep, balanced across physics units
    physics_hz: float = 20.0
    bodies_base: int = 20
    bodies_per_player: float = 0.05
    npcs_per_player: float = 0.02  # each decided at its tier's rate (`app.ai.tiers`)
    compare: str | None = None  # the system run beside gamesched without --baseline
    ai_factor: float = 1.0
    background_factor: float = 1.5  # offered background work / measured capacity
    purchases_per_player_s: float = 0.0005  # a trickle: 2.5/s for 5,000 players
    duplicate_share: float = 0.0  # purchases sent two or three times with the same key
    needs_purchases: bool = False
    influx: Influx | None = None
    surge: Surge | None = None
    combat: Combat | None = None

    def __post_init__(self) -> None:
        for name, shares in (("activity", [a.share for a in self.activity]),
                             ("session_types", [s for _, s in self.session_types])):
            if abs(sum(shares) - 1.0) > 1e-6:
                raise ValueError(f"scenario {self.name}: {name} shares sum to {sum(shares)}")

    @property
    def growth(self) -> float:
        """How many times the initial sessions the run reaches (1 without a surge)."""
        return self.surge.factor if self.surge else 1.0


STEADY = Scenario(
    "steady",
    "normal operation: 40 % active (10/s), 40 % idle (1/s), 20 % away (0.2/s); NPCs, "
    "physics, a trickle of purchases, background work at 150 % of capacity",
)

SCENARIOS: dict[str, Scenario] = {
    s.name: s for s in (
        STEADY,
        replace(STEADY, name="influx", summary="half the players move into one region "
                "within 2 s", influx=Influx(at=0.3, within_s=2.0, share=0.5)),
        replace(STEADY, name="physics-peak", summary="combat at peak activity: blasts where "
                "players are (2/s for 5,000 players), each spawning 150 debris, 20 projectiles "
                "(some faster than the units allow) and a pile of 100 packed balls, cleared "
                "4 s later; many resting bodies", activity=PEAK_ACTIVITY, bodies_base=150,
                bodies_per_player=0.3, combat=Combat()),
        replace(STEADY, name="world-event", summary="a server-wide event: AI work triples "
                "for the whole run; run beside gamesched with its AI unthrottled, for "
                "ai.reduction", ai_factor=3.0, compare="unthrottled"),
        replace(STEADY, name="promo-spike", summary="sessions and purchases triple within "
                "5 s", surge=Surge(at=0.3, within_s=5.0, factor=3.0)),
        replace(STEADY, name="purchase-surge", summary="a store event: many concurrent "
                "purchases (350/s for 5,000 players), 10 % sent two or three times with the "
                "same key; 10 % of the players active, 55 % idle, 35 % away",
                activity=STORE_ACTIVITY, purchases_per_player_s=0.07,
                duplicate_share=0.10, needs_purchases=True),
    )
}


def scenario(name: str) -> Scenario:
    """The scenario called `name`, or InvalidRequest naming the choices."""
    try:
        return SCENARIOS[name]
    except KeyError:
        raise InvalidRequest("scenario", name, f"expected one of {', '.join(SCENARIOS)}") from None
