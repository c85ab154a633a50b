"""The state log: every batch of state updates a player worker applied, appended to SQL in
its wire form within one flush period (`write_behind_ms`).

It is what makes an applied update durable between two snapshot rounds
(`app.players.durable`): a round writes every changed session's state into
``game_sessions`` and then deletes the log rows it covers, so the log holds about one
snapshot period of batches.  Writing one row per batch, where a round writes one row per
session, is what lets rounds be rare: at 5,000 sessions a round a second cost the server
more than the updates themselves (docs/measurements.md).

Each row names the hot store its batch was applied to (`Settings.hot_store_name`), so
that hot stores sharing one database keep their logs apart: a round on a store deletes
only that store's rows, which its snapshots cover, and a store's recovery replays only its
rows, whose sessions it holds.  Rows written before stores were named (`UNNAMED_STORE`,
migration 0004) may belong to any store: no round deletes them (no one store's snapshots
are known to cover them), and every store's recovery replays them, as every recovery did
before.

When a hot store is found without its recovered flag (its Redis restarted empty, or it is
new), `recover` replays its rows and the unnamed ones into it, restoring from their
snapshots the sessions they name, and then sets the flag; snapshot rounds wait for it.
The rows are merged first as the state script would merge them (`Merged`), so a replay
applies about one update per session.  Replaying is safe at any time and in any order,
beside live updates: the state script writes a field only when the update is newer than
the one that last wrote it.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, cast

from redis import RedisError
from sqlalchemy import CursorResult, TextClause, bindparam, delete, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import reads, transaction, utcnow
from app.players import sessions, wire
from app.players.hotstore import HotStore
from app.players.models import UNNAMED_STORE, StateLogRow
from app.players.statestore import MOVED_AWAY, Emit, Fence, malformed
from app.protocol import keys

log = logging.getLogger(__name__)

Factory = sessionmaker[Session]

MAX_PENDING_BYTES = 64 * 1024 * 1024  # held while SQL is away; the oldest go past it
REPLAY_ROWS = 100  # log rows read at a time by a replay
FLUSH_ROWS = 500  # log rows written by one statement (in its order: ids in that order)
REPLAY_ENTRIES = 1000  # merged entries applied together by a replay
RECOVERY_CLAIM_S = 120  # one process replays; another takes over after this
REPLAY_EMIT = Emit(None, keys.REPLAYED_UPDATES, keys.REPLAYED_BYTES, keys.REPLAYED_STALE)
MOVE_FOLLOWS = 3  # moves a replayed session's entries follow (each a handover meanwhile)
# The hot store of each of the given sessions that runs on an instance keeping its state in
# another store than the one replayed (the others are left out).
Elsewhere = Callable[[Sequence[str]], Mapping[str, HotStore]]


class StateLog:
    """The batches this process applied and has not yet written to the log.  It holds
    batches only while a writer has it open (`WriteBehind`), so a process without one
    holds nothing."""

    def __init__(self, max_bytes: int = MAX_PENDING_BYTES) -> None:
        self._lock = threading.Lock()
        self._pending: list[bytes] = []
        self._bytes = 0
        self._max_bytes = max_bytes
        self._writers = 0
        self.dropped = 0  # batches let go past `max_bytes` while SQL was away

    def open(self) -> None:
        """A writer starts flushing this log."""
        with self._lock:
            self._writers += 1

    def close(self) -> None:
        """A writer stops; with none left, `add` holds nothing more."""
        with self._lock:
            self._writers = max(0, self._writers - 1)

    def add(self, batch: bytes) -> None:
        """Hold an applied batch for the next flush (nothing without a writer)."""
        with self._lock:
            if not self._writers:
                return
            self._pending.append(batch)
            self._bytes += len(batch)
            self._trim()

    def pending(self) -> int:
        """Batches waiting for the next flush."""
        with self._lock:
            return len(self._pending)

    def flush(self, factory: Factory, store: str) -> int:
        """Write the pending batches in one transaction, as applied to the hot store named
        `store`; returns how many.  On failure they stay pending, ahead of newer ones, and
        the error is raised."""
        with self._lock:
            batches, self._pending, self._bytes = self._pending, [], 0
        if not batches:
            return 0
        try:
            with transaction(factory) as db:  # a statement a part, not one a row (app.db.reads)
                for start in range(0, len(batches), FLUSH_ROWS):
                    part = batches[start:start + FLUSH_ROWS]
                    db.execute(_values_insert(len(part)), {"store": store, "at": utcnow()}
                               | {f"b{k}": b for k, b in enumerate(part)})
        except Exception:
            with self._lock:
                self._pending[:0] = batches
                self._bytes += sum(len(b) for b in batches)
                self._trim()
            raise
        return len(batches)

    def _trim(self) -> None:
        while self._bytes > self._max_bytes and len(self._pending) > 1:
            self._bytes -= len(self._pending.pop(0))
            self.dropped += 1
            if self.dropped == 1 or self.dropped % 1000 == 0:
                log.warning("the state log dropped %d batches it could not write to SQL "
                            "(over %d MiB pending)", self.dropped, self._max_bytes >> 20)


@functools.lru_cache(maxsize=64)
def _values_insert(rows: int) -> TextClause:
    """The insert of `rows` batches of one store, in their order, in one statement."""
    values = ", ".join(f"(:store, :b{k}, :at)" for k in range(rows))
    return text(f"INSERT INTO state_log (store, batch, written_at) VALUES {values}").bindparams(
        bindparam("at", type_=StateLogRow.__table__.c.written_at.type))


_THIS_PROCESS = StateLog()


def this_process() -> StateLog:
    """The state log of this process's player work."""
    return _THIS_PROCESS


