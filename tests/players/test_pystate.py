"""The textbook baseline's state write: one update at a time in Python, with the Lua path's
effects, on process memory and on the real Redis; racing writers on Redis."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Any

import msgpack
import redis

from app.players import delta, pystate, sessions, wire
from app.players.hotstore import HotStore, MemoryHotStore, RedisHotStore
from app.players.pystate import PythonStateWriter
from app.players.statestore import BatchOutcome, Emit, RedisStateStore
from app.protocol import keys


def _subscribe(hot: HotStore, ids: set[str]) -> Callable[[], dict[str, Any]]:
    """Receive, one by one and unpacked, the delta messages about `ids` that `hot`
    publishes from now on (Redis channels are server-wide: others may publish too)."""
    if isinstance(hot, MemoryHotStore):
        seen = [len(hot.published)]

        def next_kept() -> dict[str, Any]:
            _, message = hot.published[seen[0]]
            seen[0] += 1
            return dict(msgpack.unpackb(message, raw=False))

        return next_kept
    assert isinstance(hot, RedisHotStore)
    pubsub = hot.client.pubsub()
    pubsub.subscribe(keys.DELTA_CHANNEL)
    assert pubsub.get_message(timeout=5)["type"] == "subscribe"  # type: ignore[index]

    def receive() -> dict[str, Any]:
        while True:
            message = pubsub.get_message(timeout=5)
            assert message is not None and message["type"] == "message"
            unpacked = dict(msgpack.unpackb(message["data"], raw=False))
            if set(unpacked) <= ids:
                return unpacked

    return receive


def test_newer_updates_write_only_changed_fields_and_stale_ones_are_skipped(
        hot: HotStore) -> None:
    sessions.reset_network_totals(hot)
    sessions.ensure_state(hot, "a")
    deltas = _subscribe(hot, {"a"})
    first = pystate.apply_update(hot, "a", 2, {"hp": 90, "name": "aria"}, [1.5, 2.25],
                                 publish=True)
    assert (first.applied, first.stale, first.rejected) == (1, 0, [])
    assert deltas() == {"a": [2, {"hp": 90, "name": "aria", "pos": [150, 225]}]}
    second = pystate.apply_update(hot, "a", 5, {"hp": 80, "name": "aria"}, publish=True)
    assert deltas() == {"a": [5, {"hp": 80}]}  # the name did not change
    assert second.deltas == {"a": delta.encode(5, {"hp": 80})}
    stale = pystate.apply_update(hot, "a", 5, {"hp": 1}, publish=True)
    older = pystate.apply_update(hot, "a", 3, {"hp": 2}, publish=True)
    assert (stale.applied, stale.stale, older.stale, stale.message) == (0, 1, 1, b"\x80")
    assert sessions.read_state(hot, "a") == sessions.HotState(
        5, {"hp": 80, "name": "aria", "pos": [150, 225]})
    totals = sessions.network_totals(hot)
    assert (totals.updates, totals.delta_bytes) == (
        2, len(first.deltas["a"]) + len(second.deltas["a"]))


def test_unknown_sessions_and_malformed_updates_are_rejected_by_field(hot: HotStore) -> None:
    sessions.ensure_state(hot, "a")
    cases: list[tuple[Any, Any, Any, Any, str]] = [
        ("ghost", 1, {"hp": 1}, None, "session"), ("", 1, {}, None, "session"),
        ("a", 0, {}, None, "seq"), ("a", True, {}, None, "seq"), ("a", "2", {}, None, "seq"),
        ("a", 1, ["hp"], None, "state"), ("a", 1, {3: 1}, None, "state"),
        ("a", 1, {}, [1.0], "position"), ("a", 1, {}, [1.0, float("nan")], "position"),
        ("a", 1, {}, "xy", "position"),
    ]
    for session_id, seq, state, position, field in cases:
        result = pystate.apply_update(hot, session_id, seq, state, position)
        assert [(i, f) for i, f, _ in result.rejected] == [(0, field)], (session_id, seq)
        assert result.applied == 0
    assert sessions.read_state(hot, "a") == sessions.HotState(0, {})


def test_one_update_in_eight_is_sized_as_the_full_state_it_saves(hot: HotStore) -> None:
    sessions.reset_network_totals(hot)
    sessions.ensure_state(hot, "a")
    state = {"hp": 7, "name": "aria"}
    for seq in range(10, 26):  # two digits each: every full state has the same size
        pystate.apply_update(hot, "a", seq, state, (3.0, 4.0))
    totals = sessions.network_totals(hot)
    full = {**state, "pos": [300, 400]}
    assert (totals.updates, totals.full_updates) == (16, 2)
    assert totals.full_bytes == 2 * delta.full_state_size(10, full)
    assert totals.full_msgpack_bytes == 2 * delta.full_state_msgpack_size(10, full)


def test_sizing_later_leaves_the_sampled_update_to_the_caller(hot: HotStore) -> None:
    sessions.reset_network_totals(hot)
    sessions.ensure_state(hot, "a")
    results = [pystate.apply_update(hot, "a", seq, {"hp": seq}, size_later=True)
               for seq in range(1, 9)]
    (sampled,) = [r for r in results if r.unsized]
    assert sampled.unsized == {"a": 1}
    assert sessions.network_totals(hot).full_updates == 0
    sessions.size_full_state(hot, sampled)
    assert sessions.network_totals(hot).full_updates == 1


def _entry(rng: random.Random, ids: list[str], seqs: dict[str, int]) -> tuple[str, int, dict[
        str, bytes]]:
    """A random update: a fresh sequence number of a known or unknown session, and a random
    subset of fields with few values (so many do not change).  Never one at or below the
    session's last: the script writes such a late update's fields nothing newer (or of its
    number) wrote, where the textbook writer drops it whole."""
    session = rng.choice([*ids, "ghost"])
    seqs[session] = seq = seqs.get(session, 0) + rng.choice([1, 1, 1, 2])
    names = rng.sample(["hp", "ammo", "pos", "act", "a-much-longer-field-name"], rng.randint(0, 4))
    return session, seq, {n: wire.pack_value(rng.choice([1, 2, "x", [3, 4], None]))
                          for n in names}


def _named(outcome: BatchOutcome, prefix: str) -> tuple[Any, ...]:
    """An outcome with its session ids stripped of `prefix`, the message unpacked."""
    message = {s.removeprefix(prefix): v
               for s, v in msgpack.unpackb(outcome.message, raw=False).items()}
    rejected = [(i, f, r.replace(prefix, "")) for i, f, r in outcome.rejected]
    return (outcome.applied, outcome.stale, rejected, message, outcome.delta_bytes,
            {s.removeprefix(prefix): n for s, n in outcome.per_session.items()})


def test_python_writes_match_the_lua_script_update_by_update(redis_client: redis.Redis) -> None:
    """The same random updates, one batch of one each through the script and one at a time
    through the writer (sessions "l-*" and "p-*" of one Redis): the same outcomes,
    messages, counters and final hashes."""
    script, writer = RedisStateStore(redis_client), PythonStateWriter(redis_client)
    on_lua = Emit("test:lua", "test:lua:updates", "test:lua:bytes", "test:lua:stale")
    on_py = Emit("test:py", "test:py:updates", "test:py:bytes", "test:py:stale")
    ids = [f"s{i}" for i in range(6)]
    for s in ids:
        script.put_if_newer(f"l-{s}", 0, {"hp": wire.pack_value(0)})
        script.put_if_newer(f"p-{s}", 0, {"hp": wire.pack_value(0)})
    rng, seqs = random.Random(3), dict.fromkeys(ids, 0)
    for _ in range(300):
        session, seq, fields = _entry(rng, ids, seqs)
        entry = [f"l-{session}", seq, *(x for item in fields.items() for x in item)]
        lua = script.apply(wire.pack_batch([entry]), on_lua, per_session=True)
        python = writer.apply(f"p-{session}", seq, fields, on_py)
        assert _named(python, "p-") == _named(lua, "l-"), (session, seq)
    assert script.read([f"p-{s}" for s in ids]) == script.read([f"l-{s}" for s in ids])
    # and an update at or below its session's number, stale on both, is counted alike
    assert writer.apply("p-s0", 1, {}, on_py).stale == 1
    assert script.apply(wire.pack_batch([["l-s0", 1]]), on_lua).stale == 1
    counted = redis_client.mget("test:py:updates", "test:py:bytes", "test:py:stale")
    assert counted == redis_client.mget("test:lua:updates", "test:lua:bytes", "test:lua:stale")
    assert counted[2] == b"1"


class _Interrupted(PythonStateWriter):
    """A writer that lets another update of the session land between its first read and
    its write, once: the race two prefork children run into."""

    def __init__(self, client: redis.Redis, meanwhile: tuple[int, dict[str, bytes]]) -> None:
        super().__init__(client)
        self.meanwhile: tuple[int, dict[str, bytes]] | None = meanwhile
        self.other = PythonStateWriter(client)
        self.reads = 0

    def _read(self, pipe: Any, key: str) -> dict[bytes, bytes]:
        stored = super()._read(pipe, key)
        self.reads += 1
        if self.meanwhile is not None:
            seq, fields = self.meanwhile
            self.meanwhile = None
            assert self.other.apply("a", seq, fields, EMIT).applied == 1
        return stored


EMIT = Emit(keys.DELTA_CHANNEL, "test:updates", "test:bytes", "test:stale")


def _p(**fields: object) -> dict[str, bytes]:
    return {name: wire.pack_value(value) for name, value in fields.items()}


def test_a_newer_update_landing_mid_write_wins_and_the_older_is_found_stale(
        redis_client: redis.Redis) -> None:
    RedisStateStore(redis_client).put_if_newer("a", 1, _p(hp=100))
    writer = _Interrupted(redis_client, meanwhile=(3, _p(hp=70)))
    outcome = writer.apply("a", 2, _p(hp=90, ammo=5), EMIT)
    assert writer.reads == 2, "the write was not retried after the hash changed"
    assert (outcome.applied, outcome.stale) == (0, 1)
    assert sessions.read_state(RedisHotStore(redis_client), "a") == sessions.HotState(
        3, {"hp": 70})


def test_an_older_update_landing_mid_write_is_overwritten_by_the_newer(
        redis_client: redis.Redis) -> None:
    RedisStateStore(redis_client).put_if_newer("a", 1, _p(hp=100))
    writer = _Interrupted(redis_client, meanwhile=(2, _p(hp=90, ammo=5)))
    outcome = writer.apply("a", 3, _p(hp=70, ammo=5), EMIT)
    assert writer.reads == 2 and outcome.applied == 1
    # Read again after the retry: the ammo the other update wrote is no change.
    assert msgpack.unpackb(outcome.message, raw=False) == {"a": [3, {"hp": 70}]}
    assert sessions.read_state(RedisHotStore(redis_client), "a") == sessions.HotState(
        3, {"hp": 70, "ammo": 5})


def test_racing_writers_keep_every_session_at_its_newest_update(
        redis_client: redis.Redis) -> None:
    """Eight threads apply shuffled updates of three sessions at once, each through its own
    connection: every session ends at its newest update, every update is applied or
    found stale exactly once, and the published deltas rebuild each state."""
    hot = RedisHotStore(redis_client)
    ids = ["racing-0", "racing-1", "racing-2"]
    for s in ids:
        sessions.ensure_state(hot, s)
    updates = [(s, n) for s in ids for n in range(1, 81)]
    random.Random(7).shuffle(updates)
    deltas = _subscribe(hot, set(ids))
    outcomes: list[sessions.ApplyResult] = []
    lock = threading.Lock()

    def work(mine: list[tuple[str, int]]) -> None:
        for s, n in mine:
            result = pystate.apply_update(hot, s, n, {"hp": n, "tag": n % 3}, publish=True)
            with lock:
                outcomes.append(result)

    threads = [threading.Thread(target=work, args=(updates[k::8],)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    applied = sum(r.applied for r in outcomes)
    assert applied + sum(r.stale for r in outcomes) == len(updates)
    views: dict[str, dict[str, Any]] = {s: {} for s in ids}
    for message in sorted((deltas() for _ in range(applied)),
                          key=lambda m: next(iter(m.values()))[0]):
        for s, (seq, changes) in message.items():
            views[s] = delta.apply(views[s], delta.encode(seq, changes))
    for s in ids:
        assert sessions.read_state(hot, s) == sessions.HotState(80, {"hp": 80, "tag": 2})
        assert views[s] == {"hp": 80, "tag": 2}
