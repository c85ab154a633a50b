"""Where sessions run: each on one server instance, placed with affinity and bounded loads.

Every session ranks the instances by rendezvous hashing (highest random weight: a hash of
the session's and the instance's names, `score`), the same ranking on every machine that
computes it.  A session is placed on the first instance of its ranking with room, and stays
there while that instance lives (affinity: all its work goes to one instance).

Room is a bound on load, as in consistent hashing with bounded loads (Mirrokni, Thorup and
Zadimoghaddam): no instance above ``(1 + epsilon)`` times the mean, where a session's load
is its weight (its players and activity, `weight`) and the mean is the optimum.  An
instance at the bound passes a new session down the session's ranking.  A session heavier
than the room anywhere goes to the least loaded instance, so the worst case is the bound
plus one session: ``max_load <= (1 + epsilon) * mean + heaviest``.

Sessions move only when they must, and only as far as they must:

- an instance joining takes sessions only from the others, never moving one between two
  old instances: first sessions that rank it above their own instance (those plain
  rendezvous hashing would move), until it holds the mean, from the most loaded instances
  first; about ``1/n`` of the load moves;
- an instance leaving gives only its own sessions away, each to the first instance of its
  ranking with room;
- `rebalance` moves sessions off instances above the bound (sessions that closed or
  changed weight can leave one there), each to the first instance of its ranking with room.

`Placement` holds the state; its methods return the moves for the caller to carry out.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from app.errors import InvalidRequest

EPSILON = 0.05  # the bound: 5 % over the mean at most (the product asks for 10 %)


def score(session: str, instance: str) -> int:
    """The rendezvous score of `instance` for `session`: higher ranks first."""
    digest = hashlib.blake2b(f"{session}\x00{instance}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def ranked(session: str, instances: Iterable[str]) -> list[str]:
    """`instances` in `session`'s order of preference (its rendezvous ranking)."""
    return sorted(instances, key=lambda instance: score(session, instance), reverse=True)


def bound_of(total: float, instances: int, epsilon: float, extra: float = 0.0) -> float:
    """The most load one of `instances` instances carrying `total` may hold with `extra`
    more placed: ``(1 + epsilon)`` times the mean, never less than `extra` (an empty
    instance always has room, as the bound's ceiling gives one session of unit weight in
    the paper)."""
    return max((1.0 + epsilon) * (total + extra) / instances, extra) if instances else 0.0


def roomy(ranking: Sequence[str], loads: Mapping[str, float], load: float,
          bound: float) -> str | None:
    """The first instance of `ranking` with room for `load` under `bound`, else the least
    loaded of them (None when `ranking` is empty).  The Redis registry's placement script
    (`app/instances/place.lua`) makes the same choice in the same arithmetic."""
    for instance in ranking:
        if loads[instance] + load <= bound:
            return instance
    return min(ranking, key=lambda i: (loads[i], i), default=None)


def weight(players: int, activity_hz: float = 0.0) -> float:
    """A session's load: one for the session, one per player, and its activity (inputs a
    second, a quarter each), so a few hot sessions count for what they cost."""
    return 1.0 + max(0, players) + max(0.0, activity_hz) / 4.0


@dataclass(frozen=True)
class Move:
    """A session moving from one instance to another (`source` None: placed anew)."""

    session: str
    source: str | None
    target: str


