"""The outbox: the game loop's sends made by a thread of their own, in order; a failed one
is counted and the next goes on; drain waits for what was put before it."""

from __future__ import annotations

import logging
import threading

import pytest

from app.client.outbox import Outbox


def test_sends_run_in_order_on_the_outbox_thread_and_drain_waits_for_them() -> None:
    made: list[tuple[int, str]] = []
    gate = threading.Event()

    def send(n: int) -> None:
        gate.wait(5)  # a broker that takes its time
        made.append((n, threading.current_thread().name))

    outbox = Outbox()
    for n in range(3):
        outbox.put(lambda n=n: send(n))  # returns at once: the sends wait on the gate
    assert made == []
    gate.set()
    assert outbox.drain(5)
    assert made == [(0, "gamesched-outbox"), (1, "gamesched-outbox"), (2, "gamesched-outbox")]
    outbox.close()


def test_a_failed_send_is_counted_and_the_next_goes_on(caplog: pytest.LogCaptureFixture) -> None:
    made: list[int] = []

    def broken() -> None:
        raise ConnectionError("broker gone")

    outbox = Outbox()
    with caplog.at_level(logging.WARNING, logger="app.client.outbox"):
        outbox.put(broken)
        outbox.put(lambda: made.append(1))
        assert outbox.drain(5)
    assert made == [1]
    assert outbox.failed == 1 and outbox.first_error == "ConnectionError: broker gone"
    assert "failed" in caplog.text
    outbox.close()


def test_close_makes_what_was_put_and_refuses_more() -> None:
    made: list[int] = []
    outbox = Outbox()
    outbox.put(lambda: made.append(1))
    outbox.close()
    assert made == [1]
    with pytest.raises(RuntimeError, match="closed"):
        outbox.put(lambda: made.append(2))


def test_drain_of_an_unused_outbox_returns_at_once() -> None:
    assert Outbox().drain(0.1)