def last_row(factory: Factory, store: str | None = None) -> int:
    """The newest row of the hot store named `store` (of any store when None; 0 when there
    is none)."""
    query = select(func.coalesce(func.max(StateLogRow.id), 0))
    if store is not None:
        query = query.where(StateLogRow.store == store)
    with reads.reading(factory) as db:
        return int(db.scalar(query) or 0)


def delete_through(factory: Factory, store: str, row: int) -> int:
    """Delete the rows of the hot store named `store` up to `row`, which a snapshot round on
    that store has covered; returns the rows.  Other stores' rows and the unnamed ones
    stay: this store's snapshots do not cover them."""
    if row <= 0:
        return 0
    with transaction(factory) as db:
        done = cast("CursorResult[Any]", db.execute(delete(StateLogRow).where(
            StateLogRow.store == store, StateLogRow.id <= row)))
        return int(done.rowcount or 0)


def drop_silent(factory: Factory, before: datetime, keep: Collection[str]) -> dict[str, int]:
    """Delete the rows written before `before` of every hot store that has logged nothing
    since (its newest row is older), but for the stores named in `keep` and the unnamed
    rows; returns the rows deleted, by store.  Such a store has stopped: the rounds that
    delete its rows as its snapshots cover them run on it alone.  A row it writes
    meanwhile is newer than `before`, and stays."""
    newest = (select(StateLogRow.store).group_by(StateLogRow.store)
              .having(func.max(StateLogRow.written_at) < before))
    dropped: dict[str, int] = {}
    with transaction(factory) as db:
        for store in db.scalars(newest).all():
            if store == UNNAMED_STORE or store in keep:
                continue
            done = cast("CursorResult[Any]", db.execute(delete(StateLogRow).where(
                StateLogRow.store == store, StateLogRow.written_at < before)))
            dropped[store] = int(done.rowcount or 0)
    return dropped


def replayed_stores(store: str) -> tuple[str, str]:
    """The stores whose rows a recovery of the hot store named `store` replays: its own and
    the unnamed ones (written before stores were named: any store may have applied them)."""
    return store, UNNAMED_STORE


def rows(factory: Factory, stores: Collection[str] | None = None, after: int = 0,
         through: int | None = None) -> Iterator[tuple[int, bytes]]:
    """The rows of the hot stores named `stores` (of every store when None) after `after`
    (up to `through`), oldest first, read `REPLAY_ROWS` at a time."""
    while True:
        query = select(StateLogRow.id, StateLogRow.batch).where(StateLogRow.id > after)
        if stores is not None:
            query = query.where(StateLogRow.store.in_(stores))
        if through is not None:
            query = query.where(StateLogRow.id <= through)
        # Row by row: a batch is kilobytes, and as hex in JSON (`reads.rows`) a thousand
        # rows cost 80 ms of CPU against 9 (docs/measurements.md).
        with reads.reading(factory) as db:
            chunk = db.execute(query.order_by(StateLogRow.id).limit(REPLAY_ROWS)).all()
        for row_id, batch in chunk:
            yield int(row_id), bytes(batch)
        if len(chunk) < REPLAY_ROWS:
            return
        after = int(chunk[-1][0])


def entries(factory: Factory, stores: Collection[str] | None = None,
            through: int | None = None) -> Iterator[list[Any]]:
    """The entries of each row of the hot stores named `stores` (of every store when None;
    up to `through`), oldest row first, as the state script sees them; a row that is not a
    batch is logged and skipped."""
    for row, batch in rows(factory, stores, through=through):
        try:
            yield wire.unpack_batch(batch)
        except ValueError as exc:  # not written by a worker: one bad row stops no reader
            log.error("state log row %d is not a batch and was skipped: %s", row, exc)


