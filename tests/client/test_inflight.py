"""The client's table of sent tasks: bounded by entries and by packed bytes, oldest first,
and raising a task records it at its new step."""

from __future__ import annotations

import pytest

from app.client.inflight import InflightTable, Sent, pack_args
from app.priority import Route
from app.protocol.queues import Queue

LOW = Route("gamesched.background.snapshot", Queue.BACKGROUND, 9)
HIGH = Route("gamesched.physics.step", Queue.PHYSICS, 2)


def _sent(args: list[object], route: Route = LOW) -> Sent:
    return Sent(route, pack_args(args), 1.5, "msgpack")


def test_arguments_come_back_as_they_were_sent() -> None:
    args = [["s1", "s2"], {"kind": "kill", "n": 3}, 2.5, None, True]
    assert _sent(args).args == args


def test_a_value_msgpack_cannot_carry_raises_type_error() -> None:
    with pytest.raises(TypeError):
        pack_args([{1, 2}])


def test_the_oldest_entries_leave_beyond_the_entry_bound() -> None:
    table = InflightTable(max_entries=3)
    for n in range(5):
        table.add(f"t{n}", _sent([n]))
    assert len(table) == 3
    assert table.raised("t1", HIGH) is None  # gone: cannot be raised
    assert table.raised("t2", HIGH) is not None


def test_the_oldest_entries_leave_beyond_the_byte_bound() -> None:
    one = len(pack_args(["x" * 100]))
    table = InflightTable(max_bytes=3 * one)
    for n in range(4):
        table.add(f"t{n}", _sent(["x" * 100]))
    assert len(table) == 3
    assert table.raised("t0", HIGH) is None
    table.add("big", _sent(["x" * 1000]))  # larger than the bound on its own
    assert len(table) == 0


def test_raising_moves_the_task_to_the_dependents_step_once() -> None:
    table = InflightTable()
    table.add("t", _sent(["payload"]))
    raised = table.raised("t", HIGH)
    assert raised is not None
    assert (raised.route.queue, raised.route.priority) == (Queue.BACKGROUND, 2)
    assert (raised.args, raised.handoff, raised.serializer) == (["payload"], 1.5, "msgpack")
    assert table.raised("t", HIGH) is None  # already at that step
    assert table.raised("unknown", HIGH) is None
