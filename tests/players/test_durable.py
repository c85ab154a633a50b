"""Write-behind: the state script's marks, the lease, the SQL snapshots a round writes, the
state log and its replay, and what a game server reads back after hot state is lost (on
process memory and the real Redis; SQLite and PostgreSQL)."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import msgpack
import pytest
import redis
from sqlalchemy import delete, insert, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.db.base import utcnow
from app.players import durable, sessions, statelog, storenames, wire
from app.players.hotstore import HotStore, MemoryHotStore, hot_store_for
from app.players.models import UNNAMED_STORE, GameSession, StateLogRow
from app.players.statestore import Emit, Taken
from app.simulate.redisserver import free_port
from tests.waiting import wait_for

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")
STORE = f"test-{uuid.uuid4().hex[:8]}"  # the hot stores' name in the log, this test run's


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


@pytest.fixture(autouse=True)
def _recovered(request: pytest.FixtureRequest) -> None:
    """The `hot` store of a test that uses it has nothing to recover: rounds may run."""
    if "hot" in request.fixturenames:
        request.getfixturevalue("hot").states.set_recovered()


def _store() -> MemoryHotStore:
    """A process-memory store with nothing to recover."""
    hot = MemoryHotStore()
    hot.states.set_recovered()
    return hot


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


def _marks(taken: Taken | None) -> list[tuple[str, int]]:
    assert taken is not None
    return [(d.session, d.seq) for d in taken.dirty]


def _logged(factory: sessionmaker[Session], *updates: tuple[str, int, dict[str, object]],
            hot: HotStore, log: statelog.StateLog, store: str = STORE) -> None:
    """Apply `updates` to `hot` as a player worker does, the batch held by `log`, and flush
    it as the hot store named `store`."""
    batch = wire.pack_batch(wire.entry(s, n, fields) for s, n, fields in updates)
    assert sessions.apply_batch_restoring(hot, factory, batch, log_to=log.add).applied
    assert log.flush(factory, store) == 1


def _log_rows(factory: sessionmaker[Session], ids: list[str]) -> list[int]:
    """The state log's rows that name one of `ids` (the database is the test session's)."""
    names = {s.encode() for s in ids}
    return [row for row, batch in statelog.rows(factory)
            if any(entry[0] in names for entry in wire.unpack_batch(batch))]


@pytest.fixture
def stores() -> tuple[str, str]:
    """The names of two hot stores sharing the database, no other test's."""
    tag = uuid.uuid4().hex[:8]
    return f"redis://one-{tag}:6379/0", f"redis://other-{tag}:6379/0"


@pytest.fixture
def log() -> statelog.StateLog:
    """A state log open for writing."""
    opened = statelog.StateLog()
    opened.open()
    return opened


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
    assert durable.write_behind(hot, factory, STORE, "w1") == 2
    assert _snapshot(factory, a) == (2, {"hp": 8, "pos": [1, 2]})
    assert _snapshot(factory, b) == (5, {"name": "x"})
    assert _snapshot(factory, untouched) == (0, None)
    assert durable.write_behind(hot, factory, STORE, "w1") == 0  # nothing changed since
    assert durable.last_durable(factory, [a, b, "ghost"]) == {a: 2, b: 5}


def test_a_taken_snapshot_is_what_msgpack_makes_of_the_values(hot: HotStore) -> None:
    fields = {"hp": 3, "pos": [100, -5], "name": "é" * 40, "flags": {"x": True}}
    fields |= {f"f{n}": n for n in range(20)}  # a map past 15 entries: a longer header
    hot.states.put_if_newer("a", 0, {})
    _apply(hot, ("a", 1, fields))
    round_ = hot.states.take_dirty("w1", 10, 5_000)
    assert round_ is not None
    (taken,) = round_.dirty
    assert (taken.session, taken.seq) == ("a", 1)
    assert msgpack.unpackb(taken.snapshot, raw=False) == fields
    packed = {k: wire.pack_value(v) for k, v in fields.items()}
    assert wire.pack_map(packed) == msgpack.packb(fields, use_bin_type=True)


def test_a_session_changed_during_the_write_stays_marked_for_the_next_round(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 1)]
    _apply(hot, (a, 2, {"hp": 2}))  # marked again, newer, before the first write cleans
    hot.states.clean_dirty("w1", [a], release=True)
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 2)]
    hot.states.clean_dirty("w1", [], release=True)
    assert durable.write_behind(hot, factory, STORE, "w1") == 1
    assert _snapshot(factory, a) == (2, {"hp": 2})


