"""Prometheus metrics per queue: enqueued, started, succeeded, failed, retried, latencies.

Metrics are created once, on first use.  Prefork workers share them through
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), set up by the CLI.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass

from prometheus_client import CollectorRegistry, Counter, Histogram, multiprocess, start_http_server

# The kinds of `app.physics.anomalies` (named here: metrics sit below the domain).
ANOMALY_KINDS = ("non_finite", "escaped", "too_fast", "over_budget")
_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.0, 5.0, 10.0)


@dataclass(frozen=True)
class Metrics:
    """The per-queue task metrics."""

    enqueued: Counter
    started: Counter
    succeeded: Counter
    failed: Counter
    retried: Counter
    skipped: Counter
    wait_seconds: Histogram
    latency_seconds: Histogram
    physics_anomalies: Counter  # by kind
    physics_skipped: Counter  # regions a unit could not step (not its own, or in transit)
    physics_handed_over: Counter  # regions a unit handed over to another
    physics_crossed: Counter  # bodies that left a region for a neighbour
    physics_rested: Counter  # region steps skipped: everything in the region at rest
    memory_stops: Counter  # by role: jobs stopped, workers replaced, past the memory budget


_LOCK = threading.Lock()
_METRICS: list[Metrics] = []


def metrics() -> Metrics:
    """The process's metrics, created on first use (once, however many threads ask at
    once: the registry refuses a second copy)."""
    if not _METRICS:
        with _LOCK:
            if not _METRICS:
                _METRICS.append(_create())
    return _METRICS[0]


def _create() -> Metrics:

    def counter(name: str, doc: str) -> Counter:
        return Counter(f"gamesched_tasks_{name}", doc, ["queue"])

    def histogram(name: str, doc: str) -> Histogram:
        return Histogram(f"gamesched_task_{name}_seconds", doc, ["queue"], buckets=_BUCKETS)

    return Metrics(
        enqueued=counter("enqueued", "Tasks handed to the broker by the client API."),
        started=counter("started", "Tasks a worker started."),
        succeeded=counter("succeeded", "Tasks that finished without error."),
        failed=counter("failed", "Tasks that raised."),
        retried=counter("retried", "Tasks scheduled for a retry."),
        skipped=counter("skipped", "Stale copies skipped after a priority raise."),
        wait_seconds=histogram("wait", "From hand-off to a worker starting the task."),
        latency_seconds=histogram("latency", "From hand-off to the task being applied."),
        physics_anomalies=_zeroed(Counter(
            "gamesched_physics_anomalies", "Physics anomalies contained, by kind.", ["kind"]),
            ANOMALY_KINDS),
        physics_skipped=Counter("gamesched_physics_regions_skipped",
                                "Due regions a physics unit could not step in their frame."),
        physics_handed_over=Counter("gamesched_physics_regions_handed_over",
                                    "Regions a physics unit handed over to another."),
        physics_crossed=Counter("gamesched_physics_bodies_crossed",
                                "Bodies that crossed a border into a neighbouring region."),
        physics_rested=Counter("gamesched_physics_steps_rested",
                               "Region steps skipped because everything in the region was "
                               "at rest."),
        memory_stops=Counter("gamesched_memory_stops",
                             "Times a worker passed its memory budget: its longest-running "
                             "job stopped, the worker replaced.", ["role"]),
    )


def _zeroed(counter: Counter, labels: tuple[str, ...]) -> Counter:
    """`counter` with a series for each of `labels` from the start, at zero."""
    for label in labels:
        counter.labels(label)
    return counter


def serve(port: int) -> None:
    """Serve /metrics on `port`, aggregating prefork children when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)
