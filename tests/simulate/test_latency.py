"""Latency from intended time, every item counted once (HdrHistogram)."""

from __future__ import annotations

import pytest

from app.simulate.latency import Latencies, outcome


def test_a_batch_of_256_updates_weighs_256_in_the_percentiles() -> None:
    full = [100.0 + i * 1e-6 for i in range(256)]  # applied 10 ms after they happened
    late = [100.0]  # one update alone in a batch, applied 500 ms after it happened
    timed = outcome([("full", full), ("alone", late)], {"full": 100.010, "alone": 100.5},
                    end=200.0)
    assert timed.latencies.count == 257 and timed.applied == 257
    # by update, 256 of 257 waited 10 ms: the 99th percentile is theirs, not the lone one's
    assert timed.latencies.percentile_ms(99) == pytest.approx(10.0, abs=0.02)
    assert timed.latencies.max_ms == pytest.approx(500.0)


def test_work_that_never_ran_counts_with_its_age_at_the_end_of_the_drain() -> None:
    timed = outcome([("ran", [10.0]), ("lost", [10.0, 11.0])], {"ran": 10.002}, end=12.0)
    assert (timed.applied, timed.unapplied) == (1, 2)
    assert timed.latencies.max_ms == pytest.approx(2000.0)
    assert timed.latencies.percentile_ms(50) == pytest.approx(1000.0, rel=0.002)


def test_within_counts_only_applied_work_inside_the_budget() -> None:
    frames = [("a", [0.0]), ("b", [0.0]), ("c", [0.0])]
    timed = outcome(frames, {"a": 0.010, "b": 0.020}, end=1.0, budget_ms=16.0)
    assert (timed.within, timed.applied, timed.unapplied) == (1, 2, 1)


def test_histograms_of_several_processes_merge_into_one() -> None:
    one, two = Latencies(), Latencies()
    one.record(5.0, 99)
    two.record(300.0)
    one.merge(two)
    assert one.count == 100
    assert one.percentile_ms(99) == pytest.approx(5.0, rel=0.002)
    assert one.percentile_ms(100) == pytest.approx(300.0, rel=0.002)


def test_an_empty_histogram_summarises_as_nulls_with_a_reason() -> None:
    summary = Latencies().summary("nothing ran")
    assert summary["p99_ms"] is None and summary["max_ms"] is None
    assert summary["why"]["p99_ms"] == "nothing ran"
    filled = Latencies()
    filled.record(1.5)
    assert filled.summary("nothing ran") == {"p50_ms": 1.5, "p95_ms": 1.5, "p99_ms": 1.5,
                                             "p999_ms": 1.5, "max_ms": 1.5}