def test_one_writer_holds_the_lease_until_it_gives_it_back(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert _marks(hot.states.take_dirty("w1", 10, 5_000)) == [(a, 1)]
    assert durable.write_behind(hot, factory, STORE, "w2") is None  # w1 writes now
    assert _snapshot(factory, a) == (0, None)
    hot.states.clean_dirty("w1", [], release=True)
    assert durable.write_behind(hot, factory, STORE, "w2") == 1


def test_a_lease_whose_holder_stopped_runs_out(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    a = _changed(hot, factory, ids[0])
    assert hot.states.take_dirty("dead", 10, lease_ms=1) is not None  # and never returns
    wait_for(lambda: durable.write_behind(hot, factory, STORE, "w2") is not None, timeout=5,
             what="the dead writer's lease to run out")
    assert _snapshot(factory, a) == (1, {"hp": 1})


def test_a_failed_sql_write_keeps_the_marks_and_gives_the_lease_back(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str], tmp_path: Path) -> None:
    a = _changed(hot, factory, ids[0])
    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}"))
    with pytest.raises(OperationalError, match="no such table"):
        durable.write_behind(hot, broken, STORE, "w1")
    assert durable.write_behind(hot, factory, STORE, "w2") == 1  # the lease is free, the mark kept
    assert _snapshot(factory, a) == (1, {"hp": 1})


