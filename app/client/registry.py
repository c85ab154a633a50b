"""The sessions a client instance owns, with the factors their priority comes from."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import NamedTuple

from app.errors import InvalidRequest
from app.priority import ActivityMeter, Factors

ACTIVE_HZ = 1.0  # at or above this input rate a player counts as active
STEP_TTL_S = 1.0  # a session's update step is recomputed at least this often


@dataclass
class SessionInfo:
    """One open session as its owning instance sees it."""

    session_type: str
    players: int
    region: str | None
    last_seq: int = 0
    activity: ActivityMeter = field(default_factory=ActivityMeter)
    step: int | None = None  # cached priority step of its updates, None when stale
    step_until: float = 0.0
    instance: str | None = None  # the server instance it runs on (None: the shared queue)


class Accepted(NamedTuple):
    """Where an accepted update goes: its priority step and its session's instance."""

    step: int
    instance: str | None


class SessionRegistry:
    """Open sessions, their last accepted sequence numbers and players per region."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sessions: dict[str, SessionInfo] = {}
        self._region_players: dict[str, int] = {}

    def open(self, session_id: str, session_type: str, players: int, region: str | None,
             instance: str | None = None) -> None:
        """Register a session running on `instance` (again: its factors and instance are
        replaced, its sequence kept)."""
        with self._lock:
            old = self._sessions.get(session_id)
            if old is not None:
                self._move_players(old.region, -old.players)
            info = SessionInfo(session_type, players, region, last_seq=old.last_seq if old else 0,
                               instance=instance)
            self._sessions[session_id] = info
            self._move_players(region, players)

    def opened(self, session_id: str) -> SessionInfo | None:
        """A copy of what `session_id` is open with here (None when it is not)."""
        with self._lock:
            info = self._sessions.get(session_id)
            return None if info is None else replace(info)

    def change(self, session_id: str, *, session_type: str | None = None,
               players: int | None = None, region: str | None = None) -> SessionInfo:
        """Change a session's factors; its next work is prioritised by the new ones."""
        with self._lock:
            info = self._get(session_id)
            self._move_players(info.region, -info.players)
            info.session_type = session_type or info.session_type
            info.players = info.players if players is None else players
            info.region = info.region if region is None else region
            info.step = None  # the next update is prioritised by the new factors
            self._move_players(info.region, info.players)
            return info

    def close(self, session_id: str) -> None:
        """Forget a session."""
        with self._lock:
            info = self._get(session_id)
            self._move_players(info.region, -info.players)
            del self._sessions[session_id]

    def release(self, session_ids: Iterable[str]) -> int:
        """Forget the sessions of `session_ids` this table holds; how many it held."""
        with self._lock:
            held = [s for s in dict.fromkeys(session_ids) if s in self._sessions]
            for session_id in held:
                info = self._sessions.pop(session_id)
                self._move_players(info.region, -info.players)
            return len(held)

    def accept(self, session_id: str, seq: int, step_of: Callable[[Factors], int]) -> Accepted:
        """Accept update `seq` of a session; returns the priority step to send it at and the
        session's instance.

        The step is `step_of(factors)`, cached for STEP_TTL_S (activity changes slowly) and
        recomputed at once after a change of factors.  Raises InvalidRequest for an unknown
        session or a sequence that does not grow.
        """
        now = time.monotonic()
        with self._lock:
            info = self._get(session_id)
            if seq <= info.last_seq:
                raise InvalidRequest("seq", seq, f"must exceed {info.last_seq}, the last sent")
            info.last_seq = seq
            info.activity.hit(now)
            if info.step is None or now >= info.step_until:
                info.step, info.step_until = step_of(self._factors(info, now)), now + STEP_TTL_S
            return Accepted(info.step, info.instance)

    # moves between instances -----------------------------------------------------------

    def ids(self) -> list[str]:
        """The open sessions."""
        with self._lock:
            return list(self._sessions)

    def move(self, session_id: str, instance: str) -> str | None:
        """`session_id` runs on `instance` now: its work goes there.  Returns the instance it
        left (None when it was there already, or is no longer open)."""
        with self._lock:
            info = self._sessions.get(session_id)
            if info is None or info.instance == instance:
                return None
            old, info.instance = info.instance, instance
            return old

    def instance(self, session_id: str) -> str | None:
        """The instance a session runs on (None: the shared queue)."""
        with self._lock:
            return self._get(session_id).instance

    def instance_if_open(self, session_id: str) -> str | None:
        """The instance a session runs on, or None (the shared queue, or closed)."""
        with self._lock:
            info = self._sessions.get(session_id)
            return None if info is None else info.instance

    def instance_names(self) -> set[str]:
        """The instances the open sessions run on."""
        with self._lock:
            return {i.instance for i in self._sessions.values() if i.instance is not None}

    def factors(self, session_id: str) -> Factors:
        """A session's current factors."""
        with self._lock:
            return self._factors(self._get(session_id))

    def region_players(self, region: str) -> int:
        """Players in a region across this instance's sessions."""
        with self._lock:
            return self._region_players.get(region, 0)

    def players_by_region(self) -> dict[str, int]:
        """Players in each region with any, across this instance's sessions."""
        with self._lock:
            return {r: n for r, n in self._region_players.items() if n > 0}

    def _factors(self, info: SessionInfo, now: float | None = None) -> Factors:
        region_players = self._region_players.get(info.region, 0) if info.region else 0
        return Factors(session_type=info.session_type, players=info.players,
                       region_players=region_players, activity_hz=info.activity.value(now))

    def _get(self, session_id: str) -> SessionInfo:
        info = self._sessions.get(session_id)
        if info is None:
            raise InvalidRequest("session_id", session_id, "no open session with this id")
        return info

    def _move_players(self, region: str | None, players: int) -> None:
        if region is not None:
            self._region_players[region] = self._region_players.get(region, 0) + players
