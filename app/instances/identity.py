"""Which server instance this process is, with its fencing token: its player worker's
writes to session state carry them (`app.players.statestore.Fence`)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Identity:
    """A server instance and the fencing token it started with."""

    instance: str
    token: int


_lock = threading.Lock()
_current: Identity | None = None
_on_fenced: Callable[[], None] | None = None


def current() -> Identity | None:
    """This process's instance, or None (a worker of the shared queues)."""
    return _current


def set_current(identity: Identity | None,
                on_fenced: Callable[[], None] | None = None) -> None:
    """This process is `identity` from now on (None: no instance); `on_fenced` is what a
    refused write calls (`fenced`)."""
    global _current, _on_fenced
    with _lock:
        _current, _on_fenced = identity, on_fenced


def fenced() -> None:
    """A write of this process was refused: its instance was taken over.  Tells whoever
    set the identity (a worker stops taking work and starts again)."""
    callback = _on_fenced
    if callback is not None:
        callback()
