"""Write-behind: sessions' hot state written to SQL on a bounded lag, so that every session
and its last durable state survive the loss of every worker and every Redis at once.

The state script marks each session it changes, with its new seq
(`app.players.statestore`).  Every `write_behind_ms` each player worker tries a round; the
one that holds the store's lease (one writer per hot store at a time; a writer that dies
gives way when its lease runs out) takes the marks with those sessions' state (on Redis,
the script that takes them builds each snapshot), writes it into ``game_sessions``
(``snapshot``, ``snapshot_seq``) where it is newer, in one SQL transaction per chunk, and
removes the marks it wrote, unless a newer update marked the session again meanwhile.  An
applied update is so durable within about one period plus one round's writes;
`last_durable` says which seq SQL holds, and `last_applied` is what a game server asks
after a restart: the newest seq the fleet applied, from hot state, or from SQL (put back
into hot state) when hot state was lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence

from sqlalchemy import bindparam, select, text, update
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.periodic import Periodic
from app.players.hotstore import HotStore
from app.players.models import GameSession
from app.players.sessions import restore
from app.players.statestore import Dirty
from app.protocol import keys
from app.protocol.vocab import SessionStatus

log = logging.getLogger(__name__)

CHUNK = 1000  # sessions read from hot state and written to SQL together
ROUND_CHUNKS = 50  # a round writes at most this many chunks; the next round goes on
LEASE_MS = 10_000  # a writer that stopped mid-round gives way to another after this

Factory = sessionmaker[Session]


def write_behind(hot: HotStore, factory: Factory, owner: str, limit: int = CHUNK,
                 lease_ms: int = LEASE_MS) -> int | None:
    """One round of writing behind as `owner`: the changed sessions' state into SQL where
    it is newer than the stored snapshot.  Returns the sessions written, or None when
    another writer holds the lease.  Idempotent (a state is never written over a newer
    one).  A failed SQL write keeps the marks for the next round and gives the lease back."""
    written = 0
    try:
        for _ in range(ROUND_CHUNKS):
            taken = hot.states.take_dirty(owner, limit, lease_ms)
            if taken is None:
                return None
            if not taken:
                break
            written += _write_chunk(hot, factory, owner, taken)
            if len(taken) < limit:
                break
    finally:
        hot.states.clean_dirty(owner, [], release=True)
    return written


def _write_chunk(hot: HotStore, factory: Factory, owner: str, taken: Sequence[Dirty]) -> int:
    snapshots = {d.session: (d.seq, d.snapshot) for d in taken if d.seq > 0}
    with transaction(factory) as db:
        save_snapshots(db, snapshots)
    hot.states.clean_dirty(owner, [d.written for d in taken], release=False)
    return len(snapshots)


def save_snapshots(db: Session, snapshots: Mapping[str, tuple[int, bytes]]) -> None:
    """Write each session's ``(seq, snapshot)`` (`wire.pack_map` of its values) where the
    stored snapshot is older.  Sessions unknown to SQL are left out.  Idempotent.  On
    PostgreSQL one statement takes the whole chunk as arrays (half the client's CPU of an
    executemany, measured); on SQLite it is an executemany."""
    if not snapshots:
        return
    rows = sorted(snapshots.items())
    if db.get_bind().dialect.name == "postgresql":
        db.execute(_UNNEST_UPDATE, {"ids": [s for s, _ in rows],
                                    "seqs": [seq for _, (seq, _) in rows],
                                    "blobs": [blob for _, (_, blob) in rows]})
        return
    table = GameSession.metadata.tables[GameSession.__tablename__]
    stmt = (update(table)
            .where(table.c.id == bindparam("sid"), table.c.snapshot_seq < bindparam("seq"))
            .values(snapshot_seq=bindparam("seq"), snapshot=bindparam("blob")))
    db.execute(stmt, [{"sid": s, "seq": seq, "blob": blob} for s, (seq, blob) in rows])


_UNNEST_UPDATE = text(
    "UPDATE game_sessions AS g SET snapshot = v.blob, snapshot_seq = v.seq"
    " FROM unnest(CAST(:ids AS varchar[]), CAST(:seqs AS integer[]),"
    " CAST(:blobs AS bytea[])) AS v(id, seq, blob)"
    " WHERE g.id = v.id AND g.snapshot_seq < v.seq")


def last_durable(factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The seq each session's SQL snapshot holds (0: nothing written yet); sessions SQL
    does not know are left out."""
    out: dict[str, int] = {}
    with factory() as db:
        for chunk in _chunks(session_ids):
            rows = db.execute(select(GameSession.id, GameSession.snapshot_seq)
                              .where(GameSession.id.in_(chunk)))
            out.update({row.id: int(row.snapshot_seq) for row in rows})
    return out


def last_applied(hot: HotStore, factory: Factory, session_ids: Iterable[str]) -> dict[str, int]:
    """The newest seq the fleet applied for each session: from hot state, or from its SQL
    snapshot when that is newer (hot state lost with its Redis), which is then put back
    into hot state.  Sessions neither knows (never opened, or closed and gone from hot
    state) are left out.  What a game server asks after a restart, to carry on from."""
    ids = list(dict.fromkeys(session_ids))
    seqs = {s: st.seq for s, st in zip(ids, hot.states.read(ids), strict=True)
            if st is not None}
    with factory() as db:
        for chunk in _chunks(ids):
            rows = db.scalars(select(GameSession).where(
                GameSession.id.in_(chunk), GameSession.status == SessionStatus.OPEN))
            for row in rows:
                if row.snapshot_seq > seqs.get(row.id, -1):
                    restore(hot, row)
                    seqs[row.id] = row.snapshot_seq
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
    """`write_behind` every `period_s` from a daemon thread (`Periodic`: a failed round,
    SQL or Redis away, is logged once per run of failures and the next one tried), from
    `start` until `stop`, which writes one last round.  Celery signal receivers too."""

    def __init__(self, hot: HotStore, factory: Factory, period_s: float) -> None:
        self.hot, self.factory = hot, factory
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.written = 0
        self._rounds = Periodic(self.round, period_s, "gamesched-write-behind")

    def start(self, **_: object) -> None:
        """Start the rounds, unless they run already."""
        self._rounds.start()

    def stop(self, **_: object) -> None:
        """Stop the rounds, then write what is still marked."""
        self._rounds.stop()
        try:
            self.round()
        except Exception as exc:  # noqa: BLE001 - stopping: nothing retries it
            log.warning("the last write-behind round failed: %s", exc)

    def round(self) -> int:
        """One round now; the sessions it wrote (0 when another writer holds the lease).
        A round that ran is noted in the hot store (`last_round`).  Raises what failed."""
        started = time.perf_counter()
        written = write_behind(self.hot, self.factory, self.owner)
        if written is None:
            return 0
        self.hot.set(keys.DIRTY_LAST, json.dumps({
            "at": time.time(), "written": written,
            "ms": round((time.perf_counter() - started) * 1000.0, 1)}).encode())
        self.written += written
        return written