def test_an_older_state_never_overwrites_a_newer_snapshot(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = _store()
    _open(hot, factory, a)
    _apply(hot, (a, 4, {"hp": 4}))
    durable.write_behind(hot, factory, STORE, "w1")
    stale = _store()  # another store's older view of the session
    stale.states.put_if_newer(a, 0, {})
    _apply(stale, (a, 2, {"hp": 2}))
    durable.write_behind(stale, factory, STORE, "w1")
    assert _snapshot(factory, a) == (4, {"hp": 4})


def test_last_applied_reads_hot_state_and_restores_it_from_sql_when_lost(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a, b, never = ids
    hot = _store()
    _open(hot, factory, a, b)
    _apply(hot, (a, 3, {"hp": 3}), (b, 7, {"hp": 7}))
    durable.write_behind(hot, factory, STORE, "w1")
    _apply(hot, (a, 4, {"hp": 4}))  # applied, not yet written behind
    assert durable.last_applied(hot, factory, [a, b, never]) == {a: 4, b: 7}
    restarted = MemoryHotStore()  # hot state lost; then a game server reopened `a` empty
    sessions.ensure_state(restarted, a)
    assert durable.last_applied(restarted, factory, [a, b, never]) == {a: 3, b: 7}
    state = sessions.read_states(restarted, [a, b])
    assert state[a] == sessions.HotState(3, {"hp": 3})
    assert state[b] == sessions.HotState(7, {"hp": 7})


def test_a_round_waits_until_the_store_is_recovered(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    hot = MemoryHotStore()  # not recovered: a round could delete log rows not replayed
    a = _changed(hot, factory, ids[0])
    assert hot.states.take_dirty("w1", 10, 5_000) is None
    assert durable.write_behind(hot, factory, STORE, "w1") is None
    assert statelog.recover(hot, factory, STORE) == 0  # an empty log: nothing to replay
    assert statelog.recover(hot, factory, STORE) is None  # recovered already
    assert durable.write_behind(hot, factory, STORE, "w1") == 1
    assert _snapshot(factory, a) == (1, {"hp": 1})


def test_a_finished_round_deletes_the_log_rows_written_before_it_started(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog) -> None:
    a, b, _ = ids
    _open(hot, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), hot=hot, log=log)
    assert len(_log_rows(factory, ids)) == 1
    assert hot.states.take_dirty("w1", 10, 5_000, statelog.last_row(factory, STORE)) is not None
    _logged(factory, (b, 1, {"hp": 5}), hot=hot, log=log)  # after the round started
    assert durable.write_behind(hot, factory, STORE, "w1") == 1  # the round's one session: a
    assert _log_rows(factory, [a]) == []
    assert len(_log_rows(factory, [b])) == 1  # b's row waits for b's snapshot
    assert durable.write_behind(hot, factory, STORE, "w1") == 1
    assert _log_rows(factory, ids) == []
    assert durable.last_durable(factory, [a, b]) == {a: 1, b: 1}


def _rows_at(factory: sessionmaker[Session], *rows: tuple[str, datetime]) -> list[int]:
    """Log rows of the stores named, each written at the time given; their ids."""
    batch = wire.pack_batch([wire.entry(f"silent-{uuid.uuid4().hex[:8]}", 1, {"hp": 1})])
    with transaction(factory) as db:
        return list(db.scalars(insert(StateLogRow).returning(StateLogRow.id),
                               [{"store": store, "batch": batch, "written_at": at}
                                for store, at in rows]))


def _stores_rows(factory: sessionmaker[Session], tag: str) -> dict[str, int]:
    """How many log rows each store whose name starts with `tag` holds."""
    rows: dict[str, int] = {}
    with factory() as db:
        for store in db.scalars(select(StateLogRow.store).where(
                StateLogRow.store.startswith(tag))):
            rows[store] = rows.get(store, 0) + 1
    return rows


def test_the_rows_of_a_store_that_stopped_logging_go_after_the_retention(
        factory: sessionmaker[Session]) -> None:
    """Another store's round deletes the rows of a store that has logged nothing for the
    retention; a store that logged since keeps even its old rows (its own rounds delete
    them), and so do the round's own store, one holding out-of-date copies, and the
    unnamed rows."""
    tag = f"silent-{uuid.uuid4().hex[:8]}"
    gone, back, own, held = (f"{tag}-{name}" for name in ("gone", "back", "own", "held"))
    old, now = utcnow() - timedelta(hours=2), utcnow()
    unnamed = _rows_at(factory, (UNNAMED_STORE, old))
    try:
        _rows_at(factory, (gone, old), (gone, old), (back, old), (back, now), (own, old),
                 (held, old))
        storenames.void_states(factory, held, [f"{tag}-s"])
        dropped = durable.drop_silent_logs(factory, own, retention_s=3600)
        assert {s: n for s, n in dropped.items() if s.startswith(tag)} == {gone: 2}
        assert _stores_rows(factory, tag) == {back: 2, own: 1, held: 1}
        with factory() as db:
            assert list(db.scalars(select(StateLogRow.id).where(
                StateLogRow.id.in_(unnamed)))) == unnamed
    finally:
        with transaction(factory) as db:
            db.execute(delete(StateLogRow).where(StateLogRow.id.in_(unnamed)))


def test_a_round_looks_for_silent_stores_once_an_hour_and_never_without_a_retention(
        factory: sessionmaker[Session]) -> None:
    tag = f"silent-{uuid.uuid4().hex[:8]}"
    old = utcnow() - timedelta(hours=2)
    hot = _store()
    kept = durable.WriteBehind(hot, factory, f"{tag}-own", 1.0, 1.0)  # no retention
    _rows_at(factory, (f"{tag}-a", old))
    kept.round()
    assert _stores_rows(factory, tag) == {f"{tag}-a": 1}
    writer = durable.WriteBehind(hot, factory, f"{tag}-own", 1.0, 1.0, retention_s=3600)
    writer.round()
    assert _stores_rows(factory, tag) == {}
    _rows_at(factory, (f"{tag}-b", old))
    writer.round()  # within the hour since it looked
    assert _stores_rows(factory, tag) == {f"{tag}-b": 1}


def test_a_log_row_id_is_never_used_again(
        factory: sessionmaker[Session], log: statelog.StateLog) -> None:
    """A round deletes up to the last row when it started: a row written after that must
    not get an id at or below it, even once the log was emptied (SQLite reuses the ids of
    a plain integer key)."""
    log.add(wire.pack_batch([wire.entry("gone", 1, {})]))
    log.flush(factory, STORE)
    first = statelog.last_row(factory, STORE)
    statelog.delete_through(factory, STORE, first)
    log.add(wire.pack_batch([wire.entry("gone", 2, {})]))
    log.flush(factory, STORE)
    assert statelog.last_row(factory, STORE) > first


def test_a_round_stopped_half_way_deletes_nothing_until_it_is_finished(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog, monkeypatch: pytest.MonkeyPatch) -> None:
    a, b, _ = ids
    _open(hot, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), (b, 1, {"hp": 2}), hot=hot, log=log)
    monkeypatch.setattr(durable, "ROUND_SESSIONS", 1)  # one take of one mark a round
    assert durable.write_behind(hot, factory, STORE, "w1", limit=1) == 1
    assert len(_log_rows(factory, ids)) == 1
    assert durable.write_behind(hot, factory, STORE, "w2", limit=1) == 1  # another writer goes on
    assert len(_log_rows(factory, ids)) == 1  # a full chunk: there may be more
    assert durable.write_behind(hot, factory, STORE, "w2", limit=1) == 0
    assert _log_rows(factory, ids) == []  # the round's marks are all written


def test_a_round_takes_its_marks_a_few_at_a_time_and_writes_them_all(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog) -> None:
    """A take holds Redis for as long as it reads: a round takes `limit` marks at a time
    (`durable.TAKE`) and goes on until it has written every one."""
    a, b, c = ids
    _open(hot, factory, a, b, c)
    _logged(factory, (a, 1, {"hp": 1}), (b, 2, {"hp": 2}), (c, 3, {"hp": 3}), hot=hot, log=log)
    taken: list[int] = []
    take = hot.states.take_dirty

    def counted(owner: str, limit: int, lease_ms: int, log_row: int = 0) -> Taken | None:
        got = take(owner, limit, lease_ms, log_row)
        taken.append(len(got.dirty) if got else -1)
        return got

    hot.states.take_dirty = counted  # type: ignore[method-assign]
    assert durable.write_behind(hot, factory, STORE, "w1", limit=2) == 3
    assert taken == [2, 1]
    assert [_snapshot(factory, s)[0] for s in ids] == [1, 2, 3]
    assert _log_rows(factory, ids) == []


def test_last_durable_counts_the_state_log(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog) -> None:
    a, b, _ = ids
    _open(hot, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), (b, 2, {"hp": 2}), hot=hot, log=log)
    durable.write_behind(hot, factory, STORE, "w1")
    _logged(factory, (a, 3, {"hp": 3}), hot=hot, log=log)
    sessions.apply_batch_restoring(hot, factory, wire.pack_batch([wire.entry(b, 4, {})]))
    assert durable.last_durable(factory, [a, b]) == {a: 3, b: 2}  # b's 4 was never logged


