"""The process's metrics are created once, even when many threads ask for them first."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import prometheus_client

import app.observe.metrics as module


def _forget_metrics() -> None:
    """Start from a process that has not created its metrics yet."""
    module._METRICS.clear()
    registry = prometheus_client.REGISTRY
    for collector, names in list(registry._collector_to_names.items()):
        made = ("gamesched_task", "gamesched_physics", "gamesched_memory")
        if any(name.startswith(made) for name in names):
            registry.unregister(collector)


def test_metrics_are_created_once_when_many_threads_ask_first() -> None:
    _forget_metrics()
    start = threading.Barrier(8)

    def first_use(_: int) -> module.Metrics:
        start.wait(timeout=10)
        return module.metrics()

    with ThreadPoolExecutor(8) as pool:
        made = list(pool.map(first_use, range(8)))
    assert all(m is made[0] for m in made)