def replay(hot: HotStore, factory: Factory, store: str,
           elsewhere: Elsewhere | None = None) -> int:
    """Apply again to `hot`, the hot store named `store`, its rows of the log and the
    unnamed ones (`replayed_stores`), restoring from SQL the open sessions they name that
    hot state lacks; returns the updates that changed state.  Other stores' rows are left
    out: their sessions live there.  The rows are first merged as the state script would
    merge them (`Merged`: per field the newest value), so a replay costs one update per
    session and field, not one per update logged.

    With `elsewhere`, a session that runs now on an instance whose state lives in another
    store (placed there after a full restart, or moved there before this replay) gets
    its rows in that store instead, restored there from SQL if it lacks it; when that
    store does not answer, they go into `hot` (this store's recovery never waits on
    another's)."""
    merged = Merged()
    through = last_row(factory)
    for batch_entries in entries(factory, replayed_stores(store), through=through):
        merged.add(batch_entries)
    ids = merged.sessions()
    targets = _targets(elsewhere, ids)
    applied = 0
    for target, only in _by_store(hot, ids, targets):
        for batch in merged.batches(only=only):
            applied += _replay_batch(hot, target, factory, batch, elsewhere=elsewhere)
    if targets:
        log.warning("the state log's replay sent %d sessions' updates to the hot stores of "
                    "the instances they run on now", len(targets))
    return applied


def replay_sessions(hot: HotStore, factory: Factory, store: str, session_ids: Collection[str],
                    *, fence: Fence | None = None,
                    log_to: Callable[[bytes], None] | None = None) -> set[str]:
    """Apply to `hot` the rows of the hot store named `store` (another one, that does not
    answer) for `session_ids` only, merged, restoring from SQL those `hot` lacks; each
    batch that changed state goes to `log_to` (this store's log).  Returns the sessions
    the log named.  What a session moving off an instance whose store is gone takes
    instead of its state: every update that store logged.  Reads that store's whole
    log."""
    wanted = {s.encode() for s in session_ids}
    merged = Merged()
    for batch_entries in entries(factory, [store]):
        merged.add(batch_entries, only=wanted)
    for batch in merged.batches():
        if _apply_merged(hot, factory, batch, fence).applied and log_to is not None:
            log_to(batch)
    return set(merged.sessions())


def _targets(elsewhere: Elsewhere | None, ids: list[str]) -> dict[str, HotStore]:
    """`elsewhere`'s answer for `ids` (none when it fails: every session stays here)."""
    if elsewhere is None or not ids:
        return {}
    try:
        return dict(elsewhere(ids))
    except RedisError as exc:
        log.warning("the state log's replay could not learn where its sessions run (%s): "
                    "it replays them all into its own store", exc)
        return {}


def _replay_batch(hot: HotStore, target: HotStore, factory: Factory, batch: bytes, *,
                  elsewhere: Elsewhere | None = None, follows: int = MOVE_FOLLOWS) -> int:
    """Apply a merged `batch` to `target`, or to `hot` when `target` is another store that
    does not answer; the updates that changed state.  The entries of sessions that moved
    off that store meanwhile (handed over to another instance's store after `elsewhere`
    was asked: it refuses them as moved away) follow them to the stores they run in now,
    up to `follows` moves."""
    try:
        result = _apply_merged(target, factory, batch)
    except RedisError as exc:
        if target is hot:
            raise
        log.warning("the state log's replay could not reach a session's hot store (%s): its "
                    "updates go into this store", exc)
        result = _apply_merged(hot, factory, batch)
    moved = _moved_away(batch, result)
    if not moved:
        return result.applied
    return result.applied + _follow(hot, factory, moved, elsewhere, follows)


def _moved_away(batch: bytes, result: sessions.ApplyResult) -> list[Any]:
    """The entries of `batch` that `result` refused as their session moved away."""
    refused = set(result.refused(MOVED_AWAY))
    if not refused:
        return []
    return [entry for i, entry in enumerate(wire.unpack_batch(batch)) if i in refused]


def _follow(hot: HotStore, factory: Factory, moved: list[Any], elsewhere: Elsewhere | None,
            follows: int) -> int:
    """Replay `moved` (entries a store refused: their sessions moved off it during the
    replay) into the stores their sessions run in now; the updates that changed state."""
    ids = list(dict.fromkeys(entry[0].decode() for entry in moved))
    targets = _targets(elsewhere, ids) if follows > 0 else {}
    if not targets:
        log.warning("the state log's replay lost %d sessions that moved off their store "
                    "while it ran: their logged updates were not applied", len(ids))
        return 0
    applied = 0
    for target, only in _by_store(hot, ids, targets):
        batch = wire.pack_batch(e for e in moved if only is None or e[0] in only)
        applied += _replay_batch(hot, target, factory, batch, elsewhere=elsewhere,
                                 follows=follows - 1)
    return applied


