"""The largest player count a system serves at its latency target: the figure that travels
between machines, where absolute latencies do not.

A count passes when the game servers kept to the schedule and the player p99 from the
moment players acted stayed under the target.  The search bisects between a count that
passes and one that fails, assuming that more players never make things better.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

TARGET_P99_MS = 50.0
TOLERANCE = 0.05  # stop when the bracket is within 5 % of the count that passed


@dataclass(frozen=True)
class Probe:
    """One run of the search: its player count, what it measured, and whether it passed."""

    players: int
    p99_ms: float | None
    kept_up: bool
    passed: bool


@dataclass
class Capacity:
    """The search's answer: the largest count that passed (None: not even the lowest),
    and every probe in the order it ran."""

    sessions: int | None = None
    probes: list[Probe] = field(default_factory=list)

    def as_report(self) -> dict[str, Any]:
        """The report's ``capacity`` section."""
        return {"sessions": self.sessions, "target_p99_ms": TARGET_P99_MS,
                "probes": [vars(p) for p in self.probes]}


def passes(report: dict[str, Any], target_ms: float = TARGET_P99_MS) -> Probe:
    """Whether one run's report holds the target."""
    p99 = (report.get("player") or {}).get("p99_ms")
    kept_up = bool((report.get("simulator") or {}).get("kept_up"))
    return Probe(int(report.get("players") or 0), p99, kept_up,
                 kept_up and p99 is not None and p99 < target_ms)


def search(run: Callable[[int], dict[str, Any]], low: int, high: int,
           tolerance: float = TOLERANCE) -> Capacity:
    """Bisect the player count in ``[low, high]`` for the largest at which `run`'s report
    passes."""
    found = Capacity()

    def ok(players: int) -> bool:
        probe = replace(passes(run(players)), players=players)  # the count asked for
        found.probes.append(probe)
        return probe.passed

    if not ok(low):
        return found
    if ok(high):
        found.sessions = high
        return found
    while high - low > max(1, int(low * tolerance)):
        middle = (low + high) // 2
        low, high = (middle, high) if ok(middle) else (low, middle)
    found.sessions = low
    return found
