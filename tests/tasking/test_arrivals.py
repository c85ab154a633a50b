"""A session moving off an instance whose hot store is gone (its machine with it) starts
from SQL: its snapshot and every update that store logged of it (in process memory and
SQLite; a store nothing listens on)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial

import pytest
from kombu.exceptions import OperationalError as BrokerError

from app.db import transaction
from app.instances.memory import MemoryRegistry
from app.players import durable, sessions, statelog, storenames, wire
from app.players.hotstore import MemoryHotStore
from app.players.storenames import record_store, recorded_store
from app.settings import load_settings, store_name
from app.simulate.redisserver import free_port
from app.tasking.arrivals import Landing, arrive, freeze_voided
from app.tasking.hotstores import HotStores
from app.tasking.runtime import Runtime
from tests.waiting import wait_for

HERE = "redis://127.0.0.1:7001/0"


@pytest.mark.parametrize("name", ["", "east-hot"], ids=["its URL's", "GAMESCHED_HOT_STORE"])
def test_a_session_from_an_instance_whose_store_is_gone_gets_what_that_store_logged(
        sqlite_url: str, name: str) -> None:
    runtime = Runtime(load_settings(database_url=sqlite_url))
    registry = MemoryRegistry()
    gone = f"redis://127.0.0.1:{free_port()}/0"  # nothing listens
    registry.join("gone", 100, gone, name)  # the name its rows carry, when not the URL's
    registry.join("here", 100, HERE)
    own = MemoryHotStore()
    own.states.set_recovered()
    runtime.__dict__["instances"] = registry
    runtime.__dict__["hot_stores"] = HotStores(own, HERE, registry)
    tag = uuid.uuid4().hex[:6]
    logged, quiet = f"{tag}-logged", f"{tag}-quiet"
    with transaction(runtime.sessions) as db:
        for session_id in (logged, quiet):
            sessions.open_session(db, session_id, instance_id="gone", session_type="casual",
                                  players=1, region=None)
            assert registry.place(session_id, 1.0, prefer="gone") == "gone"
    _logged(runtime, name or store_name(gone),  # what gone's worker logged before it went
            [wire.entry(logged, 1, {"hp": 1}), wire.entry(logged, 2, {"pos": [1, 2]})])
    assert {m.session for m in registry.drain("gone")} == {logged, quiet}
    here_log: list[bytes] = []

    told: list[str] = []

    arrived = arrive(runtime, "here", {logged, quiet}, Landing(log_to=here_log.append,
                                                               tell=told.append))

    assert arrived.taken == {logged}  # quiet: nothing logged, the caller restores it
    assert sessions.read_states(own, [logged, quiet]) == {
        logged: sessions.HotState(2, {"hp": 1, "pos": [1, 2]})}
    assert len(here_log) == 1  # durable under this store's name too
    assert storenames.voided(runtime.sessions, name or store_name(gone)) == sorted(
        [logged, quiet])
    assert told == ["gone"]  # its workers freeze those copies should it answer again
    assert registry.came_from([logged, quiet]) == [None, None]  # never taken from there


def test_a_session_from_an_instance_the_registry_lost_gets_what_its_store_logged(
        sqlite_url: str) -> None:
    """A full restart: the registry started again empty and "gone" never joined it again;
    the name of its store is found in SQL, where its worker recorded it as it joined."""
    runtime, registry, own = _instance_on(sqlite_url, "here")
    record_store(runtime.sessions, "gone", "gone-hot")
    session_id = f"{uuid.uuid4().hex[:6]}-away"
    with transaction(runtime.sessions) as db:
        sessions.open_session(db, session_id, instance_id="gone", session_type="casual",
                              players=1, region=None)
    _logged(runtime, "gone-hot", [wire.entry(session_id, 1, {"hp": 1}),
                                  wire.entry(session_id, 2, {"pos": [1, 2]})])
    assert registry.place(session_id, 1.0, prefer="gone") == "here"  # placed away from it

    arrived = arrive(runtime, "here", {session_id})

    assert arrived.taken == {session_id}
    assert sessions.read_states(own, [session_id]) == {
        session_id: sessions.HotState(2, {"hp": 1, "pos": [1, 2]})}


def test_the_copies_a_gone_store_kept_are_void_and_frozen_by_its_instance(
        sqlite_url: str) -> None:
    """West's sessions start on east from what west's store logged; west's store comes
    back with its data (an append-only Redis, or one cut off from east only), holding
    copies now out of date: SQL names them, east tells west (whose registry entry it
    found), and west freezes exactly those, as it joins again or as it takes the notice.
    A session east restored is never taken from west's copy afterwards."""
    runtime, registry, _ = _instance_on(sqlite_url, "east")
    record_store(runtime.sessions, "west", "west-hot")
    tag = uuid.uuid4().hex[:6]
    away, other = f"{tag}-away", f"{tag}-other"
    with transaction(runtime.sessions) as db:
        sessions.open_session(db, away, instance_id="west", session_type="casual",
                              players=1, region=None)
    _logged(runtime, "west-hot", [wire.entry(away, 1, {"hp": 1})])
    assert registry.place(away, 1.0, prefer="west") == "east"
    told: list[str] = []
    assert arrive(runtime, "east", {away}, Landing(tell=told.append)).taken == {away}
    assert storenames.voided(runtime.sessions, "west-hot") == [away]
    assert told == []  # the registry lost west: it freezes them as it joins again
    assert registry.came_from([away]) == [None]  # west's copy is never taken

    back, pending = f"{tag}-back", f"{tag}-pending"  # voided too, then placed on west again
    storenames.void_states(runtime.sessions, "west-hot", [back, pending])
    registry.join("west", 100, "redis://west:6379/0")
    assert registry.place(back, 1.0, prefer="west") == "west"  # nothing to take: live there
    assert registry.place(pending, 1.0, prefer="east") == "east"
    assert registry.drain("east")  # pending moves to west, its state still on east
    assert registry.owners([away, pending]) == ["west", "west"]
    moved_on = f"{tag}-moved-on"  # voided, and runs on north now
    registry.join("north", 100, "redis://north:6379/0")
    assert registry.place(moved_on, 1.0, prefer="north") == "north"
    storenames.void_states(runtime.sessions, "west-hot", [moved_on])
    # west applied a late batch of it on its copy, and logged it
    _logged(runtime, "west-hot", [wire.entry(moved_on, 3, {"hp": 3})])
    west_store = MemoryHotStore()  # back with what it held: away at seq 2, never logged
    west_store.states.put_many_if_newer([(away, 2, {"hp": b"\x02"}), (other, 1, {}),
                                         (back, 5, {}), (pending, 1, {}), (moved_on, 3, {})])
    west = Runtime(load_settings(database_url=sqlite_url, hot_store="west-hot"))
    west.__dict__["instances"] = registry
    west.__dict__["hot_stores"] = HotStores(west_store, "redis://west:6379/0", registry,
                                            own_store="west-hot")
    sent: list[tuple[str, list[object]]] = []

    # and a later one, applied and still in this worker's log buffer (not yet written)
    later = wire.pack_batch([wire.entry(moved_on, 4, {"mp": 4})])
    with _unwritten(later) as pending_log:
        assert freeze_voided(west, "west",
                             lambda to, batch: sent.append((to, wire.unpack_batch(batch)))) == 3

    assert west_store.states.read([away, other])[0] is None  # taken from east as it arrives
    assert west_store.states.read([pending])[0] is None  # the same
    assert west_store.states.read([moved_on])[0] is None
    assert west_store.states.read([other])[0] is not None  # not moved: kept
    assert west_store.states.read([back])[0] is not None  # placed here: kept
    assert storenames.voided(runtime.sessions, "west-hot") == []
    # what west logged of the one that runs elsewhere goes there (away's row stays: here)
    assert sent == [("north", [[moved_on.encode(), 4, b"mp", wire.pack_value(4)],
                               [moved_on.encode(), 3, b"hp", wire.pack_value(3)]])]
    assert pending_log.pending() == 0  # written before the log was read
    assert freeze_voided(west, "west") == 0  # once