def test_a_lost_hot_store_is_recovered_from_snapshots_and_the_log(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog) -> None:
    a, b, closed = ids
    hot = _store()
    _open(hot, factory, a, b, closed)
    _logged(factory, (a, 1, {"hp": 1, "pos": [1, 1]}), (b, 1, {"hp": 7}), hot=hot, log=log)
    durable.write_behind(hot, factory, STORE, "w1")  # snapshots at seq 1; the log emptied
    _logged(factory, (a, 3, {"hp": 3}), (closed, 2, {"hp": 2}), hot=hot, log=log)
    _logged(factory, (a, 2, {"pos": [2, 2], "hp": 2}), hot=hot, log=log)  # late, older
    with transaction(factory) as db:
        sessions.close_session(db, closed)
    lost = MemoryHotStore()  # every Redis restarted empty
    assert not lost.states.recovered()
    assert statelog.recover(lost, factory, STORE)  # a twice (and, on PostgreSQL, earlier
    # tests' rows)
    assert lost.states.recovered()
    state = sessions.read_states(lost, [a, b, closed])
    assert state == {a: sessions.HotState(3, {"hp": 3, "pos": [2, 2]})}
    # b is not in the log: its snapshot comes back when it is asked for (or updated).
    assert durable.last_applied(lost, factory, [b]) == {b: 1}
    assert sessions.read_states(lost, [b]) == {b: sessions.HotState(1, {"hp": 7})}


def test_recovering_beside_live_updates_keeps_the_newest_of_each_field(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog) -> None:
    a = ids[0]
    hot = _store()
    _open(hot, factory, a)
    _logged(factory, (a, 1, {"hp": 1, "ammo": 1}), hot=hot, log=log)
    lost = MemoryHotStore()
    # A live batch reaches the empty store first: its session comes back from SQL.
    sessions.apply_batch_restoring(lost, factory, wire.pack_batch([wire.entry(a, 2, {"hp": 2})]))
    statelog.recover(lost, factory, STORE)
    assert sessions.read_states(lost, [a]) == {a: sessions.HotState(2, {"hp": 2, "ammo": 1})}


def test_a_log_without_a_writer_holds_nothing() -> None:
    log = statelog.StateLog()
    log.add(b"x")
    assert log.pending() == 0
    log.open()
    log.add(b"x")
    assert log.pending() == 1


