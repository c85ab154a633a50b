"""Session service: ordered application, rejection one by one, deltas, snapshots, restore."""

from __future__ import annotations

import random

import msgpack
import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.errors import InvalidRequest
from app.players import background, delta, sessions, wire
from app.players.hotstore import MemoryHotStore
from app.players.models import GameSession
from app.players.statestore import Emit

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")


def _open(hot: MemoryHotStore, *ids: str) -> None:
    for session_id in ids:
        sessions.ensure_state(hot, session_id)


def test_updates_apply_in_sequence_order_and_older_never_overwrites_newer() -> None:
    hot = MemoryHotStore()
    _open(hot, "a")
    batch = [
        {"session": "a", "seq": 3, "state": {"hp": 70}},
        {"session": "a", "seq": 1, "state": {"hp": 90, "mana": 5}},
        {"session": "a", "seq": 2, "state": {"hp": 80}},
    ]
    result = sessions.apply_updates(hot, batch)
    assert result.applied == 3
    assert sessions.read_state(hot, "a") == sessions.HotState(3, {"hp": 70, "mana": 5})
    late = sessions.apply_updates(hot, [{"session": "a", "seq": 2, "state": {"hp": 1}}])
    assert late.applied == 0 and late.stale == 1
    assert sessions.read_state(hot, "a").fields["hp"] == 70  # type: ignore[union-attr]


def test_bad_updates_are_rejected_by_field_and_the_rest_still_apply() -> None:
    hot = MemoryHotStore()
    _open(hot, "a")
    batch: list[object] = [
        {"session": "a", "seq": 1, "state": {"hp": 1}},
        {"session": "ghost", "seq": 1, "state": {}},
        {"session": "a", "seq": "two", "state": {}},
        {"session": "a", "seq": 2, "state": "hp=3"},
        "garbage",
        {"seq": 3, "state": {}},
        {"session": "a", "seq": 4, "state": {"hp": 4}},
    ]
    result = sessions.apply_updates(hot, batch)
    assert result.applied == 2
    assert sorted((i, f) for i, f, _ in result.rejected) == [
        (1, "session"), (2, "seq"), (3, "state"), (4, "update"), (5, "session"),
    ]
    assert sessions.read_state(hot, "a") == sessions.HotState(4, {"hp": 4})


def test_deltas_applied_to_the_old_state_give_the_new_state_exactly() -> None:
    rng = random.Random(3)
    hot = MemoryHotStore()
    _open(hot, "a")
    client_view: dict[str, object] = {}
    for seq in range(1, 200):
        fields = {f"f{rng.randrange(6)}": rng.choice([1, 2.5, "x", None, [1, 2]])}
        if rng.random() < 0.5:
            fields[delta.POSITION_FIELD] = delta.quantise((rng.uniform(0, 1e4),
                                                            rng.uniform(0, 1e4)))
        result = sessions.apply_updates(hot, [{"session": "a", "seq": seq, "state": fields}])
        if "a" in result.deltas:
            client_view = delta.apply(client_view, result.deltas["a"])
        assert client_view == sessions.read_state(hot, "a").fields  # type: ignore[union-attr]


def test_delta_carries_only_changed_fields_and_removals() -> None:
    raw = delta.encode(7, delta.diff({"a": 1, "b": 2, "c": 3}, {"a": 1, "b": 5}))
    seq, changes = delta.decode(raw)
    assert seq == 7 and changes == {"b": 5, "-": ["c"]}
    assert delta.apply({"a": 1, "b": 2, "c": 3}, raw) == {"a": 1, "b": 5}


def test_network_counters_compare_deltas_with_full_state() -> None:
    hot = MemoryHotStore()
    _open(hot, "a")
    state = {"hp": 100, "mana": 50, "name": "aria", "class": "ranger", "level": 30}
    sessions.apply_updates(hot, [{"session": "a", "seq": 1, "state": state}])
    sessions.reset_network_totals(hot)
    for seq in range(2, 52):
        pos = delta.quantise((100.0 + seq, 200.0))
        sessions.apply_updates(hot, [{"session": "a", "seq": seq, "state": {"pos": pos}}])
    totals = sessions.network_totals(hot)
    assert totals.updates == 50
    sampled = 50 // sessions.FULL_STATE_SAMPLE
    assert sampled <= totals.full_updates <= sampled + 1
    assert 0 < totals.bytes_per_update < 0.25 * totals.full_bytes_per_update


