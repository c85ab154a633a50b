"""Per-tick coalescing: one batch per tick at its most urgent step, oldest hand-off kept."""

from __future__ import annotations

import logging
import threading
from typing import Any

import pytest

from app.client.coalesce import Coalescer
from tests.waiting import wait_for


class Sink:
    def __init__(self) -> None:
        self.batches: list[tuple[int, list[dict[str, Any]], float]] = []
        self.arrived = threading.Event()

    def __call__(self, step: int, batch: list[dict[str, Any]], oldest: float) -> None:
        self.batches.append((step, batch, oldest))
        self.arrived.set()


def test_flush_sends_one_batch_at_the_most_urgent_step_asked_for() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=3600)
    for i in range(5):
        coalescer.add(3, {"i": i})
    coalescer.add(0, {"i": 99})
    coalescer.add(2, {"i": 100})
    assert coalescer.flush() == 7
    assert [(s, [x["i"] for x in b]) for s, b, _ in sink.batches] == [
        (0, [0, 1, 2, 3, 4, 99, 100])]
    assert coalescer.flush() == 0
    coalescer.add(3, {"i": 7})
    coalescer.flush()
    assert sink.batches[-1][0] == 3  # the next tick starts from its own items
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


def test_a_send_that_raises_drops_its_batch_and_the_ticks_go_on(
        caplog: pytest.LogCaptureFixture) -> None:
    sink = Sink()
    calls: list[int] = []

    def flaky(step: int, batch: list[dict[str, Any]], oldest: float) -> None:
        calls.append(len(batch))
        if len(calls) == 1:
            raise ConnectionError("broker gone")
        sink(step, batch, oldest)

    coalescer = Coalescer(flaky, tick_s=0.01)
    with caplog.at_level(logging.ERROR, logger="app.client.coalesce"):
        coalescer.add(1, {"i": 1})
        wait_for(lambda: calls, timeout=5, what="the first tick's send")
        coalescer.add(1, {"i": 2})
        assert sink.arrived.wait(timeout=5)
    coalescer.close()
    assert [[x["i"] for x in b] for _, b, _ in sink.batches] == [[2]]
    assert "could not be sent" in caplog.text


def test_an_add_sends_a_batch_whose_oldest_item_waited_a_tick() -> None:
    sink = Sink()
    coalescer = Coalescer(sink, tick_s=0.05)
    coalescer._stop.set()  # no tick thread: only the adds can send
    coalescer.add(1, {"i": 0})
    assert sink.batches == []
    threading.Event().wait(0.06)
    coalescer.add(1, {"i": 1})  # the first item is a tick old: both leave now
    assert [[x["i"] for x in b] for _, b, _ in sink.batches] == [[0, 1]]
    coalescer.close()


def test_an_add_never_raises_for_a_send_and_leaves_an_outage_to_the_tick_thread(
        caplog: pytest.LogCaptureFixture) -> None:
    calls: list[list[int]] = []
    broker_up = threading.Event()

    def send(step: int, batch: list[dict[str, Any]], oldest: float) -> None:
        calls.append([x["i"] for x in batch])
        if not broker_up.is_set():
            raise ConnectionError("broker gone")

    coalescer = Coalescer(send, tick_s=3600, max_batch=2)  # the tick thread never fires
    with caplog.at_level(logging.ERROR, logger="app.client.coalesce"):
        coalescer.add(1, {"i": 0})
        coalescer.add(1, {"i": 1})  # full: this add sends, the send raises, the add does not
    assert calls == [[0, 1]] and "could not be sent" in caplog.text
    for i in range(2, 6):
        coalescer.add(1, {"i": i})  # full again and again, but sends are failing: no tries
    assert calls == [[0, 1]]
    broker_up.set()
    coalescer._flush_logged()  # what the tick thread does next: batches of max_batch
    assert calls[-2:] == [[2, 3], [4, 5]]
    coalescer.add(1, {"i": 6})
    coalescer.add(1, {"i": 7})  # the broker is back: adds send again
    assert calls[-1] == [6, 7]
    coalescer.close()


