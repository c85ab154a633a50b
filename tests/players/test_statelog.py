"""The state log's merge: replaying a log merged (one update per session, field and seq)
leaves every session as applying each logged batch in order does (hypothesis, on the
process-memory store; tests/players/test_statestore.py holds the Redis script to it)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from app.players import wire
from app.players.hotstore import MemoryHotStore
from app.players.statelog import Merged
from app.players.statestore import Emit, StateStore, StoredState

EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")
SESSIONS = ["a", "b", "c"]

_fields = st.lists(st.tuples(st.sampled_from(["hp", "pos", "act"]),
                             st.integers(min_value=0, max_value=3)), max_size=4)
_entry = st.tuples(st.sampled_from([*SESSIONS, "ghost"]), st.integers(min_value=1, max_value=6),
                   _fields)
_batches = st.lists(st.lists(_entry, min_size=1, max_size=6), min_size=1, max_size=8)


def _blob(entries: list[tuple[str, int, list[tuple[str, int]]]]) -> bytes:
    """A batch in wire form; a field named twice in an entry is sent twice."""
    return wire.pack_batch([wire.entry(s, n, {}) + [x for name, value in fields
                                                    for x in (name, wire.pack_value(value))]
                            for s, n, fields in entries])


def _fresh() -> StateStore:
    store = MemoryHotStore().states
    for session in SESSIONS:
        store.put_if_newer(session, 0, {"hp": wire.pack_value(-1)})
    return store


def _states(store: StateStore) -> list[StoredState | None]:
    return store.read([*SESSIONS, "ghost"])


@settings(max_examples=300, deadline=None)
@given(_batches, st.data())
def test_a_merged_log_replays_to_the_states_the_batches_made(
        batches: list[list[tuple[str, int, list[tuple[str, int]]]]], data: Any) -> None:
    applied, replayed = _fresh(), _fresh()
    merged = Merged()
    for entries in batches:
        blob = _blob(entries)
        applied.apply(blob, EMIT)
        merged.add(wire.unpack_batch(blob))
    size = data.draw(st.integers(min_value=1, max_value=5), label="entries per replayed batch")
    for blob in merged.batches(size):
        replayed.apply(blob, EMIT)
    assert _states(replayed) == _states(applied)


def test_a_malformed_entry_is_left_out_as_the_script_rejects_it() -> None:
    merged = Merged()
    merged.add([[b"a", 0, b"hp", b"\x01"], [b"a", 2, b"hp"], [b"a", 1, b"hp", b"\x05"], "x"])
    assert [wire.unpack_batch(b) for b in merged.batches()] == [[[b"a", 1, b"hp", b"\x05"]]]
