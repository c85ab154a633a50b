"""The closed vocabularies: every set of names the client API, the wire, the settings and
the command line accept, each defined once.  A name outside its set is refused with
InvalidRequest naming the field (`parse_name`)."""

from __future__ import annotations

from enum import StrEnum
from typing import TypeVar

from app.errors import InvalidRequest


class Queue(StrEnum):
    """The Celery queues; each kind of work has its own."""

    PLAYER = "player"
    PHYSICS = "physics"
    AI = "ai"
    TRANSACTIONS = "transactions"
    BACKGROUND = "background"
    CONTROL = "control"


class RoleName(StrEnum):
    """Worker roles: one per queue, plus ``all`` (every queue in one process)."""

    PLAYER = "player"
    PHYSICS = "physics"
    AI = "ai"
    TRANSACTIONS = "transactions"
    BACKGROUND = "background"
    CONTROL = "control"
    ALL = "all"

    @classmethod
    def workers(cls) -> tuple[RoleName, ...]:
        """The roles a fleet starts one worker each for (the controller runs ``control``)."""
        return (cls.PLAYER, cls.PHYSICS, cls.AI, cls.TRANSACTIONS, cls.BACKGROUND)


class SessionType(StrEnum):
    """What kind of session a game server opens; it weighs the session's priority."""

    RANKED = "ranked"
    CASUAL = "casual"
    COOP = "coop"
    SPECTATOR = "spectator"
    LOBBY = "lobby"


class SessionOp(StrEnum):
    """What a session task does to a session's SQL record."""

    OPEN = "open"
    UPDATE = "update"
    CLOSE = "close"


class SessionStatus(StrEnum):
    """A session's status in SQL."""

    OPEN = "open"
    CLOSED = "closed"


class BackgroundKind(StrEnum):
    """Background work a game server may send."""

    SNAPSHOT = "snapshot"
    ANALYTICS = "analytics"


class CpuPolicy(StrEnum):
    """Linux CPU scheduling policies a worker role may run under."""

    NORMAL = "normal"
    BATCH = "batch"
    IDLE = "idle"


E = TypeVar("E", bound=StrEnum)


def parse_name(vocabulary: type[E], field: str, value: object) -> E:
    """`value` as a member of `vocabulary`, or InvalidRequest naming `field` and the
    accepted names."""
    if isinstance(value, str) and value in vocabulary.__members__.values():
        return vocabulary(value)
    accepted = ", ".join(member.value for member in vocabulary)
    raise InvalidRequest(field, value, f"expected one of {accepted}")