@dataclass
class Placement:
    """Sessions on instances (see the module)."""

    epsilon: float = EPSILON
    where: dict[str, str] = field(default_factory=dict)  # session -> instance
    weights: dict[str, float] = field(default_factory=dict)  # session -> weight
    loads: dict[str, float] = field(default_factory=dict)  # instance -> load

    def __post_init__(self) -> None:
        if not 0.0 <= self.epsilon <= 10.0:
            raise InvalidRequest("epsilon", self.epsilon, "expected 0 to 10")

    # the figures ----------------------------------------------------------------------

    @property
    def mean(self) -> float:
        """The optimal load: the total spread evenly over the instances."""
        return sum(self.loads.values()) / len(self.loads) if self.loads else 0.0

    def bound(self, extra: float = 0.0) -> float:
        """The most load an instance may carry with `extra` more load placed (never less
        than `extra`: an empty instance always has room, as the bound's ceiling gives one
        session of unit weight in the paper)."""
        return bound_of(sum(self.loads.values()), len(self.loads), self.epsilon, extra)

    def max_over_mean(self) -> float:
        """The most loaded instance over the mean (1.0: perfectly even)."""
        mean = self.mean
        return max(self.loads.values()) / mean if mean > 0 else 1.0

    def ranking(self, session: str) -> list[str]:
        """The live instances in `session`'s order of preference."""
        return ranked(session, self.loads)

    # sessions -------------------------------------------------------------------------

    def place(self, session: str, load: float = 1.0) -> Move | None:
        """Put `session` (of weight `load`) on an instance; a placed session stays where it
        is with its new weight.  Returns the placement, None when it was placed already."""
        if not self.loads:
            raise InvalidRequest("instances", [], "no live instance to place a session on")
        if not load > 0.0:
            raise InvalidRequest("load", load, "expected a weight > 0")
        if session in self.where:
            self._set(session, self.where[session], load)
            return None
        target = self._roomy(session, load, self.bound(load))
        self._set(session, target, load)
        return Move(session, None, target)

    def close(self, session: str) -> None:
        """Forget `session` (closed); nothing moves."""
        instance = self.where.pop(session, None)
        if instance is not None:
            self.loads[instance] -= self.weights.pop(session)

    # instances ------------------------------------------------------------------------

    def join(self, instance: str) -> list[Move]:
        """Add `instance` and move to it its share of the load (see the module)."""
        if instance in self.loads:
            raise InvalidRequest("instance", instance, "already placed on")
        self.loads[instance] = 0.0
        target = self.mean
        moves: list[Move] = []
        for session in self._wanting(instance):
            if self.loads[instance] + self.weights[session] > target:
                continue
            moves.append(self._move(session, instance))
        return moves

    def leave(self, instance: str) -> list[Move]:
        """Remove `instance`; its sessions go to the first instance of their rankings with
        room (InvalidRequest if it is the last one while it holds sessions)."""
        if instance not in self.loads:
            raise InvalidRequest("instance", instance, "not placed on")
        leaving = sorted((s for s, i in self.where.items() if i == instance),
                         key=lambda s: -self.weights[s])
        if leaving and len(self.loads) == 1:
            raise InvalidRequest("instance", instance, "the last instance still holds "
                                 f"{len(leaving)} sessions")
        del self.loads[instance]
        bound = bound_of(sum(self.weights.values()), len(self.loads), self.epsilon)
        moves = []
        for session in leaving:
            load = self.weights.pop(session)
            del self.where[session]
            target = self._roomy(session, load, bound)
            self._set(session, target, load)
            moves.append(Move(session, instance, target))
        return moves

    def rebalance(self) -> list[Move]:
        """Move sessions off every instance above the bound, lightest first, each to the
        first instance of its ranking with room, else the least loaded, while that lowers
        the source's load below where it was; returns the moves."""
        moves: list[Move] = []
        bound = self.bound()
        for instance in sorted(self.loads, key=self.loads.__getitem__, reverse=True):
            ours = sorted((s for s, i in self.where.items() if i == instance),
                          key=self.weights.__getitem__)
            for session in ours:
                if self.loads[instance] <= bound:
                    break
                weight = self.weights[session]
                target = self._roomy(session, weight, bound, avoid=instance)
                # one at or under the bound takes it when that lowers the most loaded: no
                # instance ends above the bound plus one session
                if (target != instance and self.loads[target] <= bound
                        and self.loads[target] + weight < self.loads[instance]):
                    moves.append(self._move(session, target))
        return moves

    # inside ---------------------------------------------------------------------------

    def _roomy(self, session: str, load: float, bound: float, avoid: str = "") -> str:
        """The first instance of `session`'s ranking with room for `load` under `bound`
        (never `avoid`), else the least loaded."""
        ranking = [i for i in self.ranking(session) if i != avoid] or self.ranking(session)
        target = roomy(ranking, self.loads, load, bound)
        assert target is not None
        return target

    def _wanting(self, instance: str) -> Iterable[str]:
        """The sessions that rank `instance` above their own, from the most loaded
        instances first, then the rest of those instances' sessions."""
        by_load = sorted(self.where, key=lambda s: (-self.loads[self.where[s]], s))
        first = [s for s in by_load if score(s, instance) > score(s, self.where[s])]
        chosen = set(first)
        return [*first, *(s for s in by_load if s not in chosen)]

    def _move(self, session: str, target: str) -> Move:
        source = self.where[session]
        self._set(session, target, self.weights[session])
        return Move(session, source, target)

    def _set(self, session: str, instance: str, load: float) -> None:
        before = self.where.get(session)
        if before is not None:
            self.loads[before] -= self.weights[session]
        self.where[session] = instance
        self.weights[session] = load
        self.loads[instance] += load