def test_the_freeze_sends_on_what_another_worker_of_the_instance_had_not_written_yet(
        sqlite_url: str) -> None:
    """Another worker process of west applied a late batch to a voided copy just before
    the freeze, and holds it for its next write-behind flush: the freeze waits for that
    flush, and the batch goes on with what west's log held."""
    period = 0.2
    west, west_store, moved = _west_with_a_voided_copy(sqlite_url, period)
    other = durable.WriteBehind(west_store, west.sessions, "west-hot", period, 3600,
                                log=statelog.StateLog())  # the other worker's writer
    other.start()
    try:
        wait_for(lambda: other.owner in west_store.states.flushes(0), what="its first flush")
        other.log.add(wire.pack_batch([wire.entry(moved, 4, {"mp": 4})]))
        sent: list[tuple[str, list[object]]] = []

        assert freeze_voided(west, "west",
                             lambda to, batch: sent.append((to, wire.unpack_batch(batch)))) == 1
    finally:
        other.stop()

    assert sent == [("north", [[moved.encode(), 4, b"mp", wire.pack_value(4)],
                               [moved.encode(), 3, b"hp", wire.pack_value(3)]])]


def test_a_freeze_the_broker_refused_is_tried_again_and_sends_on(sqlite_url: str) -> None:
    """The copies are frozen, and the broker refuses what goes on: the freeze raises (the
    notice's task tries again), the copies stay void in SQL, and the try once the broker
    is back sends it all, though it freezes nothing more (so would a try after a worker
    killed between the freeze and the send)."""
    west, _, moved = _west_with_a_voided_copy(sqlite_url, 0.05)
    sent: list[tuple[str, list[object]]] = []

    def broker_away(to: str, batch: bytes) -> None:
        raise BrokerError("the broker is away")

    with pytest.raises(BrokerError):
        freeze_voided(west, "west", broker_away)
    assert storenames.voided(west.sessions, "west-hot") == [moved]

    assert freeze_voided(west, "west",
                         lambda to, batch: sent.append((to, wire.unpack_batch(batch)))) == 0

    assert sent == [("north", [[moved.encode(), 3, b"hp", wire.pack_value(3)]])]
    assert storenames.voided(west.sessions, "west-hot") == []


