"""Prometheus metrics per queue: enqueued, started, succeeded, failed, retried, latencies.

Metrics are created once, on first use.  Prefork workers share them through
prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``), set up by the CLI.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from dataclasses import dataclass

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    multiprocess,
    start_http_server,
)

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


# The controller's decision as gauges (`app.control.controller.Decision.gauges`), each named
# ``gamesched_control_<field>``, served by the controller's process.
CONTROL_GAUGES = {
    "ai_level": "AI's share of its full rate the controller allows.",
    "ai_tier": "Highest AI tier game servers give an NPC: 0 full, 1 reduced, 2 minimal.",
    "ai_slots": "AI tasks each AI worker may run at once (0: not managed).",
    "background_slots": "Background tasks each background worker may run at once "
                        "(0: not managed).",
    "background_level": "Background work's share of its full speed.",
    "shed_background": "1 while background work gives way (CPU near the cap).",
    "physics_detail": "Factor on the step rates of regions without players.",
    "cpu": "Server CPU, a share of the machine, at the last tick.",
    "cpu_ahead": "Server CPU forecast a few ticks ahead.",
    "strain": "The load the degradation ladder acted on.",
    "late_streak": "Ticks in a row with player batches past the late bar.",
    "physics_slowed": "Regions stepped at a fraction of their rate: too costly for a frame, "
                      "unable to split.",
}
_GAUGES: dict[str, Gauge] = {}


def show_decision(values: dict[str, float]) -> None:
    """Set the controller's gauges to `values` (by field of `CONTROL_GAUGES`)."""
    with _LOCK:
        for field, value in values.items():
            gauge = _GAUGES.get(field)
            if gauge is None:
                gauge = _GAUGES[field] = Gauge(f"gamesched_control_{field}",
                                               CONTROL_GAUGES[field],
                                               multiprocess_mode="mostrecent")
            gauge.set(value)


def _zeroed(counter: Counter, labels: tuple[str, ...]) -> Counter:
    """`counter` with a series for each of `labels` from the start, at zero."""
    for label in labels:
        counter.labels(label)
    return counter


def zero(queues: Iterable[str]) -> None:
    """Give each task counter a series for every one of `queues`, at zero, so that an alert
    on a counter (failures, retries) sees the queue before its first event."""
    m = metrics()
    labels = tuple(queues)
    for counter in (m.started, m.succeeded, m.failed, m.retried, m.skipped):
        _zeroed(counter, labels)


def zero_enqueued(queues: Iterable[str]) -> None:
    """Give the client's enqueued counter a series for every one of `queues`, at zero."""
    _zeroed(metrics().enqueued, tuple(queues))


def serve(port: int) -> None:
    """Serve /metrics on `port`, aggregating prefork children when multiprocess mode is on."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        start_http_server(port, registry=registry)
    else:
        start_http_server(port)
