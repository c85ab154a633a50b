"""Per-tick coalescing: one batch per priority step per tick, oldest hand-off kept."""

from __future__ import annotations

import threading
from typing import Any

from app.coalesce import Coalescer


class Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[int, list[dict[str, Any]], float]] = []
        self.arrived = threading.Event()

    def __call__(self, step: int, batch: list[dict[str, Any]], oldest: float) -> None:
        self.batches.append((step, batch, oldest))
        self.arrived.set()


def test_flush_sends_one_batch_per_step_most_urgent_first() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=3600)
    for i in range(5):
        coalescer.add(3, {"i": i})
    coalescer.add(0, {"i": 99})
    assert coalescer.flush() == 6
    assert [(s, len(b)) for s, b, _ in sink.batches] == [(0, 1), (3, 5)]
    assert coalescer.flush() == 0
    coalescer.close()


def test_batch_carries_the_oldest_hand_off_time() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=3600)
    coalescer.add(1, {"i": 0})
    coalescer.add(1, {"i": 1})
    coalescer.flush()
    ((_, _, oldest),) = sink.batches
    assert oldest > 0
    coalescer.close()


def test_the_tick_thread_flushes_without_being_asked() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=0.005)
    coalescer.add(2, {"i": 1})
    assert sink.arrived.wait(timeout=5)
    coalescer.close()
    assert [len(b) for _, b, _ in sink.batches] == [1]


def test_a_full_batch_leaves_at_once() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=3600, max_batch=3)
    for i in range(3):
        coalescer.add(4, {"i": i})
    assert [len(b) for _, b, _ in sink.batches] == [3]
    coalescer.close()
