"""The instance registry in this process: the embedded default's, and fast tests'."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Sequence

from app.errors import ServerFull
from app.instances.base import RETRY_AFTER_S, InstanceState, Placing, choose, milli, pulls
from app.instances.placement import EPSILON, Move, ranked


class MemoryRegistry:
    """The registry in this process (`app.instances.registry`)."""

    def __init__(self, ttl_s: float = 3.0, epsilon: float = EPSILON,
                 clock: Callable[[], float] = time.time) -> None:
        self.ttl_s, self.epsilon, self._clock = ttl_s, epsilon, clock
        self._lock = threading.Lock()
        self._seen: dict[str, float] = {}
        self._capacity: dict[str, int] = {}
        self._draining: set[str] = set()
        self._owner: dict[str, str] = {}
        self._weight: dict[str, int] = {}
        self._load: dict[str, int] = {}
        self._count: dict[str, int] = {}
        self._epoch = 0
        self._generation = uuid.uuid4().hex
        self._token: dict[str, int] = {}
        self._refused: dict[str, int] = {}
        self._moved: dict[str, int] = {}
        self._hot: dict[str, str] = {}
        self._hot_names: dict[str, str] = {}
        self._from: dict[str, str] = {}

    def join(self, instance: str, capacity: int, hot_url: str = "", hot_name: str = "") -> int:
        """`instance` starts: it takes sessions again, its state on `hot_url`, a store named
        `hot_name`; returns its new token (one process: the state store checks no token)."""
        with self._lock:
            self._draining.discard(instance)
            if hot_url:
                self._hot[instance] = hot_url
            if hot_name:
                self._hot_names[instance] = hot_name
            token = self._token[instance] = self._token.get(instance, 0) + 1
        self.heartbeat(instance, capacity, token)
        return token

    def heartbeat(self, instance: str, capacity: int, token: int | None = None) -> bool:
        """`instance` is alive and takes up to `capacity` sessions (False: fenced)."""
        with self._lock:
            if token is not None and token != self._token.get(instance):
                return False
            self._seen[instance], self._capacity[instance] = self._clock(), capacity
            return True

    def fence(self, instance: str) -> None:
        """Take `instance` over: its token raised."""
        with self._lock:
            self._token[instance] = self._token.get(instance, 0) + 1

    def copy_token(self, instance: str) -> bool:
        """Nothing to copy: in one process the state store checks no token."""
        return True

    def hot_urls(self) -> dict[str, str]:
        """The hot store of each instance that recorded one."""
        with self._lock:
            return dict(self._hot)

    def hot_names(self) -> dict[str, str]:
        """The hot store's name of each instance that recorded one."""
        with self._lock:
            return dict(self._hot_names)

    def refused(self, instance: str, writes: int = 1) -> None:
        """Count writes refused from `instance`."""
        with self._lock:
            self._refused[instance] = self._refused.get(instance, 0) + writes

    def leave(self, instance: str) -> None:
        """`instance` stopped: it is silent from now on."""
        with self._lock:
            if instance in self._seen:
                self._seen[instance] = 0.0

    def forget(self, instance: str) -> None:
        """Remove `instance` from the registry."""
        with self._lock:
            self._seen.pop(instance, None)
            self._capacity.pop(instance, None)
            self._draining.discard(instance)

    def place(self, session: str, weight: float, prefer: str | None = None) -> str | None:
        """See `Registry.place`."""
        with self._lock:
            return self._place(session, milli(weight), prefer=prefer)

    def place_many(self, requests: Sequence[Placing]) -> list[str | None]:
        """See `Registry.place_many`."""
        out: list[str | None] = []
        for session, weight, prefer in requests:
            try:
                out.append(self.place(session, weight, prefer))
            except ServerFull:
                out.append(None)
        return out

    def drain(self, instance: str) -> list[Move]:
        """See `Registry.drain`."""
        with self._lock:
            self._draining.add(instance)
            ours = sorted(s for s, owner in self._owner.items() if owner == instance)
            moves = []
            for session in ours:
                target = self._place(session, self._weight[session], avoid=instance,
                                     full_ok=True)
                if target is not None and target != instance:
                    moves.append(Move(session, instance, target))
            return moves

    def rebalance(self) -> list[Move]:
        """See `Registry.rebalance`."""
        with self._lock:
            now = self._clock()
            live = sorted(i for i, seen in self._seen.items()
                          if now - seen <= self.ttl_s and i not in self._draining)
            plan = pulls(live, {i: self._load.get(i, 0) for i in live}, self._owner,
                         self._weight, self.epsilon)
            return [move for move in plan if self._move_to(move)]

    def _move_to(self, move: Move) -> bool:
        if self._owner.get(move.session) != move.source or not self._room(move.target):
            return False
        self._assign(move.session, move.target, self._weight[move.session], "rebalance")
        return True

    def moved(self) -> dict[str, int]:
        """Sessions moved so far, by why."""
        with self._lock:
            return dict(self._moved)

    def _place(self, session: str, w: int, avoid: str = "",
               full_ok: bool = False, prefer: str | None = None) -> str | None:
        owner = self._owner.get(session)
        if owner is not None and owner != avoid:
            self._load[owner] += w - self._weight[session]
            self._weight[session] = w
            return owner
        now = self._clock()
        live = [i for i in ranked(session, self._seen) if now - self._seen[i] <= self.ttl_s
                and i != avoid and i not in self._draining]
        if not live:
            return owner
        pick = choose(live, {i: self._load.get(i, 0) for i in live}, self._room, w,
                      self.epsilon, prefer=prefer)
        if pick is None:
            if full_ok:
                return owner
            raise ServerFull(len(live), RETRY_AFTER_S)
        self._assign(session, pick, w, "drain")
        if owner is None and prefer and pick != prefer:
            self._from[session] = prefer  # its state is there: taken as after a move
        return pick

    def _assign(self, session: str, instance: str, w: int, why: str) -> None:
        """Put `session` (of weight `w`) on `instance`; if it was placed, that is a move,
        counted under `why` and raising the epoch."""
        if session in self._owner:
            self._from[session] = self._owner[session]
            self._unset(session)
            self._epoch += 1
            self._moved[why] = self._moved.get(why, 0) + 1
        self._owner[session], self._weight[session] = instance, w
        self._load[instance] = self._load.get(instance, 0) + w
        self._count[instance] = self._count.get(instance, 0) + 1

    def _room(self, instance: str) -> bool:
        return self._count.get(instance, 0) < self._capacity.get(instance, 0)

    def _unset(self, session: str) -> None:
        owner = self._owner.pop(session, None)
        if owner is not None:
            self._load[owner] -= self._weight.pop(session)
            self._count[owner] -= 1

    def owner(self, session: str) -> str | None:
        """The instance `session` was placed on, or None."""
        with self._lock:
            return self._owner.get(session)

    def owners(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance of each of `sessions`, in order."""
        with self._lock:
            return [self._owner.get(s) for s in sessions]

    def epoch(self) -> int:
        """How many times a placed session has moved."""
        with self._lock:
            return self._epoch

    def generation(self) -> str:
        """This registry's token once an instance joined (it lives as long as the process)."""
        with self._lock:
            return self._generation if self._token else ""

    def release(self, session: str) -> None:
        """`session` closed: its load leaves its instance."""
        with self._lock:
            self._unset(session)
            self._from.pop(session, None)

    def came_from(self, sessions: Sequence[str]) -> list[str | None]:
        """The instance each of `sessions` last moved from, until `arrived`."""
        with self._lock:
            return [self._from.get(s) for s in sessions]

    def arrived(self, sessions: Sequence[str], source: str) -> None:
        """`sessions`' state was taken from `source`: forget where they came from."""
        with self._lock:
            for session in sessions:
                if self._from.get(session) == source:
                    del self._from[session]

    def instances(self) -> list[InstanceState]:
        """Every registered instance, by name."""
        now = self._clock()
        with self._lock:
            return [InstanceState(name, self._capacity[name], self._count.get(name, 0),
                                  self._load.get(name, 0) / 1000, now - seen,
                                  now - seen <= self.ttl_s, name in self._draining,
                                  self._refused.get(name, 0), self._hot.get(name, ""))
                    for name, seen in sorted(self._seen.items())]