def test_a_batch_can_leave_its_full_state_measure_for_later() -> None:
    hot = MemoryHotStore()
    _open(hot, "a")
    sessions.reset_network_totals(hot)
    results = [sessions.apply_updates(hot, [{"session": "a", "seq": seq, "state": {"hp": seq}}],
                                      size_later=True)
               for seq in range(1, sessions.FULL_STATE_SAMPLE + 1)]
    sampled = [r for r in results if r.unsized]
    assert [r.unsized for r in sampled] == [{"a": 1}]
    assert sessions.network_totals(hot).full_updates == 0  # nothing sized yet
    sessions.size_full_state(hot, sampled[0])
    sessions.size_full_state(hot, sampled[0])  # sized once only
    totals = sessions.network_totals(hot)
    assert totals.updates == sessions.FULL_STATE_SAMPLE
    assert totals.full_updates == 1 and totals.full_bytes > 0


@pytest.fixture
def db_factory(sqlite_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(sqlite_url))


def test_open_is_idempotent_and_close_marks_closed(db_factory: sessionmaker[Session]) -> None:
    factory = db_factory
    for _ in range(2):
        with transaction(factory) as db:
            sessions.open_session(db, "s", instance_id="i1", session_type="ranked",
                                  players=2, region="r")
    with transaction(factory) as db:
        assert sessions.change_session(db, "s", players=5)
        assert sessions.close_session(db, "s")
        assert not sessions.close_session(db, "nobody")
        assert not sessions.change_session(db, "nobody", players=1)
    with factory() as db:
        row = db.get(GameSession, "s")
        assert (row.status, row.players, row.closed_at is not None) == ("closed", 5, True)


def test_a_session_reopened_on_another_instance_records_that_instance(
        db_factory: sessionmaker[Session]) -> None:
    for instance in ("east", "west"):
        with transaction(db_factory) as db:
            sessions.open_session(db, "s", instance_id=instance, session_type="casual",
                                  players=1, region=None)
    with db_factory() as db:
        row = db.get(GameSession, "s")
        assert (row.instance_id, row.status) == ("west", "open")


def test_session_moves_record_each_sessions_latest_region(
        db_factory: sessionmaker[Session]) -> None:
    with transaction(db_factory) as db:
        for name in ("a", "b"):
            sessions.open_session(db, name, instance_id="i1", session_type="casual",
                                  players=1, region="w0")
    with transaction(db_factory) as db:
        moved = sessions.move_sessions(db, [["a", "w1"], ["nobody", "w1"], ["a", "w2"],
                                            ["b", "w3"]])
    assert moved == 3  # the unknown session is left out
    with db_factory() as db:
        assert [db.get(GameSession, n).region for n in ("a", "b")] == ["w2", "w3"]


def test_session_ops_open_update_and_close_and_an_unknown_op_is_refused(
        db_factory: sessionmaker[Session]) -> None:
    hot = MemoryHotStore()
    spec = {"instance_id": "i1", "session_type": "coop", "players": 3, "region": "r"}
    with transaction(db_factory) as db:
        assert sessions.session_op(db, hot, "open", "s", spec)
        assert sessions.session_op(db, hot, "update", "s", {"players": 4})
    with pytest.raises(InvalidRequest) as refused, transaction(db_factory) as db:
        sessions.session_op(db, hot, "reopen", "s", {})
    assert refused.value.field == "op" and refused.value.value == "reopen"
    assert "open, update, close" in refused.value.reason
    with db_factory() as db:  # the refused op changed nothing (it used to close the session)
        row = db.get(GameSession, "s")
        assert (row.status, row.players) == ("open", 4)
    with transaction(db_factory) as db:
        assert sessions.session_op(db, hot, "close", "s", {})
    with db_factory() as db:
        assert db.get(GameSession, "s").status == "closed"


