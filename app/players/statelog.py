"""The state log: every batch of state updates a player worker applied, appended to SQL in
its wire form within one flush period (`write_behind_ms`).

It is what makes an applied update durable between two snapshot rounds
(`app.players.durable`): a round writes every changed session's state into
``game_sessions`` and then deletes the log rows it covers, so the log holds about one
snapshot period of batches.  Writing one row per batch, where a round writes one row per
session, is what lets rounds be rare: at 5,000 sessions a round a second cost the server
more than the updates themselves (docs/measurements.md).

When a hot store is found without its recovered flag (its Redis restarted empty, or it is
new), `recover` replays the log into it, oldest row first, restoring from their snapshots
the sessions it names, and then sets the flag; snapshot rounds wait for it.  Replaying is
safe at any time and in any order, beside live updates: the state script writes a field
only when the update is newer than the one that last wrote it.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any, cast

from sqlalchemy import CursorResult, delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.players import sessions, wire
from app.players.hotstore import HotStore
from app.players.models import StateLogRow
from app.players.statestore import Emit
from app.protocol import keys

log = logging.getLogger(__name__)

Factory = sessionmaker[Session]

MAX_PENDING_BYTES = 64 * 1024 * 1024  # held while SQL is away; the oldest go past it
REPLAY_ROWS = 100  # log rows read at a time by a replay
RECOVERY_CLAIM_S = 120  # one process replays; another takes over after this
REPLAY_EMIT = Emit(None, keys.REPLAYED_UPDATES, keys.REPLAYED_BYTES)


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
        """A writer stops; with none left, what is pending is dropped on the next add."""
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

    def flush(self, factory: Factory) -> int:
        """Write the pending batches in one transaction; returns how many.  On failure they
        stay pending, ahead of newer ones, and the error is raised."""
        with self._lock:
            batches, self._pending, self._bytes = self._pending, [], 0
        if not batches:
            return 0
        try:
            with transaction(factory) as db:
                db.execute(insert(StateLogRow), [{"batch": b} for b in batches])
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


_THIS_PROCESS = StateLog()


def this_process() -> StateLog:
    """The state log of this process's player work."""
    return _THIS_PROCESS


def last_row(factory: Factory) -> int:
    """The newest row of the log (0 when it is empty)."""
    with factory() as db:
        return int(db.scalar(select(func.coalesce(func.max(StateLogRow.id), 0))) or 0)


def delete_through(factory: Factory, row: int) -> int:
    """Delete the log up to `row`, which a snapshot round has covered; returns the rows."""
    if row <= 0:
        return 0
    with transaction(factory) as db:
        done = cast("CursorResult[Any]",
                    db.execute(delete(StateLogRow).where(StateLogRow.id <= row)))
        return int(done.rowcount or 0)


def rows(factory: Factory, after: int = 0, through: int | None = None) -> Iterator[
        tuple[int, bytes]]:
    """The log's rows after `after` (up to `through`), oldest first, read `REPLAY_ROWS` at
    a time."""
    while True:
        query = select(StateLogRow.id, StateLogRow.batch).where(StateLogRow.id > after)
        if through is not None:
            query = query.where(StateLogRow.id <= through)
        with factory() as db:
            chunk = db.execute(query.order_by(StateLogRow.id).limit(REPLAY_ROWS)).all()
        for row_id, batch in chunk:
            yield int(row_id), bytes(batch)
        if len(chunk) < REPLAY_ROWS:
            return
        after = int(chunk[-1][0])


def replay(hot: HotStore, factory: Factory) -> int:
    """Apply every row of the log to `hot` again, oldest first, restoring from SQL the
    open sessions it names that hot state lacks; returns the updates that changed state."""
    applied = 0
    for row, batch in rows(factory, through=last_row(factory)):
        try:
            result = sessions.apply_batch_restoring(hot, factory, batch, size_later=True,
                                                    emit=REPLAY_EMIT)
        except ValueError as exc:  # not written by a worker: one bad row stops no replay
            log.error("state log row %d is not a batch and was skipped: %s", row, exc)
            continue
        applied += result.applied
    return applied


def recover(hot: HotStore, factory: Factory) -> int | None:
    """Replay the log into `hot` unless it is recovered already, or another process is
    replaying; then mark it recovered.  Returns the updates replayed, or None when there was
    nothing to do here."""
    if hot.states.recovered() or not hot.claim(keys.STATE_RECOVERING, RECOVERY_CLAIM_S):
        return None
    try:
        applied = replay(hot, factory)
        hot.states.set_recovered()
    finally:
        hot.delete(keys.STATE_RECOVERING)
    if applied:
        log.warning("hot state was recovered from SQL: %d updates of the state log applied "
                    "again", applied)
    return applied


def logged_seqs(factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The newest seq the log holds for each of `session_ids` (those it names).  Reads the
    whole log: about one snapshot period of batches."""
    wanted = {s.encode() for s in session_ids}
    out: dict[bytes, int] = {}
    for _, batch in rows(factory):
        for entry in wire.unpack_batch(batch):
            if (isinstance(entry, list) and len(entry) > 1 and entry[0] in wanted
                    and isinstance(entry[1], int) and entry[1] > out.get(entry[0], 0)):
                out[entry[0]] = entry[1]
    return {s.decode(): seq for s, seq in out.items()}


def row_count(factory: Factory) -> int:
    """The rows the log holds now."""
    with factory() as db:
        return int(db.scalar(select(func.count()).select_from(StateLogRow)) or 0)
