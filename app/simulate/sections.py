"""What every section of the simulator's report is built with: the section type, the
samples of the load window, and figures put with the reason when they are missing."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from app.observe.stats import percentile
from app.simulate.runner import RunResult
from app.simulate.sampler import Sample

Section = dict[str, Any]


NO_CPU_SAMPLE = "no CPU sample fell inside the load window"


def window(run: RunResult) -> list[Sample]:
    """The samples taken while the load ran (empty when none was: an error of the run)."""
    return [s for s in run.samples if s.at <= run.drive.elapsed_s + 0.5]


def put(section: Section, values: dict[str, Any], why: str = "") -> None:
    """Add `values` to `section`; a None value (a figure whose sample is empty) gets
    `why` under the section's ``why``, and a ``why`` in `values` is merged."""
    reasons = dict(values.pop("why", None) or {})
    for key, value in values.items():
        section[key] = value
        if value is None:
            reasons.setdefault(key, why)
    if reasons:
        section.setdefault("why", {}).update(reasons)


def rate(count: int, seconds: float) -> float:
    """`count` per second over `seconds`, two decimals."""
    return round(count / seconds, 2) if seconds > 0 else 0.0


def ratio(part: int, whole: int) -> float:
    """`part` over `whole`, to four places (0 when there is no whole)."""
    return round(part / whole, 4) if whole else 0.0


def ms(value: float) -> float:
    """Milliseconds to three decimals."""
    return round(value, 3)


def latency_summary(latencies: Sequence[float]) -> Section:
    """p50, p95, p99 and max (ms) of `latencies`; empty when there are none."""
    if not latencies:
        return {}
    return {"p50_ms": ms(percentile(latencies, 50)), "p95_ms": ms(percentile(latencies, 95)),
            "p99_ms": ms(percentile(latencies, 99)), "max_ms": ms(max(latencies))}