def _apply_merged(hot: HotStore, factory: Factory, batch: bytes,
                  fence: Fence | None = None) -> sessions.ApplyResult:
    """Apply a batch of merged log rows to `hot`, restoring from SQL the open sessions it
    lacks, counted as replayed."""
    return sessions.apply_batch_restoring(hot, factory, batch, size_later=True, fence=fence,
                                          emit=REPLAY_EMIT)


def _by_store(hot: HotStore, ids: list[str],
              targets: Mapping[str, HotStore]) -> list[tuple[HotStore, set[bytes] | None]]:
    """The stores to replay into, each with the sessions it takes (None: every session
    `targets` does not send elsewhere)."""
    if not targets:
        return [(hot, None)]
    grouped: dict[int, tuple[HotStore, set[bytes]]] = {id(hot): (hot, set())}
    for session_id in ids:
        target = targets.get(session_id, hot)
        grouped.setdefault(id(target), (target, set()))[1].add(session_id.encode())
    return list(grouped.values())


class Merged:
    """Batches merged by the state script's rules: of each session's field, the value of
    the update with the highest seq (the first one seen among equals, as the script keeps
    the first one applied), and the session's highest seq.  Malformed entries are left
    out, as the script rejects them."""

    def __init__(self) -> None:
        # session -> (its highest seq, field -> (seq, packed value))
        self._sessions: dict[bytes, tuple[int, dict[bytes, tuple[int, bytes]]]] = {}

    def add(self, entries: list[Any], only: Collection[bytes] | None = None) -> None:
        """Merge the entries of one batch, in its order (of the sessions in `only`, when
        given)."""
        for entry in entries:
            if malformed(entry) is None and (only is None or entry[0] in only):
                self._add(entry[0], entry[1], dict(zip(entry[2::2], entry[3::2], strict=True)))

    def _add(self, session: bytes, seq: int, fields: dict[bytes, bytes]) -> None:
        top, known = self._sessions.get(session, (0, {}))
        for name, value in fields.items():  # a name given twice: its last value (dict)
            had = known.get(name)
            if had is None or seq > had[0]:
                known[name] = (seq, value)
        self._sessions[session] = (max(top, seq), known)

    def sessions(self) -> list[str]:
        """The sessions merged, in the order first seen."""
        return [session.decode() for session in self._sessions]

    def batches(self, size: int = REPLAY_ENTRIES,
                only: Collection[bytes] | None = None) -> Iterator[bytes]:
        """The merge as batches in wire form of at most `size` entries: one per session and
        seq its fields hold, and one for the session's highest seq (of the sessions in
        `only`, when given)."""
        entries: list[list[bytes | int]] = []
        for session, (top, known) in self._sessions.items():
            if only is not None and session not in only:
                continue
            by_seq: dict[int, list[bytes | int]] = {top: [session, top]}
            for name, (seq, value) in known.items():
                by_seq.setdefault(seq, [session, seq]).extend((name, value))
            entries.extend(by_seq.values())
            if len(entries) >= size:
                yield wire.pack_batch(entries)
                entries = []
        if entries:
            yield wire.pack_batch(entries)


def recover(hot: HotStore, factory: Factory, store: str,
            elsewhere: Elsewhere | None = None) -> int | None:
    """Replay the log into `hot`, the hot store named `store` (`replay`: its rows and the
    unnamed ones; with `elsewhere`, a session's into the store it runs in now), unless it
    is recovered already, or another process is replaying; then mark it recovered.
    Returns the updates replayed, or None when there was nothing to do here."""
    if hot.states.recovered() or not hot.claim(keys.STATE_RECOVERING, RECOVERY_CLAIM_S):
        return None
    started = time.perf_counter()
    try:
        applied = replay(hot, factory, store, elsewhere)
        hot.states.set_recovered()
    finally:
        hot.delete(keys.STATE_RECOVERING)
    if applied:
        log.warning("hot state was recovered from SQL's state log in %.1f s: %d updates "
                    "applied again", time.perf_counter() - started, applied)
    return applied


def logged_seqs(factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The newest seq the log holds for each of `session_ids` (those it names), in any hot
    store's rows: a session may have moved from one store to another.  Reads the whole
    log: about one snapshot period of batches per store."""
    wanted = {s.encode() for s in session_ids}
    out: dict[bytes, int] = {}
    for batch_entries in entries(factory):
        for entry in batch_entries:
            if (malformed(entry) is None and entry[0] in wanted
                    and entry[1] > out.get(entry[0], 0)):
                out[entry[0]] = entry[1]
    return {s.decode(): seq for s, seq in out.items()}


def row_count(factory: Factory, store: str | None = None) -> int:
    """The rows the log holds now for the hot store named `store` (for every store, the
    unnamed rows included, when None)."""
    query = select(func.count()).select_from(StateLogRow)
    if store is not None:
        query = query.where(StateLogRow.store == store)
    with reads.reading(factory) as db:
        return int(db.scalar(query) or 0)
