"""The stale-intent alarm: Prometheus gauges the sweeper sets on every run.

Alert on ``gamesched_ledger_pending_stale > 0``: some intent has been pending for longer
than two seconds (a lost message, a dead transactions worker, or a database in trouble).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

from prometheus_client import Gauge


@dataclass(frozen=True)
class Alarm:
    """The ledger's health gauges."""

    stale: Gauge
    oldest_seconds: Gauge


@lru_cache(maxsize=1)
def alarm() -> Alarm:
    """The process's ledger gauges, created on first use."""
    return Alarm(
        stale=Gauge("gamesched_ledger_pending_stale",
                    "Transactions pending longer than 2 s (alarm when above zero).",
                    multiprocess_mode="mostrecent"),
        oldest_seconds=Gauge("gamesched_ledger_pending_oldest_seconds",
                             "Age of the oldest pending transaction, 0 when none.",
                             multiprocess_mode="mostrecent"),
    )


def publish(stale: int, oldest_seconds: float) -> None:
    """Set the gauges from the sweeper's latest reading."""
    gauges = alarm()
    gauges.stale.set(stale)
    gauges.oldest_seconds.set(oldest_seconds)
