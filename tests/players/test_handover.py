"""A session's state handed over from one hot store to another as it moves between
instances: frozen where it was (its updates there refused as moved away), applied where
it goes as updates, so that nothing is lost and nothing counts twice however the copy and
the session's other updates interleave."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import redis

from app.players import sessions, wire
from app.players.hotstore import HotStore, MemoryHotStore, RedisHotStore
from app.players.statestore import MOVED_AWAY, Emit, StoredState
from app.simulate.redisserver import PrivateRedis

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")


@pytest.fixture(params=["memory", "redis"])
def stores(request: pytest.FixtureRequest) -> Iterator[tuple[HotStore, HotStore]]:
    """Two hot stores: in process memory, or two Redis servers (the test Redis and a
    private one)."""
    if request.param == "memory":
        yield MemoryHotStore(), MemoryHotStore()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    with PrivateRedis(request.getfixturevalue("redis_server_binary")) as other:
        yield RedisHotStore(client), RedisHotStore(redis.Redis.from_url(other.url))


def _batch(*updates: tuple[str, int, dict[str, object]]) -> bytes:
    return wire.pack_batch(wire.entry(s, n, fields) for s, n, fields in updates)


def test_a_handed_over_state_is_refused_where_it_was_and_whole_where_it_went(
        stores: tuple[HotStore, HotStore]) -> None:
    old, new = stores
    for session in ("s", "t"):
        old.states.put_if_newer(session, 0, {})
    old.states.apply(_batch(("s", 1, {"hp": 1, "x": 1}), ("s", 2, {"hp": 2}),
                            ("t", 1, {"hp": 9})), EMIT)
    handed = old.states.hand_over(["s"])
    assert old.states.hand_over(["s"]) == handed  # again: the same state

    late = old.states.apply(_batch(("s", 3, {"y": 3}), ("t", 2, {"hp": 8})), EMIT)
    assert late.rejected == [(0, "session", f"{MOVED_AWAY} 's'")]  # t is still here
    assert old.states.read(["s"]) == [None]

    new.states.apply(_batch(("s", 4, {"z": 4})), EMIT)  # unknown there yet: refused
    taken = new.states.take_over(["s"], handed, EMIT)
    assert taken.applied == 2  # the update at seq 1 (x) and the one at seq 2 (hp)
    new.states.apply(_batch(("s", 3, {"y": 3}), ("s", 4, {"z": 4})), EMIT)
    assert new.states.take_over(["s"], handed, EMIT).applied == 0  # taken twice: nothing
    assert sessions.read_state(new, "s") == sessions.HotState(
        4, {"hp": 2, "x": 1, "y": 3, "z": 4})


def test_a_copy_landing_after_newer_updates_keeps_them(
        stores: tuple[HotStore, HotStore]) -> None:
    old, new = stores
    old.states.put_if_newer("s", 0, {})
    old.states.apply(_batch(("s", 1, {"hp": 1, "x": 1}), ("s", 5, {"hp": 5})), EMIT)
    handed = old.states.hand_over(["s"])
    new.states.put_if_newer("s", 0, {})  # the session came here first (from SQL, empty)
    new.states.apply(_batch(("s", 6, {"hp": 6}), ("s", 7, {"y": 7})), EMIT)
    new.states.take_over(["s"], handed, EMIT)
    assert sessions.read_state(new, "s") == sessions.HotState(7, {"hp": 6, "x": 1, "y": 7})


def test_a_session_that_comes_back_is_live_again_where_it_was(
        stores: tuple[HotStore, HotStore]) -> None:
    first, second = stores
    first.states.put_if_newer("s", 0, {})
    first.states.apply(_batch(("s", 1, {"hp": 1})), EMIT)
    second.states.take_over(["s"], first.states.hand_over(["s"]), EMIT)
    second.states.apply(_batch(("s", 2, {"hp": 2})), EMIT)
    first.states.take_over(["s"], second.states.hand_over(["s"]), EMIT)  # back
    assert first.states.apply(_batch(("s", 3, {"x": 3})), EMIT).applied == 1
    assert sessions.read_state(first, "s") == sessions.HotState(3, {"hp": 2, "x": 3})
    assert second.states.apply(_batch(("s", 4, {"x": 4})), EMIT).rejected[0][2].startswith(
        MOVED_AWAY)


def test_copies_out_of_date_are_frozen_unless_taken_over_since(
        stores: tuple[HotStore, HotStore]) -> None:
    """A store that holds copies voided elsewhere freezes those not taken over since it
    was asked (a session that came back meanwhile is live), and their marks for SQL go."""
    here, other = stores
    here.states.put_many_if_newer([("old", 0, {}), ("kept", 0, {})])
    here.states.apply(_batch(("old", 1, {"hp": 1}), ("kept", 1, {"hp": 2})), EMIT)
    other.states.put_if_newer("back", 0, {})
    other.states.apply(_batch(("back", 3, {"hp": 3})), EMIT)
    here.states.put_if_newer("back", 2, {})  # its old copy here
    since = here.states.clock()
    here.states.take_over(["back"], other.states.hand_over(["back"]), EMIT)  # back since
    here.states.put_if_newer("back", 9, {})  # a newer snapshot keeps the mark of its take
    marked = here.states.dirty_count()

    assert here.states.freeze_stale(["old", "back", "nobody"], since) == ["old"]

    assert here.states.read(["old", "kept"]) == [None, StoredState(1, {"hp": wire.pack_value(2)})]
    assert here.states.dirty_count() == marked - 1  # old's mark gone, kept's kept
    refused = here.states.apply(_batch(("old", 2, {"hp": 5})), EMIT).rejected
    assert refused == [(0, "session", f"{MOVED_AWAY} 'old'")]  # sent on to its instance
    assert here.states.read(["back"])[0] is not None
    assert here.states.freeze_stale(["old"], here.states.clock()) == []  # once
    assert here.states.freeze_stale([], since) == []
