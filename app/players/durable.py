"""Write-behind: sessions' hot state made durable in SQL on a bounded lag, so that every
session and its last durable state survive the loss of every worker and every Redis at once.

Two writers, both in each player worker (`WriteBehind`):
- The state log (`app.players.statelog`): every `write_behind_ms` the batches the worker
  applied go to SQL, one row each.  An applied update is durable within about one period.
- Snapshot rounds, every `snapshot_ms`: the state script marks each session it changes
  (`app.players.statestore`); the worker that holds the store's lease (one writer per hot
  store at a time; a writer that dies gives way when its lease runs out) takes the marks
  with those sessions' state (on Redis, the script that takes them builds each snapshot),
  writes it into ``game_sessions`` (``snapshot``, ``snapshot_seq``) where it is not older,
  in one SQL transaction per chunk, and removes the marks it wrote.  A round's marks are
  those made before it started (later ones wait for the next), so once they are all
  written, SQL's snapshots hold every update of the store's log rows written before the
  round started, and those rows are deleted (other stores' rows are not: each hot store's
  rows carry its name, `Settings.hot_store_name`).

`last_durable` says which seq SQL holds (snapshot or log), and `last_applied` is what a
game server asks after a restart: the newest seq the fleet applied, from hot state, or
from SQL (put back into hot state) when hot state was lost.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any

from redis import RedisError
from sqlalchemy import TextClause, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import reads, transaction
from app.db.base import utcnow
from app.periodic import Periodic
from app.players import statelog, storenames
from app.players.hotstore import HotStore
from app.players.models import GameSession
from app.players.sessions import open_snapshots, restore
from app.players.statestore import Dirty, StateStore
from app.protocol import keys

log = logging.getLogger(__name__)

CHUNK = 1000  # sessions read from SQL together
SQLITE_ROWS = 500  # sessions to one SQLite statement of snapshots (three variables each)
# Marks taken (with their sessions' state) in one script call and written to SQL in one
# transaction.  Redis runs nothing else while a script runs: a take of 1,000 held it about
# 30 ms, which every client waited out, player batches and game servers' sends alike
# (docs/measurements.md); a take of 100 holds it about as long as one player batch does.
TAKE = 100
ROUND_SESSIONS = 50_000  # a round writes at most this many sessions; the next round goes on
# After each take a round rests as long as the take and its write took: at half the pace, a
# round of 5,000 sessions spreads over about half a second instead of bursting, and the
# players' work on the same cores and Redis waits less behind it.
REST = 1.0
LEASE_MS = 10_000  # a writer that stopped mid-round gives way to another after this
LIVE_PERIODS = 3  # a state log writer that noted no flush for this many periods has stopped
POLLS = 4  # how often a period `wait_for_flushes` looks at the writers' flushes
SILENT_CHECK_S = 3600.0  # a round looks for stores that stopped logging at most this often

Factory = sessionmaker[Session]


def write_behind(hot: HotStore, factory: Factory, store: str, owner: str, *,
                 limit: int = TAKE, lease_ms: int = LEASE_MS) -> int | None:
    """One snapshot round (or the rest of one) on `hot`, the hot store named `store`, as
    `owner`: the changed sessions' state into SQL where it is not older than the stored
    snapshot; once the round's marks are all written, the store's state-log rows it covers
    are deleted (not other stores' rows, nor the unnamed ones; nor any while the store
    holds copies out of date, `_log_held`).  Returns the sessions
    written, or None when another writer holds the lease or the store is not recovered
    yet.  Idempotent.  A failed SQL write keeps the marks for the next round and gives the
    lease back."""
    covers = statelog.last_row(factory, store)  # read first: every row up to it is applied
    written, done = 0, None
    try:
        for _ in range(max(1, ROUND_SESSIONS // limit)):
            began = time.perf_counter()
            taken = hot.states.take_dirty(owner, limit, lease_ms, covers)
            if taken is None:
                return None
            written += _write_chunk(hot, factory, owner, taken.dirty)
            if len(taken.dirty) < limit:
                done = taken.log_row
                break
            time.sleep((time.perf_counter() - began) * REST)
    finally:
        hot.states.clean_dirty(owner, [], release=True)
    if done is not None and not _log_held(factory, store):
        statelog.delete_through(factory, store, done)
    return written


def drop_silent_logs(factory: Factory, store: str, retention_s: float) -> dict[str, int]:
    """Delete the state log rows of every other hot store that has logged nothing for
    `retention_s` (its instance gone for good, or its name changed): no round of theirs
    will delete them, and every reader of the whole log reads them.  A store that holds
    copies out of date keeps its rows (`_log_held`).  Returns the rows deleted, by store,
    each logged."""
    keep = storenames.voided_stores(factory) | {store}
    before = utcnow() - timedelta(seconds=retention_s)
    dropped = statelog.drop_silent(factory, before, keep)
    for name, rows in dropped.items():
        log.warning("hot store %s logged nothing for %.0f s: its %d state log rows are "
                    "deleted (a session of it placed elsewhere from now on starts from "
                    "its SQL snapshot)", name, retention_s, rows)
    return dropped


def _log_held(factory: Factory, store: str) -> bool:
    """Whether the store named `store` keeps its state log rows past a round: while SQL
    says it holds copies out of date (`storenames.voided`), until its instance has frozen
    them and sent on what it logged of them (`app.tasking.arrivals.freeze_voided`), which
    reads that from these rows."""
    if not storenames.has_voided(factory, store):
        return False
    log.info("hot store %s keeps its state log past this round: it holds out-of-date "
             "copies not yet frozen", store)
    return True


def _write_chunk(hot: HotStore, factory: Factory, owner: str, taken: Sequence[Dirty]) -> int:
    if not taken:
        return 0
    snapshots = {d.session: (d.seq, d.snapshot) for d in taken if d.seq > 0}
    with transaction(factory) as db:
        save_snapshots(db, snapshots)
    hot.states.clean_dirty(owner, [d.session for d in taken], release=False)
    return len(snapshots)


def save_snapshots(db: Session, snapshots: Mapping[str, tuple[int, bytes]]) -> None:
    """Write each session's ``(seq, snapshot)`` (`wire.pack_map` of its values) where the
    stored snapshot is not newer (one at the same seq may lack a field an older update,
    arriving late, wrote since).  Sessions unknown to SQL are left out.  Idempotent.  One
    statement takes the whole chunk: on PostgreSQL as arrays (half the client's CPU of an
    executemany, measured), on SQLite as a VALUES list of at most `SQLITE_ROWS` rows (an
    executemany steps once a row, and beside a busy thread each step waited for the GIL,
    with the write lock held: `app.db.reads`)."""
    if not snapshots:
        return
    rows = sorted(snapshots.items())
    if db.get_bind().dialect.name == "postgresql":
        db.execute(_UNNEST_UPDATE, {"ids": [s for s, _ in rows],
                                    "seqs": [seq for _, (seq, _) in rows],
                                    "blobs": [blob for _, (_, blob) in rows]})
        return
    for start in range(0, len(rows), SQLITE_ROWS):
        part = rows[start:start + SQLITE_ROWS]
        params: dict[str, Any] = {}
        for k, (session_id, (seq, blob)) in enumerate(part):
            params |= {f"i{k}": session_id, f"s{k}": seq, f"b{k}": blob}
        db.execute(_values_update(len(part)), params)


@functools.lru_cache(maxsize=64)
def _values_update(rows: int) -> TextClause:
    """SQLite's update of `rows` sessions' snapshots in one statement."""
    values = ", ".join(f"(:i{k}, :s{k}, :b{k})" for k in range(rows))
    return text("UPDATE game_sessions SET snapshot = v.column3, snapshot_seq = v.column2"
                f" FROM (VALUES {values}) AS v"
                " WHERE game_sessions.id = v.column1 AND game_sessions.snapshot_seq <= v.column2")


_UNNEST_UPDATE = text(
    "UPDATE game_sessions AS g SET snapshot = v.blob, snapshot_seq = v.seq"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:seqs AS integer[]),"
    " CAST(:blobs AS bytea[])) AS v(id, seq, blob)"
    " WHERE g.id = v.id AND g.snapshot_seq <= v.seq")


def wait_for_flushes(states: StateStore, since: int, period_s: float) -> None:
    """Wait until every process writing the state log of the store `states` (each
    `WriteBehind` notes its flushes there) has begun a flush one period (`period_s`, the
    write-behind's) after `since`, that store's `clock`: what each applied to the store
    before `since` is in SQL then, unless a thread of it stalled a whole period between
    applying a batch and holding it for the log, or its writes failed.  A writer that
    notes no flush (stopped, killed, SQL away) is waited for until it has been silent
    `LIVE_PERIODS` periods, so the wait ends within about that.  Raises RedisError when
    the store does not answer."""
    period = round(period_s * 1_000_000)
    while True:
        marks = states.flushes(states.clock() - LIVE_PERIODS * period)
        if all(began >= since + period for began in marks.values()):
            return
        time.sleep(period_s / POLLS)


def last_durable(factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The newest seq SQL holds for each session, in its snapshot or in the state log (any
    hot store's rows: a session may have moved between stores; 0: nothing written yet);
    sessions SQL does not know are left out.  Reads the whole log."""
    out: dict[str, int] = {}
    with reads.reading(factory) as db:
        for chunk in _chunks(session_ids):
            out.update(reads.rows(db, select(GameSession.id, GameSession.snapshot_seq)
                                  .where(GameSession.id.in_(chunk))))
    for session_id, seq in statelog.logged_seqs(factory, out).items():
        out[session_id] = max(out[session_id], seq)
    return out


def unrecorded(factory: Factory, session_ids: Iterable[str]) -> list[str]:
    """The sessions of `session_ids` SQL has no record of, open or closed (their open never
    committed), in order."""
    ids = list(dict.fromkeys(session_ids))
    known: set[str] = set()
    with reads.reading(factory) as db:
        for chunk in _chunks(ids):
            known.update(session_id for session_id, in reads.rows(
                db, select(GameSession.id).where(GameSession.id.in_(chunk))))
    return [s for s in ids if s not in known]


def last_applied(hot: HotStore, factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The newest seq the fleet applied for each session: from hot state, or from its SQL
    snapshot when that is newer (hot state lost with its Redis), which is then put back
    into hot state.  Sessions neither knows (never opened, or closed and gone from hot
    state) are left out.  What a game server asks after a restart, to carry on from."""
    ids = list(dict.fromkeys(session_ids))
    seqs = {s: seq for s, seq in zip(ids, hot.states.seqs(ids), strict=True)
            if seq is not None}
    with reads.reading(factory) as db:
        for chunk in _chunks(ids):
            newer = [(session_id, seq, blob)
                     for session_id, seq, blob in open_snapshots(db, chunk)
                     if seq > seqs.get(session_id, -1)]
            restore(hot, newer)
            seqs.update({session_id: seq for session_id, seq, _ in newer})
    return seqs


def last_round(hot: HotStore) -> dict[str, float] | None:
    """The last write-behind round on `hot`: ``at`` (epoch seconds), ``written``
    (sessions) and ``ms``; None before the first."""
    raw = hot.get(keys.DIRTY_LAST)
    return None if raw is None else dict(json.loads(raw))


def _chunks(ids: Iterable[str]) -> list[list[str]]:
    listed = list(ids)
    return [listed[k:k + CHUNK] for k in range(0, len(listed), CHUNK)]


class WriteBehind:
    """This process's state log flushed every `flush_s` as batches of `hot`, the hot store
    named `store` (and that store recovered from the log when it is found without its
    flag), and a snapshot round on it every `round_s`, each from a daemon thread
    (`Periodic`: a failure, SQL or Redis away, is logged once per run of failures and the
    next period tried), from `start` until `stop`, which flushes the log once more.  Celery
    signal receivers too."""

    def __init__(self, hot: HotStore, factory: Factory, store: str, flush_s: float,
                 round_s: float, *, log: statelog.StateLog | None = None,
                 elsewhere: statelog.Elsewhere | None = None,
                 retention_s: float = 0.0) -> None:
        self.hot, self.factory, self.store = hot, factory, store
        # other stores' rows silent this long go (`drop_silent_logs`; 0: never)
        self.retention_s = retention_s
        self._next_drop = 0.0
        self.elsewhere = elsewhere  # sessions a recovery replays into another store
        self.log = log or statelog.this_process()
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.written = 0
        # at once as well: a store found empty is replayed before the first period is out
        self._flushes = Periodic(self.flush, flush_s, "gamesched-state-log", at_start=True)
        self._rounds = Periodic(self.round, round_s, "gamesched-snapshots")
        self._started = False

    def start(self, **_: object) -> None:
        """Open the log and start both, unless they run already."""
        if not self._started:
            self._started = True
            self.log.open()
        self._flushes.start()
        self._rounds.start()

    def stop(self, **_: object) -> None:
        """Stop both, then write what the log holds."""
        self._rounds.stop()
        self._flushes.stop()
        try:
            self.log.flush(self.factory, self.store)
        except Exception as exc:  # noqa: BLE001 - stopping: nothing retries it
            log.warning("the last flush of the state log failed: %s", exc)
        if self._started:
            self._started = False
            self.log.close()

    def flush(self) -> int:
        """Write the log's pending batches and note the flush in the hot store (for
        `wait_for_flushes`), then recover the hot store if it needs it; the batches
        written.  Raises what failed; a store that does not answer as the flush begins
        does not keep the batches from SQL."""
        began = self._clock()
        flushed = self.log.flush(self.factory, self.store)
        if began is not None:
            self.hot.states.note_flush(self.owner, began)
        statelog.recover(self.hot, self.factory, self.store, self.elsewhere)
        return flushed

    def _clock(self) -> int | None:
        try:
            return self.hot.states.clock()
        except RedisError:
            return None

    def round(self) -> int:
        """One round now; the sessions it wrote (0 when another writer holds the lease).
        A round that ran is noted in the hot store (`last_round`).  Raises what failed."""
        started = time.perf_counter()
        written = write_behind(self.hot, self.factory, self.store, self.owner)
        if written is None:
            return 0
        self.hot.set(keys.DIRTY_LAST, json.dumps({
            "at": time.time(), "written": written,
            "ms": round((time.perf_counter() - started) * 1000.0, 1)}).encode())
        self.written += written
        self._drop_silent()
        return written

    def _drop_silent(self) -> None:
        """After a round this writer ran, at most every `SILENT_CHECK_S`: delete the rows
        of the stores that stopped logging `retention_s` ago."""
        now = time.monotonic()
        if self.retention_s <= 0 or now < self._next_drop:
            return
        self._next_drop = now + SILENT_CHECK_S
        drop_silent_logs(self.factory, self.store, self.retention_s)
