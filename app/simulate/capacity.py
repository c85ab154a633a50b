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
    the bracket the capacity lies in (the largest count that passed and the smallest that
    failed; None where no probe says), and every probe in the order it ran."""

    sessions: int | None = None
    probes: list[Probe] = field(default_factory=list)
    failed: int | None = None  # the smallest count that failed

    def as_report(self) -> dict[str, Any]:
        """The report's ``capacity`` section."""
        return {"sessions": self.sessions, "bracket": [self.sessions, self.failed],
                "target_p99_ms": TARGET_P99_MS, "probes": [vars(p) for p in self.probes]}


def passes(report: dict[str, Any], target_ms: float = TARGET_P99_MS) -> Probe:
    """Whether one run's report holds the target."""
    p99 = (report.get("player") or {}).get("p99_ms")
    kept_up = bool((report.get("simulator") or {}).get("kept_up"))
    return Probe(int(report.get("players") or 0), p99, kept_up,
                 kept_up and p99 is not None and p99 < target_ms)


def search(run: Callable[[int], dict[str, Any]], low: int, high: int,
           tolerance: float = TOLERANCE, max_probes: int | None = None) -> Capacity:
    """Bisect the player count in ``[low, high]`` for the largest at which `run`'s report
    passes, until the bracket is within `tolerance` of the count that passed or
    `max_probes` runs were made (the bracket then says how far the search got)."""
    found = Capacity()

    def ok(players: int) -> bool:
        probe = replace(passes(run(players)), players=players)  # the count asked for
        found.probes.append(probe)
        if probe.passed:
            found.sessions = players
        else:
            found.failed = players
        return probe.passed

    def more() -> bool:
        return max_probes is None or len(found.probes) < max_probes

    if not ok(low) or not more() or ok(high):
        return found
    while high - low > max(1, int(low * tolerance)) and more():
        middle = (low + high) // 2
        low, high = (middle, high) if ok(middle) else (low, middle)
    return found
