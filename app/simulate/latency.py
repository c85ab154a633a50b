"""Latency from the moment the schedule meant something to happen, counted per item.

Percentiles come from HdrHistogram (microsecond resolution, three significant digits, up to
an hour), so every update counts once whatever the batch it travelled in, and histograms
of several processes merge without losing precision.  Work that was handed over and never
applied counts too, with its age at the end of the drain.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from hdrh.histogram import HdrHistogram

LOWEST_US, HIGHEST_US, DIGITS = 1, 3_600_000_000, 3
PERCENTILES = {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0, "p999_ms": 99.9}


class Latencies:
    """A latency histogram in milliseconds, with the exact largest value beside it."""

    def __init__(self) -> None:
        self.histogram = HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)
        self.max_ms = 0.0

    @property
    def count(self) -> int:
        """Values recorded."""
        return int(self.histogram.get_total_count())

    def record(self, ms: float, count: int = 1) -> None:
        """Record `count` values of `ms` (clamped into the histogram's range)."""
        us = min(HIGHEST_US, max(LOWEST_US, round(ms * 1000.0)))
        self.histogram.record_value(us, count)
        self.max_ms = max(self.max_ms, ms)

    def merge(self, other: Latencies) -> None:
        """Add `other`'s values to these."""
        self.histogram.add(other.histogram)
        self.max_ms = max(self.max_ms, other.max_ms)

    def percentile_ms(self, percent: float) -> float:
        """The value at `percent` (0..100), in ms."""
        return float(self.histogram.get_value_at_percentile(percent)) / 1000.0

    def summary(self, why_empty: str) -> dict[str, Any]:
        """p50, p95, p99, p99.9 and max in ms; each None, with `why_empty`, when nothing
        was recorded."""
        if not self.count:
            return {**dict.fromkeys([*PERCENTILES, "max_ms"]),
                    "why": dict.fromkeys([*PERCENTILES, "max_ms"], why_empty)}
        # a bucket's value may lie a little above the exact largest value it holds
        out = {key: round(min(self.percentile_ms(p), self.max_ms), 3)
               for key, p in PERCENTILES.items()}
        out["max_ms"] = round(self.max_ms, 3)
        return out


@dataclass
class Outcome:
    """Latencies of work from its intended time: `applied` items finished (`within` of
    them inside the budget asked for), `unapplied` ones never did and count with their age
    at the end of the drain."""

    latencies: Latencies
    applied: int = 0
    unapplied: int = 0
    within: int = 0


def outcome(batches: Iterable[tuple[str, Iterable[float]]], done: Mapping[str, float],
            end: float, budget_ms: float = float("inf")) -> Outcome:
    """Every item of every ``(task_id, intended times)`` batch, timed from its intended
    time to its task's `done` time, or to `end` when the task never finished."""
    out = Outcome(Latencies())
    for task_id, intended in batches:
        finished = done.get(task_id)
        for at in intended:
            ms = ((finished if finished is not None else end) - at) * 1000.0
            out.latencies.record(ms)
            if finished is None:
                out.unapplied += 1
            else:
                out.applied += 1
                out.within += ms <= budget_ms
    return out
