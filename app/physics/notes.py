"""Region notes: where physics units leave each region's last step (the director's cost
input) and the running counts of what units and the director did (regions moved, skipped,
handed over; anomalies by kind), in this process or in Redis."""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

import msgpack
import redis

from app.physics.engine import StepResult
from app.protocol import keys

NOTES_EVERY_S = 0.25  # a unit writes its region notes to Redis at most this often


@dataclass(frozen=True)
class RegionNote:
    """A region's last step, as the unit that ran it saw it: the director's cost input."""

    unit: int
    frame: int
    bodies: int
    steps: int
    step_ms: float
    at: float = 0.0  # when, in seconds since the epoch
    cost_ms: float = 0.0  # the median of its last steps' CPU times: preemption does not count


class RegionNotes(Protocol):
    """Where units leave each region's last step, and the running counts of what units and
    the director did (regions moved, skipped, handed over; anomalies by kind)."""

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`."""

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step."""

    def count(self, amounts: Mapping[str, int]) -> None:
        """Add each amount to its running count."""

    def totals(self) -> dict[str, int]:
        """The running counts."""

    def reset(self) -> None:
        """Forget every note and count."""


class MemoryRegionNotes:
    """Region notes in this process."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._notes: dict[str, RegionNote] = {}
        self._totals: Counter[str] = Counter()

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`."""
        with self._lock:
            self._notes.update({s.region: _note(unit, s) for s in steps})

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step."""
        with self._lock:
            return dict(self._notes)

    def count(self, amounts: Mapping[str, int]) -> None:
        """Add each amount to its running count."""
        with self._lock:
            self._totals.update(amounts)

    def totals(self) -> dict[str, int]:
        """The running counts."""
        with self._lock:
            return dict(self._totals)

    def reset(self) -> None:
        """Forget every note and count."""
        with self._lock:
            self._notes.clear()
            self._totals.clear()


class RedisRegionNotes:
    """Region notes in a Redis hash, region to its packed note.  A unit writes its notes at
    most every `NOTES_EVERY_S` (the director reads them once a second): the newest note of
    each region waits, and a timer writes what is still waiting when the time comes."""

    def __init__(self, client: redis.Redis) -> None:
        self._client = client
        self._lock = threading.Lock()
        self._waiting: dict[str, RegionNote] = {}
        self._written = -math.inf  # when the notes were last written (monotonic)
        self._timer: threading.Timer | None = None

    def note(self, unit: int, steps: Sequence[StepResult]) -> None:
        """Record `steps`, run by `unit`: now, or with the next write."""
        if not steps:
            return
        with self._lock:
            self._waiting.update({s.region: _note(unit, s) for s in steps})  # packed when
            # written: a region noted again meanwhile is packed once
            if self._timer is not None:
                return
            delay = self._written + NOTES_EVERY_S - time.monotonic()
            if delay > 0:
                self._timer = threading.Timer(delay, self.flush)
                self._timer.daemon = True
                self._timer.start()
                return
        self.flush()

    def flush(self) -> None:
        """Write the notes waiting now."""
        with self._lock:
            waiting, self._waiting, self._timer = self._waiting, {}, None
            self._written = time.monotonic()
        if waiting:
            packed = {region: msgpack.packb(list(vars(note).values()))
                      for region, note in waiting.items()}
            self._client.hset(keys.PHYSICS_REGIONS, mapping=packed)  # type: ignore[arg-type]

    def read(self) -> dict[str, RegionNote]:
        """Every region's last step (this process's notes still waiting included)."""
        raw = self._client.hgetall(keys.PHYSICS_REGIONS)
        with self._lock:
            waiting = dict(self._waiting)
        return {_text(region): RegionNote(*msgpack.unpackb(value))
                for region, value in raw.items()} | waiting

    def count(self, amounts: Mapping[str, int]) -> None:
        """HINCRBY each running count, in one round trip."""
        pipe = self._client.pipeline(transaction=False)
        for name, amount in amounts.items():
            pipe.hincrby(keys.PHYSICS_TOTALS, name, amount)
        pipe.execute()

    def totals(self) -> dict[str, int]:
        """The running counts."""
        raw = self._client.hgetall(keys.PHYSICS_TOTALS)
        return {_text(name): int(value) for name, value in raw.items()}

    def reset(self) -> None:
        """Forget every note and count."""
        self._client.delete(keys.PHYSICS_REGIONS, keys.PHYSICS_TOTALS)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _note(unit: int, step: StepResult) -> RegionNote:
    return RegionNote(unit, step.frame, step.bodies, step.steps, round(step.step_ms, 3),
                      round(time.time(), 3), round(step.cost_ms, 4))


MEMORY_REGION_NOTES = MemoryRegionNotes()  # the embedded default's, shared by its units
