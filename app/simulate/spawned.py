"""What the simulator's spawned processes (game servers, store processes) do before they
play: lead a session of their own, and keep their start-up heap out of the collector."""

from __future__ import annotations

import contextlib
import gc
import os
from collections.abc import Iterator


def own_session() -> None:
    """Lead a session of its own, as a game server started as a service does: Linux's
    autogroup scheduling shares the CPU between sessions first, and a game server left in
    the simulator's session would share one session's part with the simulator, the store
    and every other game server, where the workers each have theirs."""
    with contextlib.suppress(OSError):  # already a session leader
        os.setsid()


@contextlib.contextmanager
def frozen_heap() -> Iterator[None]:
    """Keep what this process built before the load (sessions, the schedule, the client's
    tables) out of the garbage collector while the load runs: a full collection over it
    stopped the game loop and the client's sends for as long as it took to walk that heap
    (docs/measurements.md)."""
    gc.collect()
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
