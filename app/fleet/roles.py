"""Worker roles: which queues each role consumes, and with which pool."""

from __future__ import annotations

from dataclasses import dataclass

from app.errors import InvalidRequest
from app.protocol.vocab import Queue, RoleName, parse_name


@dataclass(frozen=True)
class Role:
    """How a worker role consumes its queues."""

    name: RoleName
    queues: tuple[Queue, ...]
    pool: str


ROLES: dict[str, Role] = {
    RoleName.PLAYER: Role(RoleName.PLAYER, (Queue.PLAYER,), "threads"),
    RoleName.PHYSICS: Role(RoleName.PHYSICS, (Queue.PHYSICS,), "threads"),
    RoleName.AI: Role(RoleName.AI, (Queue.AI,), "prefork"),  # its pool resized (controller)
    RoleName.TRANSACTIONS: Role(RoleName.TRANSACTIONS, (Queue.TRANSACTIONS,), "threads"),
    RoleName.BACKGROUND: Role(RoleName.BACKGROUND, (Queue.BACKGROUND,), "prefork"),
    RoleName.CONTROL: Role(RoleName.CONTROL, (Queue.CONTROL,), "solo"),
    RoleName.ALL: Role(RoleName.ALL, tuple(Queue), "threads"),
}

WORKER_ROLES: tuple[str, ...] = tuple(str(r) for r in RoleName.workers())


def role(name: str) -> Role:
    """Return the role called `name`, or raise InvalidRequest naming it."""
    return ROLES[parse_name(RoleName, "role", name)]


__all__ = ["ROLES", "WORKER_ROLES", "InvalidRequest", "Role", "role"]
