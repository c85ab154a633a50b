"""The ``sessions`` section of a restart-fleet fault: restored, lost and unsaved updates,
from hot state read as it is (process memory and SQLite)."""

from __future__ import annotations

import pytest
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.instances.memory import MemoryRegistry
from app.players import sessions, wire
from app.players.durable import write_behind
from app.players.hotstore import MemoryHotStore
from app.players.statestore import Emit
from app.simulate.restarts import applied_seqs, at_kill, open_sessions, restart_section

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")


@pytest.fixture
def factory(sqlite_url: str) -> sessionmaker[Session]:
    return make_sessionmaker(make_engine(sqlite_url))


def _run(factory: sessionmaker[Session], hot: MemoryHotStore, ids: list[str]) -> None:
    with transaction(factory) as db:
        for session_id in ids:
            sessions.open_session(db, session_id, instance_id="i0", session_type="casual",
                                  players=1, region=None)
        sessions.close_session(db, ids[-1])  # closed before the kill: not counted
    for session_id in ids:
        sessions.ensure_state(hot, session_id)


def _apply(hot: MemoryHotStore, session_id: str, *seqs: int) -> None:
    batch = wire.pack_batch(wire.entry(session_id, n, {"hp": n}) for n in seqs)
    hot.states.apply(batch, EMIT)


def test_sessions_back_at_their_durable_state_count_as_restored(
        factory: sessionmaker[Session]) -> None:
    hot = MemoryHotStore()
    hot.states.set_recovered()  # nothing to replay: snapshot rounds may run
    _run(factory, hot, ["sim-x-0", "sim-x-1", "sim-x-2", "other-0", "sim-x-3"])
    assert open_sessions(factory, "sim-x-") == ["sim-x-0", "sim-x-1", "sim-x-2"]
    for session_id in ("sim-x-0", "sim-x-1", "sim-x-2"):
        _apply(hot, session_id, 1, 2, 3)
    write_behind(hot, factory, "memory://", "w")
    _apply(hot, "sim-x-0", 4, 5)  # applied, not yet durable at the kill
    kept = at_kill([hot], factory, "sim-x-")
    assert kept.durable == {"sim-x-0": 3, "sim-x-1": 3, "sim-x-2": 3}
    assert kept.applied == {"sim-x-0": 5, "sim-x-1": 3, "sim-x-2": 3}

    after = MemoryHotStore()  # hot state lost: sim-x-0 restored, sim-x-1 came back empty,
    sessions.ensure_state(after, "sim-x-0", sessions.HotState(3, {"hp": 3}))
    sessions.ensure_state(after, "sim-x-1")  # and sim-x-2 never came back
    registry = MemoryRegistry()
    registry.join("i0", 10)
    registry.place("sim-x-0", 1.0)
    section = restart_section(kept, [MemoryHotStore(), after], registry)
    assert section == {
        "open_at_restart": 3, "restored_ratio": round(1 / 3, 6), "lost_updates": 6,
        "unsaved_updates": 2, "placed_ratio": round(1 / 3, 6),
        "not_restored": [
            {"session": "sim-x-1", "durable_seq": 3, "applied_seq_at_kill": 3, "seq_now": 0},
            {"session": "sim-x-2", "durable_seq": 3, "applied_seq_at_kill": 3,
             "seq_now": None}]}


def test_no_restart_no_section() -> None:
    assert restart_section(None, [MemoryHotStore()]) == {}


def test_a_session_s_applied_seq_is_the_highest_among_the_stores() -> None:
    """A session lives in its instance's store; one it moved away from keeps an older
    copy, and a store that never held it has none."""
    old, new, other = MemoryHotStore(), MemoryHotStore(), MemoryHotStore()
    for hot in (old, new):
        sessions.ensure_state(hot, "s1")
    _apply(old, "s1", 1, 2)
    _apply(new, "s1", 1, 2, 3, 4)
    sessions.ensure_state(other, "s2")
    _apply(other, "s2", 1)
    assert applied_seqs([new, old, other], ["s1", "s2", "s3"]) == {"s1": 4, "s2": 1}
    assert applied_seqs([old], ["s1"]) == {"s1": 2}


def test_what_the_workers_counted_before_the_kill_is_taken_out_and_added_once(
        factory: sessionmaker[Session]) -> None:
    hot = MemoryHotStore()
    _run(factory, hot, ["sim-y-0", "sim-y-1"])
    twice = wire.pack_batch([wire.entry("sim-y-0", 1, {"hp": 1})] * 2)
    sessions.apply_batch(hot, twice)  # one applied, one stale

    kept = at_kill([hot], factory, "sim-y-")

    assert kept.network is not None
    assert (kept.network.updates, kept.network.stale) == (1, 1)
    assert sessions.network_totals(hot).updates == 0  # out of the store
    sessions.apply_batch(hot, wire.pack_batch([wire.entry("sim-y-1", 1, {"hp": 1})]))
    total = sessions.network_totals(hot).plus(kept.network)  # as the run reports them
    assert (total.updates, total.stale) == (2, 1)