def test_snapshot_then_restore_brings_back_the_last_state(
    db_factory: sessionmaker[Session],
) -> None:
    factory = db_factory
    hot = MemoryHotStore()
    with transaction(factory) as db:
        sessions.open_session(db, "s", instance_id="i", session_type="coop", players=1,
                              region=None)
    _open(hot, "s")
    sessions.apply_updates(hot, [{"session": "s", "seq": 9, "state": {"hp": 12}}])
    with transaction(factory) as db:
        assert background.snapshot(db, background.read_states(hot, ["s", "gone"])) == 1
        assert background.snapshot(db, background.read_states(hot, ["s"])) == 0
    fresh = MemoryHotStore()  # hot state lost, as after a Redis restart
    with factory() as db:
        sessions.restore(fresh, sessions.open_snapshots(db, ["s", "gone"]))
    assert sessions.read_state(fresh, "s") == sessions.HotState(9, {"hp": 12})


def test_restore_never_lowers_newer_hot_state() -> None:
    hot = MemoryHotStore()
    _open(hot, "s")
    sessions.apply_updates(hot, [{"session": "s", "seq": 20, "state": {"hp": 1}}])
    sessions.ensure_state(hot, "s", sessions.HotState(5, {"hp": 99}))
    assert sessions.read_state(hot, "s") == sessions.HotState(20, {"hp": 1})


def test_encode_packed_gives_the_bytes_of_encode() -> None:
    changes = {f"f{i}": [i, "x", None, 2.5] for i in range(20)}
    packed = {k: bytes(msgpack.packb(v, use_bin_type=True)) for k, v in changes.items()}
    assert delta.encode_packed(12, packed) == delta.encode(12, changes)
    assert delta.encode_packed(3, {}) == delta.encode(3, {})
    assert delta.map_header(70_000) == b"\xdf" + (70_000).to_bytes(4, "big")


def test_published_message_is_a_map_of_session_deltas() -> None:
    hot = MemoryHotStore()
    _open(hot, "a", "b")
    sessions.apply_updates(hot, [{"session": "a", "seq": 1, "state": {"hp": 1}},
                                 {"session": "b", "seq": 2, "state": {"hp": 2}}], publish=True)
    channel, payload = hot.published[-1]
    message = msgpack.unpackb(payload, raw=False)
    assert channel == sessions.DELTA_CHANNEL
    assert message == {"a": [1, {"hp": 1}], "b": [2, {"hp": 2}]}  # the deltas inline


def _snapshot_row(factory: sessionmaker[Session], session_id: str, seq: int,
                  fields: dict[str, object], status: str = "open") -> None:
    with transaction(factory) as db:
        row = sessions.open_session(db, session_id, instance_id="i", session_type="coop",
                                    players=1, region=None)
        row.snapshot_seq, row.snapshot = seq, msgpack.packb(fields, use_bin_type=True)
        if status == "closed":
            sessions.close_session(db, session_id)


def test_sessions_lost_from_hot_state_come_back_from_their_snapshot(
    db_factory: sessionmaker[Session],
) -> None:
    """A fresh hot store stands for Redis after a restart: the open session is restored at
    its snapshot and only the updates newer than it apply."""
    _snapshot_row(db_factory, "s", 9, {"hp": 12, "name": "aria"})
    hot = MemoryHotStore()
    batch = wire.pack_batch([wire.entry("s", 8, {"hp": 1}), wire.entry("s", 10, {"hp": 5})])
    result = sessions.apply_batch_restoring(hot, db_factory, batch)
    assert (result.applied, result.stale, result.rejected) == (1, 1, [])
    assert sessions.read_state(hot, "s") == sessions.HotState(10, {"hp": 5, "name": "aria"})
    assert delta.decode(result.deltas["s"]) == (10, {"hp": 5})


def test_updates_given_as_mappings_restore_lost_sessions_too(
    db_factory: sessionmaker[Session],
) -> None:
    _snapshot_row(db_factory, "s", 9, {"hp": 12, "name": "aria"})
    hot = MemoryHotStore()
    result = sessions.apply_updates(hot, [{"session": "s", "seq": 10, "state": {"hp": 5}},
                                          {"session": "s", "seq": "x", "state": {}}],
                                    db_factory=db_factory)
    assert (result.applied, [(i, f) for i, f, _ in result.rejected]) == (1, [(1, "seq")])
    assert sessions.read_state(hot, "s") == sessions.HotState(10, {"hp": 5, "name": "aria"})
    lost = sessions.apply_updates(MemoryHotStore(), [{"session": "s", "seq": 11, "state": {}}])
    assert [(i, f) for i, f, _ in lost.rejected] == [(0, "session")]  # without SQL: unknown


