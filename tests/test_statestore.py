"""The state store contract, on process memory and on the real Redis (the Lua scripts)."""

from __future__ import annotations

import random
import threading
from collections.abc import Iterator

import msgpack
import pytest
import redis

from app import delta, sessions
from app.hotstore import HotStore, MemoryHotStore, RedisHotStore
from app.statestore import SessionUpdates, StateStore


def _p(value: object) -> bytes:
    return bytes(msgpack.packb(value, use_bin_type=True))


@pytest.fixture(params=["memory", "redis"])
def hot(request: pytest.FixtureRequest) -> Iterator[HotStore]:
    if request.param == "memory":
        yield MemoryHotStore()
        return
    client: redis.Redis = request.getfixturevalue("redis_client")
    yield RedisHotStore(client)


def test_unknown_session_is_reported_and_others_apply(hot: HotStore) -> None:
    store: StateStore = hot.states
    assert store.put_if_newer("a", 0, {})
    ghost, known = store.apply([SessionUpdates("ghost", [(1, {"hp": _p(1)})]),
                                SessionUpdates("a", [(1, {"hp": _p(1)})])])
    assert ghost.applied is None
    assert (known.applied, known.stale, known.seq, known.changed) == (1, 0, 1, {"hp": _p(1)})
    assert store.read(["a", "ghost"])[1] is None


def test_newest_value_wins_stale_ones_are_skipped_and_only_changes_return(
    hot: HotStore,
) -> None:
    store = hot.states
    store.put_if_newer("a", 5, {"hp": _p(10), "name": _p("aria")})
    (outcome,) = store.apply([SessionUpdates("a", [
        (4, {"hp": _p(1)}),  # stale: at or below the stored 5
        (6, {"hp": _p(20), "name": _p("aria")}),
        (7, {"hp": _p(30), "pos": _p([1, 2])}),
    ])])
    assert (outcome.applied, outcome.stale, outcome.seq) == (2, 1, 7)
    assert outcome.changed == {"hp": _p(30), "pos": _p([1, 2])}  # the name did not change
    (stored,) = store.read(["a"])
    assert stored is not None and stored.seq == 7
    assert stored.fields == {"hp": _p(30), "name": _p("aria"), "pos": _p([1, 2])}


def test_a_batch_entirely_stale_writes_nothing(hot: HotStore) -> None:
    store = hot.states
    store.put_if_newer("a", 9, {"hp": _p(9)})
    (outcome,) = store.apply([SessionUpdates("a", [(3, {"hp": _p(3)}), (9, {"hp": _p(1)})])])
    assert (outcome.applied, outcome.stale, outcome.seq, outcome.changed) == (0, 2, 9, {})
    assert store.read(["a"])[0].fields == {"hp": _p(9)}  # type: ignore[union-attr]


def test_put_if_newer_replaces_only_with_a_newer_sequence(hot: HotStore) -> None:
    store = hot.states
    assert store.put_if_newer("a", 3, {"hp": _p(3), "gone": _p(True)})
    assert not store.put_if_newer("a", 3, {"hp": _p(0)})
    assert store.put_if_newer("a", 8, {"hp": _p(8)})
    assert store.read(["a"])[0].fields == {"hp": _p(8)}  # type: ignore[union-attr]
    assert not store.put_if_newer("a", 0, {})  # opening again keeps the state


def test_concurrent_batches_sharing_sessions_keep_sequence_order(hot: HotStore) -> None:
    """Eight threads apply shuffled batches over the same sessions: every session ends at
    its newest sequence with that update's fields, and the deltas rebuild it exactly."""
    ids = [f"s{i}" for i in range(20)]
    for s in ids:
        sessions.ensure_state(hot, s)
    updates = [{"session": s, "seq": n, "state": {"hp": n, "tag": n % 3}}
               for s in ids for n in range(1, 41)]
    random.Random(5).shuffle(updates)
    batches = [updates[i:i + 25] for i in range(0, len(updates), 25)]
    deltas: dict[str, list[bytes]] = {s: [] for s in ids}
    lock = threading.Lock()

    def work(mine: list[list[dict[str, object]]]) -> None:
        for batch in mine:
            result = sessions.apply_updates(hot, batch)
            with lock:
                for s, raw in result.deltas.items():
                    deltas[s].append(raw)

    threads = [threading.Thread(target=work, args=(batches[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for s in ids:
        assert sessions.read_state(hot, s) == sessions.HotState(40, {"hp": 40, "tag": 1})
        view: dict[str, object] = {}
        for raw in sorted(deltas[s], key=lambda r: delta.decode(r)[0]):
            view = delta.apply(view, raw)
        assert view == {"hp": 40, "tag": 1}