def _west_with_a_voided_copy(sqlite_url: str, period: float) -> tuple[Runtime, MemoryHotStore,
                                                                       str]:
    """West's worker (its hot store "west-hot" in memory, its write-behind every `period`
    seconds) and a session that runs on north whose copy in west's store SQL says is out
    of date; west applied an update to it late (seq 3) and logged it."""
    west = Runtime(load_settings(database_url=sqlite_url, hot_store="west-hot",
                                 write_behind_ms=round(period * 1000)))
    registry, west_store = MemoryRegistry(), MemoryHotStore()
    west.__dict__["instances"] = registry
    west.__dict__["hot_stores"] = HotStores(west_store, HERE, registry, own_store="west-hot")
    registry.join("west", 100, HERE)
    registry.join("north", 100, "redis://north:6379/0")
    moved = f"{uuid.uuid4().hex[:6]}-moved"
    assert registry.place(moved, 1.0, prefer="north") == "north"
    west_store.states.put_many_if_newer([(moved, 3, {"hp": wire.pack_value(3)})])
    storenames.void_states(west.sessions, "west-hot", [moved])
    _logged(west, "west-hot", [wire.entry(moved, 3, {"hp": 3})])
    return west, west_store, moved


def _instance_on(sqlite_url: str, instance: str) -> tuple[Runtime, MemoryRegistry,
                                                            MemoryHotStore]:
    """A worker's runtime on SQLite for `instance`, the only one in a new registry, its hot
    store in memory (at `HERE`); the names of other instances' stores read from SQL."""
    runtime = Runtime(load_settings(database_url=sqlite_url))
    registry = MemoryRegistry()
    registry.join(instance, 100, HERE)
    own = MemoryHotStore()
    own.states.set_recovered()
    runtime.__dict__["instances"] = registry
    runtime.__dict__["hot_stores"] = HotStores(
        own, HERE, registry, recorded=partial(recorded_store, runtime.sessions))
    return runtime, registry, own


def test_a_notice_the_broker_does_not_take_fails_no_restore(
        sqlite_url: str, caplog: pytest.LogCaptureFixture) -> None:
    runtime, registry, own = _instance_on(sqlite_url, "here")
    registry.join("gone", 100, f"redis://127.0.0.1:{free_port()}/0", "gone-hot")  # silent
    session_id = f"{uuid.uuid4().hex[:6]}-away"
    with transaction(runtime.sessions) as db:
        sessions.open_session(db, session_id, instance_id="gone", session_type="casual",
                              players=1, region=None)
    assert registry.place(session_id, 1.0, prefer="gone") == "gone"
    _logged(runtime, "gone-hot", [wire.entry(session_id, 1, {"hp": 1})])
    assert registry.drain("gone")

    def broker_away(instance: str) -> None:
        raise BrokerError(f"cannot tell {instance}")

    with caplog.at_level(logging.WARNING, logger="app.tasking.arrivals"):
        arrived = arrive(runtime, "here", {session_id}, Landing(tell=broker_away))

    assert arrived.taken == {session_id}
    assert sessions.read_states(own, [session_id]) == {
        session_id: sessions.HotState(1, {"hp": 1})}
    assert "instance gone not told that copies in its hot store are void" in caplog.text


@contextmanager
def _unwritten(batch: bytes) -> Iterator[statelog.StateLog]:
    """`batch` applied by this process and still in its log buffer (a writer open)."""
    pending = statelog.this_process()
    pending.open()
    pending.add(batch)
    try:
        yield pending
    finally:
        pending.close()


def _logged(runtime: Runtime, store: str, entries: list[list[object]]) -> None:
    """`entries` logged as one batch under the hot store named `store`, as its worker
    logs what it applied."""
    log = statelog.StateLog()
    log.open()
    log.add(wire.pack_batch(entries))
    assert log.flush(runtime.sessions, store) == 1
