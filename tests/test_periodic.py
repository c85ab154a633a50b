"""`Periodic`: a call repeated in a daemon thread."""

from __future__ import annotations

import threading

from app.periodic import Periodic


def test_a_call_at_start_runs_before_the_first_period_is_out() -> None:
    called = threading.Event()
    repeated = Periodic(called.set, 3600, "test-at-start", at_start=True)
    repeated.start()
    try:
        assert called.wait(10)
    finally:
        repeated.stop()


def test_a_failing_call_is_made_again_each_period() -> None:
    calls: list[int] = []
    third = threading.Event()

    def fail_twice() -> None:
        calls.append(1)
        if len(calls) < 3:
            raise RuntimeError("not yet")
        third.set()
    repeated = Periodic(fail_twice, 0.01, "test-fail")
    repeated.start()
    try:
        assert third.wait(10)
    finally:
        repeated.stop()
