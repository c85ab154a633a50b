"""The state store contract, on process memory and on the real Redis (the Lua scripts)."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable

import msgpack
import pytest
import redis

from app.errors import Fenced
from app.players import delta, sessions, wire
from app.players.hotstore import HotStore, MemoryHotStore, RedisHotStore
from app.players.statestore import BatchOutcome, Emit, Fence, StateStore, StoredState


def _p(value: object) -> bytes:
    return wire.pack_value(value)


def _batch(*updates: tuple[str, int, dict[str, object]]) -> bytes:
    return wire.pack_batch(wire.entry(s, n, fields) for s, n, fields in updates)


EMIT = Emit("test:deltas", "test:updates", "test:bytes", "test:stale")


def _message(outcome: BatchOutcome) -> dict[str, list[object]]:
    """The delta message, values unpacked: {session: [seq, {changed field: value}]}."""
    return dict(msgpack.unpackb(outcome.message, raw=False))


def test_unknown_session_is_reported_and_others_apply(hot: HotStore) -> None:
    store: StateStore = hot.states
    assert store.put_if_newer("a", 0, {})
    outcome = store.apply(_batch(("ghost", 1, {"hp": 1}), ("a", 1, {"hp": 1})), EMIT)
    assert (outcome.applied, outcome.stale) == (1, 0)
    assert outcome.rejected == [(0, "session", "unknown session 'ghost'")]
    assert _message(outcome) == {"a": [1, {"hp": 1}]}
    assert store.read(["a", "ghost"])[1] is None


def test_malformed_entries_are_rejected_by_field_and_the_rest_apply(hot: HotStore) -> None:
    store = hot.states
    store.put_if_newer("a", 0, {})
    good = wire.entry("a", 2, {"hp": 2})
    blob = msgpack.packb([
        "not an entry", [7, 1], ["a", 0], ["a", 1.5], ["a", 3, "hp"], ["a", 4, "hp", 5], good,
    ], use_bin_type=False)
    outcome = store.apply(blob, EMIT)
    assert [(i, f) for i, f, _ in outcome.rejected] == [
        (0, "update"), (1, "session"), (2, "seq"), (3, "seq"), (4, "state"), (5, "state")]
    assert (outcome.applied, _message(outcome)) == (1, {"a": [2, {"hp": 2}]})


def test_a_batch_that_is_not_msgpack_raises_value_error(hot: HotStore) -> None:
    with pytest.raises(ValueError, match="batch"):
        hot.states.apply(b"\xc1 not msgpack", EMIT)
    with pytest.raises(ValueError, match="batch"):
        hot.states.apply(msgpack.packb({"a": 1}), EMIT)
    with pytest.raises(ValueError, match="batch"):  # an array of three, cut short
        hot.states.apply(b"\x93\xa1x", EMIT)


def test_newest_value_wins_stale_ones_are_skipped_and_only_changes_go_out(
    hot: HotStore,
) -> None:
    store = hot.states
    store.put_if_newer("a", 5, {"hp": _p(10), "name": _p("aria")})
    outcome = store.apply(_batch(
        ("a", 7, {"hp": 30, "pos": [1, 2]}),  # out of order: sorted by seq in the store
        ("a", 4, {"hp": 1}),  # stale: at or below the stored 5
        ("a", 6, {"hp": 20, "name": "aria"}),
    ), EMIT, per_session=True)
    assert (outcome.applied, outcome.stale, outcome.per_session) == (2, 1, {"a": 2})
    assert _message(outcome) == {"a": [7, {"hp": 30, "pos": [1, 2]}]}  # the name is the same
    (stored,) = store.read(["a"])
    assert stored is not None and stored.seq == 7
    assert stored.fields == {"hp": _p(30), "name": _p("aria"), "pos": _p([1, 2])}


def test_a_late_update_writes_the_fields_nothing_newer_wrote(hot: HotStore) -> None:
    """Updates of one session applied out of order end as if applied in order: each field
    holds the value of the newest update that set it, and an update seen twice writes
    nothing."""
    store = hot.states
    store.put_if_newer("a", 0, {})
    store.apply(_batch(("a", 3, {"hp": 30, "pos": [3, 3]})), EMIT)
    late = store.apply(_batch(("a", 2, {"hp": 20, "ammo": 2}),  # ammo: nothing newer set it
                              ("a", 1, {"hp": 10, "pos": [1, 1]})), EMIT, per_session=True)
    assert (late.applied, late.stale, late.per_session) == (1, 1, {"a": 1})
    assert _message(late) == {"a": [3, {"ammo": 2}]}
    assert store.read(["a"])[0] == StoredState(3, {"hp": _p(30), "pos": _p([3, 3]),
                                                   "ammo": _p(2)})
    again = store.apply(_batch(("a", 2, {"hp": 20, "ammo": 2}), ("a", 3, {"hp": 30})), EMIT)
    assert (again.applied, again.stale, _message(again)) == (0, 2, {})
    restored = store.put_if_newer("b", 5, {"hp": _p(50)})  # a snapshot's fields are at 5
    assert restored and store.apply(_batch(("b", 4, {"hp": 40})), EMIT).stale == 1


def test_many_states_are_put_where_newer_in_one_call(hot: HotStore) -> None:
    store = hot.states
    store.put_if_newer("a", 5, {"hp": _p(5)})
    written = store.put_many_if_newer([("a", 4, {"hp": _p(4)}), ("b", 2, {"hp": _p(2)}),
                                       ("c", 0, {})])
    assert written == 2  # b and c; a holds a newer state
    assert store.read(["a", "b", "c"]) == [StoredState(5, {"hp": _p(5)}),
                                           StoredState(2, {"hp": _p(2)}), StoredState(0, {})]
    assert store.put_many_if_newer([]) == 0


def test_a_batch_entirely_stale_writes_and_publishes_nothing_and_counts_it_stale(
        hot: HotStore) -> None:
    store = hot.states
    store.put_if_newer("a", 9, {"hp": _p(9)})
    outcome = store.apply(_batch(("a", 3, {"hp": 3}), ("a", 9, {"hp": 1})), EMIT)
    assert (outcome.applied, outcome.stale, _message(outcome)) == (0, 2, {})
    assert store.read(["a"])[0].fields == {"hp": _p(9)}  # type: ignore[union-attr]
    assert hot.get_many(["test:updates", "test:bytes", "test:stale"]) == [None, None, b"2"]
    store.apply(_batch(("a", 10, {"hp": 10}), ("a", 8, {"hp": 8})), EMIT)
    assert hot.get_many(["test:updates", "test:stale"]) == [b"1", b"3"]  # every update counted


def test_the_message_is_published_and_counted(hot: HotStore) -> None:
    """On Redis the script publishes; the subscriber gets the very bytes of the outcome."""
    store = hot.states
    for s in ("a", "b"):
        store.put_if_newer(s, 0, {})
    subscriber = _subscribe(hot)
    outcome = store.apply(_batch(("a", 1, {"hp": 1}), ("a", 2, {"hp": 2}),
                                 ("b", 1, {"x": "long " * 40})), EMIT)
    assert _message(outcome) == {"a": [2, {"hp": 2}], "b": [1, {"x": "long " * 40}]}
    assert subscriber() == outcome.message
    assert outcome.delta_bytes == sum(len(d) for d in delta.split(outcome.message).values())
    assert [int(v or 0) for v in hot.get_many(["test:updates", "test:bytes"])] == [
        3, outcome.delta_bytes]


@pytest.mark.parametrize("seq", [1, 200, 70_000, 5_000_000_000])
def test_long_headers_and_large_sequence_numbers_encode_as_msgpack(hot: HotStore,
                                                                   seq: int) -> None:
    store = hot.states
    ids = [f"session-with-a-rather-long-identifier-{i:04d}" for i in range(20)]
    for s in ids:
        store.put_if_newer(s, 0, {})
    fields: dict[str, object] = {f"f{i}": i for i in range(300)}
    outcome = store.apply(_batch(*[(s, seq, fields) for s in ids]), EMIT)
    message = _message(outcome)
    assert sorted(message) == sorted(ids)
    assert message[ids[3]] == [seq, fields]
    assert store.read([ids[3]])[0].seq == seq  # type: ignore[union-attr]


def _subscribe(hot: HotStore) -> Callable[[], bytes]:
    if isinstance(hot, MemoryHotStore):
        return lambda: hot.published[-1][1]
    assert isinstance(hot, RedisHotStore)
    pubsub = hot._client.pubsub()
    pubsub.subscribe(EMIT.channel)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]

    def receive() -> bytes:
        message = pubsub.get_message(timeout=5)
        assert message is not None and message["type"] == "message"
        return bytes(message["data"])

    return receive


def test_put_if_newer_replaces_only_with_a_newer_sequence(hot: HotStore) -> None:
    store = hot.states
    assert store.put_if_newer("a", 3, {"hp": _p(3), "gone": _p(True)})
    assert not store.put_if_newer("a", 3, {"hp": _p(0)})
    assert store.put_if_newer("a", 8, {"hp": _p(8)})
    assert store.read(["a"])[0].fields == {"hp": _p(8)}  # type: ignore[union-attr]
    assert not store.put_if_newer("a", 0, {})  # opening again keeps the state


def test_seqs_read_what_read_says_of_each_session_s_seq(hot: HotStore) -> None:
    assert hot.states.put_if_newer("a", 3, {"hp": _p(3)})
    assert hot.states.put_if_newer("b", 0, {})
    ids = ["a", "b", "unknown"]
    assert hot.states.seqs(ids) == [st.seq if st else None for st in hot.states.read(ids)]
    assert hot.states.seqs(ids) == [3, 0, None]


def test_ensure_states_creates_the_missing_states_empty_and_keeps_the_others(
        hot: HotStore) -> None:
    assert hot.states.put_if_newer("kept", 4, {"hp": _p(4)})
    sessions.ensure_states(hot, ["kept", "new"])
    assert sessions.read_states(hot, ["kept", "new"]) == {
        "kept": sessions.HotState(4, {"hp": 4}), "new": sessions.HotState(0, {})}


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


def _random_entry(rng: random.Random, seqs: dict[str, int]) -> list[object]:
    """An update entry: a known or unknown session, a fresh, repeated or late sequence
    number, and a random subset of fields (a name may come twice)."""
    session = rng.choice([*seqs, "ghost"])
    seqs[session] = seq = max(1, seqs.get(session, 0) + rng.choice([-2, 0, 1, 1, 1, 2]))
    names = rng.sample(["hp", "ammo", "pos", "act", "a-much-longer-field-name"], rng.randint(0, 4))
    names += rng.sample(names, min(len(names), rng.randint(0, 1)))
    return wire.entry(session, seq, {}) + [
        x for name in names for x in (name, _p(rng.choice([1, 2, "x", [3, 4], None])))]


def test_the_redis_script_and_the_memory_store_agree_on_random_batches(
        redis_client: redis.Redis) -> None:
    """The Lua script and its Python twin give the same outcome, message, counts and final
    states for batches that mix sessions, repeat and reorder sequences, and name fields
    twice or not at all."""
    stores = [MemoryHotStore().states, RedisHotStore(redis_client).states]
    ids = [f"s{i}" for i in range(12)]
    for store in stores:
        for s in ids:
            store.put_if_newer(s, 0, {"hp": _p(0)})
    rng, seqs = random.Random(11), dict.fromkeys(ids, 0)
    for _ in range(150):
        blob = wire.pack_batch(_random_entry(rng, seqs) for _ in range(rng.randint(1, 30)))
        memory, on_redis = (store.apply(blob, EMIT, per_session=True) for store in stores)
        assert (on_redis.applied, on_redis.stale, sorted(on_redis.rejected)) == (
            memory.applied, memory.stale, sorted(memory.rejected))
        assert _message(on_redis) == _message(memory)
        assert (on_redis.delta_bytes, on_redis.per_session) == (
            memory.delta_bytes, memory.per_session)
    assert stores[1].read(ids) == stores[0].read(ids)


def test_a_fenced_writer_writes_nothing(redis_client: redis.Redis) -> None:
    store = RedisHotStore(redis_client).states
    store.put_if_newer("a", 0, {})
    redis_client.hset("test:tokens", "east", 3)
    fence = Fence("test:tokens", "east", 3)
    assert store.apply(_batch(("a", 1, {"hp": 1})), EMIT, fence=fence).applied == 1
    redis_client.hincrby("test:tokens", "east", 1)  # east was taken over
    with pytest.raises(Fenced, match="east"):
        store.apply(_batch(("a", 2, {"hp": 2})), EMIT, fence=fence)
    assert store.read(["a"])[0] == StoredState(1, {"hp": _p(1)})
    assert redis_client.get("test:updates") == b"1"
