"""Write-behind: the state script's marks, the lease, the SQL snapshots it writes, and what
a game server reads back after hot state is lost (on process memory and the real Redis;
SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import msgpack
import pytest
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.players import durable, sessions, wire
from app.players.hotstore import HotStore, MemoryHotStore
from app.players.models import GameSession
from app.players.statestore import Dirty, Emit
from tests.waiting import wait_for

EMIT = Emit(None, "test:updates", "test:bytes")


@pytest.fixture(params=["sqlite", "postgresql"])
def factory(request: pytest.FixtureRequest, sqlite_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated database on each backend (the "postgresql" param is live)."""
    url = sqlite_url if request.param == "sqlite" else request.getfixturevalue("postgres_url")
    engine = make_engine(url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def ids() -> list[str]:
    """Session ids no other test uses (the PostgreSQL database is shared)."""
    tag = uuid.uuid4().hex[:8]
    return [f"{tag}-{n}" for n in range(3)]


def _open(hot: HotStore, factory: sessionmaker[Session], *ids: str) -> None:
    with transaction(factory) as db:
        for session_id in ids:
            sessions.open_session(db, session_id, instance_id="i0", session_type="casual",
                                  players=1, region=None)
    for session_id in ids:
        sessions.ensure_state(hot, session_id)


def _changed(hot: HotStore, factory: sessionmaker[Session], session_id: str) -> str:
    """Open `session_id` and apply its first update (``hp`` 1); returns it."""
    _open(hot, factory, session_id)
    _apply(hot, (session_id, 1, {"hp": 1}))
    return session_id


def _apply(hot: HotStore, *updates: tuple[str, int, dict[str, object]]) -> None:
    batch = wire.pack_batch(wire.entry(s, n, fields) for s, n, fields in updates)
    assert hot.states.apply(batch, EMIT).applied == len(updates)


def _marks(taken: list[Dirty] | None) -> list[tuple[str, int]]:
    assert taken is not None
    return [(d.session, d.mark) for d in taken]


def _snapshot(factory: sessionmaker[Session], session_id: str) -> tuple[int, object]:
    with factory() as db:
        row = db.get(GameSession, session_id)
        assert row is not None
        fields = msgpack.unpackb(row.snapshot, raw=False) if row.snapshot else None
        return row.snapshot_seq, fields


def test_a_round_writes_changed_sessions_to_sql_and_clears_their_marks(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a, b, untouched = ids
    _open(hot, factory, a, b, untouched)
    _apply(hot, (a, 1, {"hp": 9, "pos": [1, 2]}), (a, 2, {"hp": 8}), (b, 5, {"name": "x"}))
    assert durable.write_behind(hot, factory, "w1") == 2
    assert _snapshot(factory, a) == (2, {"hp": 8, "pos": [1, 2]})
    assert _snapshot(factory, b) == (5, {"name": "x"})
    assert _snapshot(factory, untouched) == (0, None)
    assert durable.write_behind(hot, factory, "w1") == 0  # nothing changed since
    assert durable.last_durable(factory, [a, b, "ghost"]) == {a: 2, b: 5}


def test_a_taken_snapshot_is_what_msgpack_makes_of_the_values(hot: HotStore) -> None:
    fields = {"hp": 3, "pos": [100, -5], "name": "é" * 40, "flags": {"x": True}}
    fields |= {f"f{n}": n for n in range(20)}  # a map past 15 entries: a longer header
    hot.states.put_if_newer("a", 0, {})
    _apply(hot, ("a", 1, fields))
    (taken,) = hot.states.take_dirty("w1", 10, 5_000) or []
    assert (taken.session, taken.mark, taken.seq) == ("a", 1, 1)
    assert msgpack.unpackb(taken.snapshot, raw=False) == fields
    packed = {k: wire.pack_value(v) for k, v in fields.items()}
    assert wire.pack_map(packed) == msgpack.packb(fields, use_bin_type=True)


def test_a_session_changed_during_the_write_stays_marked_for_the_next_round(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 1)]
    _apply(hot, (a, 2, {"hp": 2}))  # marked again, newer, before the first write cleans
    hot.states.clean_dirty("w1", [(a, 1)], release=True)
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 2)]
    hot.states.clean_dirty("w1", [], release=True)
    assert durable.write_behind(hot, factory, "w1") == 1
    assert _snapshot(factory, a) == (2, {"hp": 2})


