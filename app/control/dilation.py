"""Background dilation: background work slows down while players' work runs late.

Every player state batch that takes longer than ``player_target_ms`` from hand-off to
applied counts itself in the hot store.  Each controller tick compares the count with the
last tick's: more than `SLOW_ALLOWED` late batches halve the background level, and so does
a tick in which the controller sheds background work (the first rung of its ladder: CPU
near the cap); otherwise it grows by a quarter, between `BACKGROUND_FLOOR` and 1.  A
background task then pauses after it runs, for its own run time times ``1 / level - 1``,
so background work takes about `level` of the CPU time it would take at full speed (the
rest of the time its pool slot waits), and the machine it shares with the players stays
quieter.  Background work is never stopped: at the floor it still runs at a twentieth of
its speed.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable

from app.players.hotstore import HotStore
from app.protocol import keys

SLOW_ALLOWED = 1  # late batches per controller tick that do not slow background work
BACKGROUND_FLOOR = 0.05
MAX_PAUSE_S = 1.0  # one pause never holds a background slot longer than this


def note_latency(hot: HotStore, latency_s: float, target_s: float,
                 late_s: float = math.inf) -> None:
    """Count a player batch that missed `target_s`, and one past `late_s` again apart."""
    note_latencies(hot, (latency_s,), target_s, late_s)


def note_latencies(hot: HotStore, latencies_s: Iterable[float], target_s: float,
                   late_s: float = math.inf) -> None:
    """`note_latency` for several player batches, in at most one round trip."""
    slow = late = 0
    for latency_s in latencies_s:
        slow += latency_s > target_s
        late += latency_s > late_s
    counts = {key: n for key, n in ((keys.CONTROL_PLAYER_SLOW, slow),
                                    (keys.CONTROL_PLAYER_LATE, late)) if n}
    if counts:
        hot.incr_many(counts)


def slow_total(hot: HotStore, key: str = keys.CONTROL_PLAYER_SLOW) -> int:
    """Player batches counted so far past the target (or past the late bar, with
    ``keys.CONTROL_PLAYER_LATE``)."""
    raw = hot.get(key)
    return int(raw) if raw else 0


def next_level(level: float, late: int, shed: bool = False) -> float:
    """The background level after a tick that saw `late` late player batches, or in which
    the controller `shed` background work (its CPU forecast near the cap)."""
    if shed or late > SLOW_ALLOWED:
        return round(max(BACKGROUND_FLOOR, level / 2), 4)
    return round(min(1.0, level * 1.25), 4)


def pause_after(run_s: float, level: float) -> float:
    """Seconds a background task that ran `run_s` pauses at `level` (0 at full speed)."""
    if level >= 1.0:
        return 0.0
    return min(MAX_PAUSE_S, max(0.0, run_s) * (1.0 / max(level, BACKGROUND_FLOOR) - 1.0))


def dilate(run_s: float, level: float) -> None:
    """Pause the calling worker slot as `pause_after` says."""
    pause = pause_after(run_s, level)
    if pause > 0:
        time.sleep(pause)