def test_flush_returns_only_once_a_send_in_progress_elsewhere_is_done() -> None:
    in_send, release = threading.Event(), threading.Event()
    sent: list[list[Any]] = []

    def send(step: int, items: list[Any], oldest: float) -> None:
        in_send.set()
        assert release.wait(10)
        sent.append(items)

    coalescer = Coalescer(send, tick_s=3600.0)
    coalescer.add(1, "a")
    first = threading.Thread(target=coalescer.flush)
    first.start()
    assert in_send.wait(10)  # the first flush holds the batch, mid-send
    flushed = threading.Event()
    second = threading.Thread(target=lambda: (coalescer.flush(), flushed.set()))
    second.start()
    assert not flushed.wait(0.2)  # it found nothing to send, yet waits for that send
    release.set()
    assert flushed.wait(10) and sent == [["a"]]
    first.join(10)
    second.join(10)
    coalescer.close()


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_window_doubles_while_batches_wait_and_halves_back_once_none_do() -> None:
    coalescer = Coalescer(Sink(), tick_s=0.005, max_window_s=0.02)
    assert coalescer.window_s == 0.005
    coalescer.waiting(3)
    assert coalescer.window_s == 0.01
    for _ in range(5):
        coalescer.waiting(1)
    assert coalescer.window_s == 0.02  # never past its maximum
    coalescer.waiting(None)  # unknown: it stays
    assert coalescer.window_s == 0.02
    coalescer.waiting(0)
    assert coalescer.window_s == 0.01
    for _ in range(5):
        coalescer.waiting(0)
    assert coalescer.window_s == 0.005  # never under the tick
    coalescer.close()


def test_a_longer_window_keeps_a_batch_open_for_the_updates_that_follow() -> None:
    sink, clock = Sink(), Clock()
    # ticks of 100 s on a hand-moved clock: the tick thread never wakes during the test
    coalescer = Coalescer(sink, tick_s=100.0, max_window_s=400.0, clock=clock)
    coalescer.add(1, {"i": 0})
    clock.now += 120  # past the tick: at the tick's window it leaves with this add
    coalescer.add(1, {"i": 1})
    assert [len(b) for _, b, _ in sink.batches] == [2]
    coalescer.waiting(2)
    coalescer.waiting(2)  # batches waited in the queue: a four-tick window
    coalescer.add(1, {"i": 2})
    clock.now += 120
    coalescer.add(1, {"i": 3})
    clock.now += 120
    coalescer.add(1, {"i": 4})
    assert [len(b) for _, b, _ in sink.batches] == [2]  # 240 s old: still open
    clock.now += 170
    coalescer.add(1, {"i": 5})  # 410 s old: it leaves, one task for four updates
    assert [len(b) for _, b, _ in sink.batches] == [2, 4]
    coalescer.close()


def test_a_window_floor_holds_a_batch_past_the_tick_even_while_the_queue_is_empty() -> None:
    sink, clock = Sink(), Clock()
    coalescer = Coalescer(sink, tick_s=100.0, max_window_s=400.0, min_window_s=200.0,
                          clock=clock)
    assert coalescer.window_s == 200.0
    coalescer.add(1, {"i": 0})
    clock.now += 120  # past the tick, within the floor: the batch stays open
    coalescer.add(1, {"i": 1})
    assert sink.batches == []
    clock.now += 90
    coalescer.add(1, {"i": 2})  # 210 s old: it leaves
    assert [len(b) for _, b, _ in sink.batches] == [3]
    coalescer.waiting(0)  # the queue was empty: the window halves, never under the floor
    assert coalescer.window_s == 200.0
    coalescer.waiting(1)
    assert coalescer.window_s == 400.0
    coalescer.close()