def test_unknown_and_closed_sessions_stay_rejected_and_the_rest_apply(
    db_factory: sessionmaker[Session],
) -> None:
    _snapshot_row(db_factory, "gone", 3, {"hp": 1}, status="closed")
    _snapshot_row(db_factory, "lost", 3, {"hp": 1})
    hot = MemoryHotStore()
    _open(hot, "here")
    batch = wire.pack_batch([wire.entry("gone", 4, {"hp": 2}), wire.entry("here", 1, {"x": 1}),
                             wire.entry("nobody", 1, {"x": 1}), wire.entry("lost", 4, {"hp": 4})])
    result = sessions.apply_batch_restoring(hot, db_factory, batch)
    assert result.applied == 2
    assert sorted((i, f) for i, f, _ in result.rejected) == [(0, "session"), (2, "session")]
    assert set(result.deltas) == {"here", "lost"}
    assert sessions.read_state(hot, "gone") is None
    alone = sessions.apply_batch_restoring(hot, db_factory,
                                           wire.pack_batch([wire.entry("nobody", 2, {})]))
    assert [(i, f) for i, f, _ in alone.rejected] == [(0, "session")]


def test_a_batch_with_every_session_known_never_touches_sql() -> None:
    hot = MemoryHotStore()
    _open(hot, "a")

    def no_database() -> Session:
        raise AssertionError("SQL was read")

    batch = wire.pack_batch([wire.entry("a", 1, {"hp": 1})])
    assert sessions.apply_batch_restoring(hot, no_database, batch).applied == 1


def test_a_sampled_batch_is_sized_on_a_few_of_its_sessions_only() -> None:
    hot = MemoryHotStore()
    many = 3 * sessions.FULL_STATE_SESSIONS
    for i in range(many):
        _open(hot, f"s{i}")
    sized = []
    for seq in range(1, sessions.FULL_STATE_SAMPLE + 1):  # one of these batches is sampled
        result = sessions.apply_updates(
            hot, [{"session": f"s{i}", "seq": seq, "state": {"hp": seq}} for i in range(many)],
            size_later=True)
        assert result.applied == many
        sized += [result.unsized] if result.unsized else []
    assert len(sized) == 1 and len(sized[0]) == sessions.FULL_STATE_SESSIONS


def test_an_instance_sends_on_sessions_that_run_elsewhere_and_applies_those_it_took(
    db_factory: sessionmaker[Session],
) -> None:
    """With `arrive` (an instance's worker), sessions missing here are sorted by it: one
    placed on another instance goes back to be sent there, one whose state it took (here,
    nothing: its old store had lost it) starts from its SQL snapshot, and the rest apply."""
    _snapshot_row(db_factory, "came", 5, {"hp": 5})
    hot = MemoryHotStore()
    _open(hot, "here")
    asked: list[set[str]] = []

    def arrive(missing: set[str]) -> sessions.Arrived:
        asked.append(missing)
        hot.states.take_over(["came"], wire.pack_batch([]), EMIT)  # an empty state taken
        return sessions.Arrived(elsewhere={"away": "west"}, taken={"came"})

    batch = wire.pack_batch([wire.entry("away", 3, {"x": 3}), wire.entry("here", 1, {"x": 1}),
                             wire.entry("came", 6, {"x": 6}), wire.entry("away", 4, {"y": 4})])
    result = sessions.apply_batch_restoring(hot, db_factory, batch, arrive=arrive)
    assert asked == [{"away", "came"}]
    assert (result.applied, result.rejected) == (2, [])
    assert {k: wire.unpack_batch(v) for k, v in result.elsewhere.items()} == {
        "west": [[b"away", 3, b"x", wire.pack_value(3)], [b"away", 4, b"y", wire.pack_value(4)]]}
    assert sessions.read_state(hot, "came") == sessions.HotState(6, {"hp": 5, "x": 6})
    assert sessions.read_state(hot, "away") is None
