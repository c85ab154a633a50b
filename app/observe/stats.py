"""Per-queue latency summaries from execution records."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from app.observe.recorder import Execution


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank `q`-th percentile (0..100) of `values`; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100.0 * len(ordered)))
    return ordered[rank - 1]


@dataclass(frozen=True)
class QueueStats:
    """Counts and latencies (hand-off to applied) of one queue."""

    queue: str
    tasks: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float


def by_queue(executions: Iterable[Execution]) -> dict[str, QueueStats]:
    """Summarise executions per queue."""
    grouped: dict[str, list[Execution]] = {}
    for ex in executions:
        grouped.setdefault(ex.queue, []).append(ex)
    return {queue: summarise(queue, items) for queue, items in sorted(grouped.items())}


def by_task(executions: Iterable[Execution], labels: dict[str, str]) -> list[QueueStats]:
    """Summarise the executions of each task named in `labels`, under its label (tasks
    with no execution are left out)."""
    grouped: dict[str, list[Execution]] = {}
    for ex in executions:
        if ex.task in labels:
            grouped.setdefault(ex.task, []).append(ex)
    return [summarise(label, grouped[task]) for task, label in labels.items() if task in grouped]


def summarise(queue: str, items: list[Execution]) -> QueueStats:
    """Counts and latencies of `items` (at least one) under the name `queue`."""
    latencies = [ex.latency_ms for ex in items]
    return QueueStats(
        queue=queue, tasks=len(items), failed=sum(not ex.ok for ex in items),
        p50_ms=percentile(latencies, 50), p99_ms=percentile(latencies, 99),
        max_ms=max(latencies),
    )
