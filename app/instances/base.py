"""What every instance registry keeps and how it chooses (`app.instances.registry`)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from app.instances.placement import EPSILON, Move, bound_of, roomy, score

LEFT_S = 1e6  # silent this long: its last heartbeat is at time 0, it left
RETRY_AFTER_S = 5.0  # what a refused session is told to wait: sessions close every second


# A session to place: its id, its weight and the instance it ran on (None: it ran on none).
Placing = tuple[str, float, str | None]


def milli(weight: float) -> int:
    """A session's weight in the registry's unit: thousandths, at least one."""
    return max(1, round(weight * 1000))


@dataclass(frozen=True)
class InstanceState:
    """One registered instance as the registry sees it."""

    name: str
    capacity: int
    sessions: int
    load: float  # the weights of its sessions
    silent_s: float  # since its last heartbeat
    live: bool  # heard from within the registry's time to live
    draining: bool = False  # giving its sessions away; it gets no new one
    refused: int = 0  # writes refused since it was fenced
    hot_url: str = ""  # the Redis its session state lives on ("": not recorded)

    @property
    def left(self) -> bool:
        """It stopped and said so (a warm shutdown marks its last heartbeat at time 0),
        rather than falling silent."""
        return self.silent_s >= LEFT_S


class Registry(Protocol):
    """Where the instances and the sessions' places are kept."""

    def join(self, instance: str, capacity: int, hot_url: str = "", hot_name: str = "") -> int:
        """`instance` starts (or starts again after a drain or a takeover): it takes sessions
        again, and keeps their state on the Redis at `hot_url` (its workers'
        `GAMESCHED_HOT_URL`, or the broker's), a store named `hot_name` on SQL's state log
        (`GAMESCHED_HOT_STORE`); returns its new fencing token, which its writes carry,
        written into that store too (`app.instances.tokens`)."""

    def heartbeat(self, instance: str, capacity: int, token: int | None = None) -> bool:
        """`instance` is alive and takes up to `capacity` sessions; False (and not recorded)
        when `token` is no longer its token: it was fenced."""

    def fence(self, instance: str) -> None:
        """Take `instance` over (it went silent): its token is raised, here and in its hot
        store when that answers (`copy_token`), so that its heartbeats and writes are
        refused until it starts again (`join`)."""

    def copy_token(self, instance: str) -> bool:
        """Write `instance`'s current token into its hot store, where the state script
        checks its writes (a fenced instance that learns it was fenced does so: its writes
        are refused from then on).  False when that store cannot be reached."""

    def hot_urls(self) -> dict[str, str]:
        """The hot store of each instance that recorded one, by instance."""

    def hot_names(self) -> dict[str, str]:
        """The name of the hot store of each instance that recorded one, by instance."""

    def refused(self, instance: str, writes: int = 1) -> None:
        """Count `writes` refused from the fenced `instance`."""

    def leave(self, instance: str) -> None:
        """`instance` stopped: it is silent from now on (it gets no new session; the
        controller moves its sessions, `app.tasking.failover`)."""

    def forget(self, instance: str) -> None:
        """Remove `instance` from the registry (it holds no session any more)."""

    def place(self, session: str, weight: float, prefer: str | None = None) -> str | None:
        """The instance `session` runs on: where it is if placed (its weight updated), else
        one chosen now: `prefer` when it is live and below its capacity (the instance it
        ran on before the registry lost it, whatever the load bound), else by ranking and
        load; placed elsewhere than `prefer`, it came from `prefer` (`came_from`), and its
        new instance takes its state from there as after a move.  None when no instance
        is live (the fleet's shared queue serves it); ServerFull when every live one is at
        capacity."""

    def place_many(self, requests: Sequence[Placing]) -> list[str | None]:
        """`place` each of `requests` (session, weight, the instance it ran on or None), in
        order, in one round trip where the registry is remote (a game server placing again
        the thousands of sessions a registry lost, one call each, took seconds); the
        instance of each, None for one no instance took (none live, or every live one at
        capacity: no ServerFull here)."""

    def drain(self, instance: str) -> list[Move]:
        """Give no new session to `instance` and move each of its sessions to the instance
        `place` would choose without it; returns the moves (a session no other instance
        could take stays, and is not among them)."""

    def rebalance(self) -> list[Move]:
        """Fill the least loaded live instance up to the mean (one that started, or came
        back after a takeover) with the sessions that rank it above their instance, from
        the most loaded instances first (`pulls`); returns the moves (none when it is within
        epsilon of the mean)."""

    def moved(self) -> dict[str, int]:
        """Sessions moved so far, by why: ``drain`` (drains and takeovers) and
        ``rebalance``."""

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""

    def owners(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance of each of `sessions`, in order (None where not placed)."""

    def epoch(self) -> int:
        """How many times a placed session has moved: a client whose last reading is older
        reads its sessions' owners again."""

    def generation(self) -> str:
        """A token set when the first instance joins ("" before): another one means the
        registry started again empty, and its clients place their sessions again."""

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance.  Idempotent."""

    def came_from(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance each of `sessions` last moved from (a drain, a takeover, a
        rebalance), in order, while its new instance has not yet taken its state from
        there (`arrived`); None for one that never moved, or whose state was taken."""

    def arrived(self, sessions: Sequence[str], source: str) -> None:
        """The state of `sessions` was taken from `source`'s hot store onto their instance's:
        forget where they came from (not for one that moved again since, from another
        instance).  Idempotent."""

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""


def choose(ranking: Sequence[str], loads: Mapping[str, int], room: Callable[[str], bool],
           weight: int, epsilon: float = EPSILON, *, prefer: str | None = None) -> str | None:
    """`place.lua`'s choice among the live instances `ranking` (in the session's order):
    `prefer` when it is among them with `room`, whatever the bound; else the bound counts
    them all, the choice only those with `room` below their capacity; None when none
    has."""
    open_ = [name for name in ranking if room(name)]
    if not open_:
        return None
    if prefer in open_:
        return prefer
    bound = bound_of(sum(loads[name] for name in ranking), len(ranking), epsilon, weight)
    return roomy(open_, {name: float(loads[name]) for name in open_}, weight, bound)


def pulls(live: Sequence[str], loads: Mapping[str, int], owners: Mapping[str, str],
          weights: Mapping[str, int], epsilon: float = EPSILON) -> list[Move]:
    """The moves that fill the least loaded of the `live` instances up to their mean load:
    sessions on the other live instances that rank it above their own (as rendezvous
    hashing would place them with it there), from the most loaded instances first, each
    while it stays within the mean.  None when it is within `epsilon` of the mean, or fewer
    than two instances live.  A session moves only towards the instance it prefers, so a
    join moves no session between two other instances."""
    if len(live) < 2:
        return []
    mean = sum(loads[i] for i in live) / len(live)
    target = min(live, key=lambda i: (loads[i], i))
    if loads[target] >= (1.0 - epsilon) * mean:
        return []
    others = set(live) - {target}
    wanting = sorted((s for s, owner in owners.items()
                      if owner in others and score(s, target) > score(s, owner)),
                     key=lambda s: (-loads[owners[s]], s))
    load, moves = loads[target], []
    for session in wanting:
        if load + weights[session] <= mean:
            moves.append(Move(session, owners[session], target))
            load += weights[session]
    return moves
