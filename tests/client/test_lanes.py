"""Lanes: a batch carries the items of one instance only, and every lane flushes."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

from app.client.coalesce import Coalescer
from app.client.lanes import Lanes


def test_each_instance_gets_batches_of_its_own_items_only() -> None:
    sent: list[tuple[str | None, int, list[Any]]] = []

    def send(instance: str | None, step: int, batch: list[Any], oldest: float) -> None:
        sent.append((instance, step, batch))

    lanes = Lanes(lambda instance: Coalescer(partial(send, instance), tick_s=60.0), 0.02)
    assert lanes.window_s == 0.02  # the floor, before any lane exists
    for n, instance in enumerate(["east", "west", "east", None, "west"]):
        lanes.add(instance, 5 - n, n)
    assert lanes.flush() == 5
    lanes.close()
    assert sorted(sent, key=lambda s: str(s[0])) == [
        (None, 2, [3]), ("east", 3, [0, 2]), ("west", 1, [1, 4])]


def test_a_wait_reported_for_one_instance_widens_only_its_window() -> None:
    lanes = Lanes(lambda instance: Coalescer(lambda *_: None, tick_s=0.01,
                                             max_window_s=0.08))
    lanes.add("east", 1, "a")
    lanes.add("west", 1, "b")
    lanes.waiting("east", 3)
    lanes.waiting("nowhere", 3)  # no lane yet: nothing to widen
    assert lanes.window_s == 0.02
    lanes.waiting("east", 0)
    assert lanes.window_s == 0.01  # west's window never widened
    lanes.close()


def test_one_thread_looks_at_every_lane_each_tick() -> None:
    sent: list[tuple[str | None, list[Any]]] = []
    done = threading.Event()

    def send(instance: str | None, step: int, batch: list[Any], oldest: float) -> None:
        sent.append((instance, batch))
        if len(sent) == 2:
            done.set()

    lanes = Lanes(lambda instance: Coalescer(partial(send, instance), tick_s=0.01,
                                             own_thread=False), 0.01, tick_s=0.01)
    lanes.add("east", 1, "a")
    lanes.add("west", 1, "b")
    assert done.wait(5)  # sent by the lanes' thread: the coalescers have none of their own
    assert sorted(sent, key=str) == [("east", ["a"]), ("west", ["b"])]
    lanes.close()


def test_a_batch_due_in_an_add_is_sent_by_the_lanes_thread_at_once() -> None:
    """A full batch wakes the lanes' thread, which sends it long before its next tick;
    the game loop's add never sends, even when the send is slow."""
    sent: list[tuple[list[Any], str]] = []
    done = threading.Event()
    release = threading.Event()

    def send(instance: str | None, step: int, batch: list[Any], oldest: float) -> None:
        sent.append((batch, threading.current_thread().name))
        release.wait(5)  # a broker that takes its time
        done.set()

    lanes = Lanes(lambda instance: Coalescer(partial(send, instance), tick_s=3600.0,
                                             max_batch=2, own_thread=False),
                  0.0, tick_s=3600.0)  # no tick comes during the test
    lanes.add("east", 1, "a")
    lanes.add("east", 1, "b")  # full: due now
    lanes.add("east", 1, "c")  # returns at once although the send is still waiting
    release.set()
    assert done.wait(5)
    assert sent[0] == (["a", "b"], "gamesched-lanes")
    lanes.close()
    assert [batch for batch, _ in sent] == [["a", "b"], ["c"]]  # close flushed the rest
