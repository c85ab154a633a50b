"""A session moving to another instance: its work follows it, nothing else moves."""

from __future__ import annotations

from app.client.registry import SessionRegistry


def _step(_: object) -> int:
    return 3


def test_a_moved_session_sends_its_next_updates_to_its_new_instance() -> None:
    sessions = SessionRegistry()
    sessions.open("s", "casual", 1, None, instance="east")
    sessions.open("t", "casual", 1, None, instance="east")
    assert sessions.accept("s", 1, _step) == (3, "east")
    assert sessions.move("s", "west") == "east"
    assert sessions.move("s", "west") is None  # there already
    assert sessions.move("gone", "west") is None  # not open here
    assert sessions.accept("s", 2, _step) == (3, "west")
    assert sessions.instance("t") == "east"  # nothing else moved
    assert sorted(sessions.ids()) == ["s", "t"]