def test_snapshots_written_a_statement_a_part_keep_the_newer_of_sql_and_the_write(
        factory: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(durable, "SQLITE_ROWS", 2)  # five sessions: three statements
    tag = uuid.uuid4().hex[:8]
    five = [f"{tag}-{n}" for n in range(5)]
    _open(_store(), factory, *five)
    with transaction(factory) as db:
        durable.save_snapshots(db, {five[0]: (7, msgpack.packb({"hp": 70}))})
    with transaction(factory) as db:  # five[0]'s is older than SQL's: left alone
        durable.save_snapshots(db, {s: (n + 2, msgpack.packb({"hp": n}))
                                    for n, s in enumerate(five)})
    assert [_snapshot(factory, s) for s in five] == [
        (7, {"hp": 70}), (3, {"hp": 1}), (4, {"hp": 2}), (5, {"hp": 3}), (6, {"hp": 4})]


def test_a_flush_of_many_batches_logs_them_in_order_stamped_with_its_time(
        factory: sessionmaker[Session], log: statelog.StateLog,
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(statelog, "FLUSH_ROWS", 2)  # five batches: three statements
    store = f"flush-{uuid.uuid4().hex[:8]}"
    batches = [wire.pack_batch([wire.entry(store, n, {"hp": n})]) for n in range(1, 6)]
    for batch in batches:
        log.add(batch)
    began = utcnow()
    assert log.flush(factory, store) == 5
    assert [batch for _, batch in statelog.rows(factory, [store])] == batches
    with factory() as db:
        stamps = db.scalars(select(StateLogRow.written_at).where(StateLogRow.store == store))
        assert all(began - timedelta(seconds=1) <= _aware(at) <= utcnow() for at in stamps)


def _aware(at: datetime) -> datetime:
    """`at` as the log's readers compare it (SQLite gives it back without its zone)."""
    return at if at.tzinfo else at.replace(tzinfo=utcnow().tzinfo)


def test_a_failed_flush_keeps_the_batches_for_the_next_and_drops_the_oldest_past_its_bound(
        factory: sessionmaker[Session], tmp_path: Path) -> None:
    one, two, three = (wire.pack_batch([wire.entry("gone", n, {})]) for n in (1, 2, 3))
    log = statelog.StateLog(max_bytes=2 * len(one))
    log.open()
    broken = make_sessionmaker(make_engine(f"sqlite:///{tmp_path / 'unmigrated.db'}"))
    log.add(one)
    log.add(two)
    with pytest.raises(OperationalError, match="no such table"):
        log.flush(broken, STORE)
    log.add(three)  # past its bound: the oldest goes
    assert (log.pending(), log.dropped) == (2, 1)
    assert log.flush(factory, STORE) == 2
    assert [batch for _, batch in statelog.rows(factory)][-2:] == [two, three]


def test_a_replay_skips_a_row_that_is_not_a_batch(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog) -> None:
    a = ids[0]
    hot = _store()
    _open(hot, factory, a)
    log.add(b"not msgpack \xc1")
    batch = wire.pack_batch([wire.entry(a, 1, {"hp": 1})])
    sessions.apply_batch_restoring(hot, factory, batch, log_to=log.add)
    assert log.flush(factory, STORE) == 2
    lost = MemoryHotStore()
    assert statelog.recover(lost, factory, STORE)
    assert sessions.read_states(lost, [a]) == {a: sessions.HotState(1, {"hp": 1})}


def test_the_write_behind_threads_log_and_snapshot_each_period(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = MemoryHotStore()  # the log's thread recovers it
    _open(hot, factory, a)
    writer = durable.WriteBehind(hot, factory, STORE, flush_s=0.01, round_s=0.01,
                                 log=statelog.StateLog())
    writer.start()
    try:
        for seq in (1, 2):
            batch = wire.pack_batch([wire.entry(a, seq, {"hp": seq})])
            sessions.apply_batch_restoring(hot, factory, batch, log_to=writer.log.add)
            wait_for(lambda n=seq: _snapshot(factory, a)[0] == n, timeout=10,
                     what=f"seq {seq} in a snapshot")
        wait_for(lambda: not _log_rows(factory, [a]), timeout=10,
                 what="the log rows the snapshots cover to go")
    finally:
        writer.stop()


def test_a_stopping_write_behind_flushes_its_log(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    hot = _store()
    _open(hot, factory, a)
    writer = durable.WriteBehind(hot, factory, STORE, flush_s=3600, round_s=3600,
                                 log=statelog.StateLog())  # no period of its own
    writer.start()
    batch = wire.pack_batch([wire.entry(a, 1, {"hp": 1})])
    sessions.apply_batch_restoring(hot, factory, batch, log_to=writer.log.add)
    assert durable.last_durable(factory, [a]) == {a: 0}
    writer.stop()
    assert durable.last_durable(factory, [a]) == {a: 1}
    assert _snapshot(factory, a) == (0, None)  # the log has it; the next round writes it


# The writers of a store's log note their flushes there, so that a reader of the log can
# wait until what each had applied is written (`wait_for_flushes`).


def test_each_writer_s_last_flush_is_noted_and_a_silent_one_forgotten(hot: HotStore) -> None:
    states = hot.states
    states.note_flush("w1", 100)
    states.note_flush("w1", 50)  # an older flush noted late: the newer one stays
    states.note_flush("w2", 200)
    assert states.flushes(0) == {"w1": 100, "w2": 200}
    assert states.flushes(150) == {"w2": 200}
    states.note_flush("w1", 120)
    assert states.flushes(0) == {"w1": 120, "w2": 200}  # forgotten until it flushed again


def test_a_flush_is_noted_with_the_store_s_clock_as_it_began(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    writer = durable.WriteBehind(hot, factory, STORE, flush_s=3600, round_s=3600,
                                 log=statelog.StateLog())
    before = hot.states.clock()
    writer.flush()
    assert list(hot.states.flushes(0)) == [writer.owner]
    assert before <= hot.states.flushes(0)[writer.owner] <= hot.states.clock()


def test_a_flush_writes_the_log_when_the_store_does_not_answer(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    a = ids[0]
    away = hot_store_for(f"redis://127.0.0.1:{free_port()}/0", timeout_s=0.2)
    log = statelog.StateLog()
    log.open()
    log.add(wire.pack_batch([wire.entry(a, 1, {"hp": 1})]))
    writer = durable.WriteBehind(away, factory, STORE, flush_s=3600, round_s=3600, log=log)
    with pytest.raises(redis.ConnectionError):  # its recovery needs the store
        writer.flush()
    assert len(_log_rows(factory, [a])) == 1


def test_a_wait_for_flushes_ends_once_every_live_writer_wrote_what_it_held(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str]) -> None:
    """A batch held by a writer when the wait begins is in SQL when it ends; a writer that
    stopped is not waited for past `LIVE_PERIODS` of its silence."""
    a = ids[0]
    _open(hot, factory, a)
    period = 0.2
    stopped = durable.WriteBehind(hot, factory, STORE, flush_s=period, round_s=3600,
                                  log=statelog.StateLog())
    stopped.flush()  # its last flush: it was killed after it
    writer = durable.WriteBehind(hot, factory, STORE, flush_s=period, round_s=3600,
                                 log=statelog.StateLog())
    writer.start()
    try:
        wait_for(lambda: writer.owner in hot.states.flushes(0), what="its first flush")
        batch = wire.pack_batch([wire.entry(a, 1, {"hp": 1})])
        sessions.apply_batch_restoring(hot, factory, batch, log_to=writer.log.add)
        since = hot.states.clock()
        assert _log_rows(factory, [a]) == []
        durable.wait_for_flushes(hot.states, since, period)
        assert len(_log_rows(factory, [a])) == 1
        assert hot.states.flushes(0)[writer.owner] >= since + period * 1_000_000
        assert stopped.owner not in hot.states.flushes(0)  # silent too long: forgotten
    finally:
        writer.stop()


# Hot stores sharing one database: each log row names the store its batch was applied to.


def test_a_round_on_one_store_leaves_the_rows_of_another(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog, stores: tuple[str, str]) -> None:
    one, other = stores
    a, b, _ = ids
    elsewhere = _store()
    _open(hot, factory, a)
    _open(elsewhere, factory, b)
    _logged(factory, (a, 1, {"hp": 1}), hot=hot, log=log, store=one)
    _logged(factory, (b, 1, {"hp": 2}), hot=elsewhere, log=log, store=other)
    assert durable.write_behind(hot, factory, one, "w1") == 1
    assert (statelog.row_count(factory, one), statelog.row_count(factory, other)) == (0, 1)
    lost = MemoryHotStore()  # the other store's Redis restarted empty before its round
    assert statelog.recover(lost, factory, other) == 1
    assert sessions.read_states(lost, [b]) == {b: sessions.HotState(1, {"hp": 2})}


def test_a_store_holding_out_of_date_copies_keeps_its_log_until_they_are_frozen(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog, stores: tuple[str, str]) -> None:
    """The freeze of out-of-date copies reads what their store logged of them: a round on
    that store deletes none of its rows until SQL names none of its copies."""
    one, other = stores
    a, b, _ = ids
    _open(hot, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), (b, 1, {"hp": 2}), hot=hot, log=log, store=one)
    storenames.void_states(factory, one, [b])  # b started elsewhere; one still has a copy
    storenames.void_states(factory, other, [a])  # another store's copy changes nothing here
    assert durable.write_behind(hot, factory, one, "w1") == 2  # snapshots written all the same
    assert statelog.row_count(factory, one) == 1
    storenames.unvoid(factory, one, [b])  # frozen, and its log sent on
    _logged(factory, (a, 2, {"hp": 3}), hot=hot, log=log, store=one)
    assert durable.write_behind(hot, factory, one, "w1") == 1
    assert statelog.row_count(factory, one) == 0


def test_recovering_a_store_restores_its_sessions_and_not_another_stores(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog,
        stores: tuple[str, str]) -> None:
    one, other = stores
    a, b, _ = ids
    first, second = _store(), _store()
    _open(first, factory, a)
    _open(second, factory, b)
    _logged(factory, (a, 1, {"hp": 1}), hot=first, log=log, store=one)
    _logged(factory, (b, 1, {"hp": 2}), hot=second, log=log, store=other)
    lost = MemoryHotStore()  # the second store's Redis restarted empty
    assert statelog.recover(lost, factory, other) == 1
    assert sessions.read_states(lost, [a, b]) == {b: sessions.HotState(1, {"hp": 2})}


def _snapshot_then_log(factory: sessionmaker[Session], log: statelog.StateLog, store: str,
                       pair: tuple[str, str], *later: tuple[str, int, dict[str, object]]) -> None:
    """What SQL holds of two sessions before a full restart: their first updates (seq 1,
    ``hp`` 1 and 5) in snapshots, the log of those emptied, then `later` in the log of
    the store named `store`."""
    a, b = pair
    before = _store()
    _open(before, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), (b, 1, {"hp": 5}), hot=before, log=log, store=store)
    durable.write_behind(before, factory, store, "w1")
    _logged(factory, *later, hot=before, log=log, store=store)


def test_a_recovery_replays_a_session_into_the_store_it_runs_in_now(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog,
        stores: tuple[str, str]) -> None:
    """After a full restart a session logged in one store may run on an instance keeping
    its state in another (placed there before this replay): its rows go there, restored
    there from its snapshot; the other sessions stay in the store replayed."""
    one, _ = stores
    a, b, _ = ids
    _snapshot_then_log(factory, log, one, (a, b),
                       (a, 2, {"pos": [2, 2]}), (b, 3, {"hp": 3}))
    lost, there = MemoryHotStore(), _store()  # every Redis restarted empty
    asked: list[list[str]] = []

    def elsewhere(sessions_: list[str]) -> dict[str, HotStore]:
        asked.append(sorted(sessions_))
        return {b: there}

    # (on PostgreSQL, earlier tests' unnamed rows are replayed too)
    assert statelog.recover(lost, factory, one, elsewhere) >= 2
    assert len(asked) == 1 and {a, b} <= set(asked[0])
    assert sessions.read_states(lost, [a, b]) == {a: sessions.HotState(2, {"hp": 1,
                                                                           "pos": [2, 2]})}
    assert sessions.read_states(there, [a, b]) == {b: sessions.HotState(3, {"hp": 3})}


def test_a_recovery_follows_a_session_that_moves_off_its_store_while_it_replays(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog,
        stores: tuple[str, str]) -> None:
    """A session handed over to another instance's store after the replay asked where it
    runs (a rebalance just after a full restart) gets its logged updates where it went:
    the store it left refuses them as moved away."""
    one, _ = stores
    a, b, _ = ids
    _snapshot_then_log(factory, log, one, (a, b), (b, 2, {"hp": 4}))
    lost, there = MemoryHotStore(), _store()  # every Redis restarted empty
    asked: list[list[str]] = []

    def elsewhere(sessions_: list[str]) -> dict[str, HotStore]:
        asked.append(sorted(sessions_))
        if len(asked) > 1:
            return {b: there}
        # b runs here as the replay asks; then it moves, at its snapshot (seq 1)
        with factory() as db:
            sessions.restore_open(db, lost, {b})
        there.states.take_over([b], lost.states.hand_over([b]), EMIT)
        return {}

    assert statelog.recover(lost, factory, one, elsewhere) is not None
    assert asked[1] == [b]  # asked again for the session refused as moved away
    assert sessions.read_states(there, [b]) == {b: sessions.HotState(2, {"hp": 4})}
    assert sessions.read_states(lost, [a, b]) == {}  # a had no rows after its snapshot


def test_a_recovery_keeps_in_its_own_store_what_it_cannot_send_elsewhere(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog,
        stores: tuple[str, str]) -> None:
    """A session's store that does not answer, or a registry that does not, never holds up
    a recovery: those sessions' rows are replayed into the store recovering."""
    one, _ = stores
    a, b, _ = ids
    before = _store()
    _open(before, factory, a, b)
    _logged(factory, (a, 1, {"hp": 1}), (b, 2, {"hp": 2}), hot=before, log=log, store=one)
    gone = hot_store_for(f"redis://127.0.0.1:{free_port()}/0", 0.2)  # nothing listens

    def registry_away(_ids: object) -> dict[str, HotStore]:
        raise redis.ConnectionError("the registry does not answer")

    for elsewhere in (lambda _ids: {b: gone}, registry_away):
        lost = MemoryHotStore()
        assert statelog.recover(lost, factory, one, elsewhere) is not None
        assert lost.states.recovered()
        assert sessions.read_states(lost, [a, b]) == {
            a: sessions.HotState(1, {"hp": 1}), b: sessions.HotState(2, {"hp": 2})}


def test_a_sessions_durable_seq_is_the_newest_any_store_logged(
        factory: sessionmaker[Session], ids: list[str], log: statelog.StateLog,
        stores: tuple[str, str]) -> None:
    """A session that moved to another store has rows in both: the newest counts, and still
    does once the store it left has finished a round."""
    one, other = stores
    a, b, _ = ids
    left, joined = _store(), _store()
    _open(left, factory, a, b)
    _logged(factory, (a, 2, {"hp": 2}), (b, 7, {"hp": 7}), hot=left, log=log, store=one)
    sessions.ensure_state(joined, a)  # a moved
    _logged(factory, (a, 4, {"hp": 4}), hot=joined, log=log, store=other)
    assert durable.last_durable(factory, [a, b]) == {a: 4, b: 7}
    assert durable.write_behind(left, factory, one, "w1") == 2  # a at 2, b at 7
    assert durable.last_durable(factory, [a, b]) == {a: 4, b: 7}


def test_rows_written_before_stores_were_named_are_kept_and_replayed_into_every_store(
        hot: HotStore, factory: sessionmaker[Session], ids: list[str],
        log: statelog.StateLog, stores: tuple[str, str]) -> None:
    """Which store applied a row written before migration 0004 is not known: no store's
    round deletes it, and every store's recovery replays it."""
    a, b, _ = ids
    _open(hot, factory, b)
    before = wire.pack_batch([wire.entry(a, 1, {"hp": 1})])  # applied to some store then
    with transaction(factory) as db:
        sessions.open_session(db, a, instance_id="i0", session_type="casual", players=1,
                              region=None)
        db.execute(insert(StateLogRow).values(batch=before))  # no store: the column's default
    _logged(factory, (b, 1, {"hp": 2}), hot=hot, log=log, store=stores[0])
    assert durable.write_behind(hot, factory, stores[0], "w1") == 1
    assert durable.write_behind(_store(), factory, stores[1], "w1") == 0
    assert statelog.row_count(factory, stores[0]) == 0
    assert _log_rows(factory, [a]) != []
    for store in stores:
        lost = MemoryHotStore()
        assert statelog.recover(lost, factory, store)
        assert sessions.read_states(lost, [a, b]) == {a: sessions.HotState(1, {"hp": 1})}


def test_a_store_s_out_of_date_copies_are_named_once_each_and_cleared(
        factory: sessionmaker[Session], ids: list[str]) -> None:
    store = f"{STORE}-void"
    errors: list[BaseException] = []

    def void(sessions_: list[str]) -> None:  # two workers restoring one session at once
        try:
            storenames.void_states(factory, store, sessions_)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=void, args=(part,)) for part in (ids[:2], ids[1:])]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    storenames.void_states(factory, store, ids)  # again: nothing changes
    assert storenames.voided(factory, store) == sorted(ids)
    assert storenames.voided(factory, f"{store}-other") == []
    storenames.unvoid(factory, store, ids[:2])
    assert storenames.voided(factory, store) == [ids[2]]