def test_one_writer_holds_the_lease_until_it_gives_it_back(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 1)]
    assert durable.write_behind(hot, factory, "w2") is None  # w1 writes now
    assert _snapshot(factory, a) == (0, None)
    hot.states.clean_dirty("w1", [], release=True)
    assert durable.write_behind(hot, factory, "w2") == 1


def test_a_lease_whose_holder_stopped_runs_out(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert hot.states.take_dirty("dead", 10, lease_ms=1) is not None  # and never returns
    wait_for(lambda: durable.write_behind(hot, factory, "w2") is not None, timeout=5,
             what="the dead writer's lease to run out")
    assert _snapshot(factory, a) == (1, {"hp": 1})


def test_a_failed_sql_write_keeps_the_marks_and_gives_the_lease_back(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str], tmp_path: Path) -> None:
    a = _changed(hot, factory, ids[0])
    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}"))
    with pytest.raises(OperationalError, match="no such table"):
        durable.write_behind(hot, broken, "w1")
    assert durable.write_behind(hot, factory, "w2") == 1  # the lease is free, the mark kept
    assert _snapshot(factory, a) == (1, {"hp": 1})


def test_an_older_state_never_overwrites_a_newer_snapshot(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = MemoryHotStore()
    _open(hot, factory, a)
    _apply(hot, (a, 4, {"hp": 4}))
    durable.write_behind(hot, factory, "w1")
    stale = MemoryHotStore()  # another store's older view of the session
    stale.states.put_if_newer(a, 0, {})
    _apply(stale, (a, 2, {"hp": 2}))
    durable.write_behind(stale, factory, "w1")
    assert _snapshot(factory, a) == (4, {"hp": 4})


def test_last_applied_reads_hot_state_and_restores_it_from_sql_when_lost(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a, b, never = ids
    hot = MemoryHotStore()
    _open(hot, factory, a, b)
    _apply(hot, (a, 3, {"hp": 3}), (b, 7, {"hp": 7}))
    durable.write_behind(hot, factory, "w1")
    _apply(hot, (a, 4, {"hp": 4}))  # applied, not yet written behind
    assert durable.last_applied(hot, factory, [a, b, never]) == {a: 4, b: 7}
    restarted = MemoryHotStore()  # hot state lost; then a game server reopened `a` empty
    sessions.ensure_state(restarted, a)
    assert durable.last_applied(restarted, factory, [a, b, never]) == {a: 3, b: 7}
    state = sessions.read_states(restarted, [a, b])
    assert state[a] == sessions.HotState(3, {"hp": 3})
    assert state[b] == sessions.HotState(7, {"hp": 7})


def test_the_write_behind_thread_writes_each_period(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = MemoryHotStore()
    _open(hot, factory, a)
    writer = durable.WriteBehind(hot, factory, period_s=0.01)
    writer.start()
    try:
        for seq in (1, 2):
            _apply(hot, (a, seq, {"hp": seq}))
            wait_for(lambda n=seq: durable.last_durable(factory, [a])[a] == n, timeout=10,
                     what=f"seq {seq} written behind")
    finally:
        writer.stop()


def test_a_stopping_write_behind_writes_what_is_still_marked(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = MemoryHotStore()
    _open(hot, factory, a)
    writer = durable.WriteBehind(hot, factory, period_s=3600)  # no round of its own
    writer.start()
    _apply(hot, (a, 1, {"hp": 1}))
    assert durable.last_durable(factory, [a]) == {a: 0}
    writer.stop()
    assert durable.last_durable(factory, [a]) == {a: 1}
