"""Sessions arriving on a server instance whose hot store is not the one their state is in.

When a session moves (a drain, a takeover, a rebalance) between two instances with hot
stores of their own, its state travels on first sight: the first batch of it that the new
instance runs finds it missing from its store, and the instance takes it from the store of
the instance it came from (the registry records that one with the move) before applying
anything of it.  Taking it freezes it there in one script call (`StateStore.hand_over`):
from then on that store refuses the session's updates as "moved away", and the old
instance sends them on to the new one, so every update it still held lands on the
session's one state.  The state is applied here as updates (each field where it is newer
than what is here), so two batches taking it at once, or a copy taken again after a
failure, write nothing twice; the copy joins this worker's state log, so SQL holds it
under this store's name until a snapshot round covers it.

A move also tells the instance it goes to (`send_arrivals`, from whoever moves sessions:
the controller's takeovers and rebalances, `gamesched drain`): a task first in its queue
takes the sessions' state at once, by the same path, so that their state is on their
instance's store even when no update of theirs follows the move.  Whichever comes first,
that task or a batch of the sessions, takes it; the other finds nothing left to take.

When the store it moved from does not answer (its machine gone with the instance), the
session starts here from SQL: its snapshot, and every update that store logged of it
(`statelog.replay_sessions`, found under the store's name that instance recorded as it
joined, `GAMESCHED_HOT_STORE` of its workers, else its URL's), so that no update a game
server was told was durable is lost with it.  The copy that store still holds is out of
date from then on, and SQL says so (`storenames.void_states`); the session is not taken
from there again.  Should the store come back with its data (an append-only Redis, or one
cut off for a while), its instance freezes such copies (`freeze_voided`) as it joins
again, before it consumes, and, if it never stopped, as soon as one of its workers takes
the notice the restoring instance sends it (`send_void_notice`), and sends what its store
logged of them to where they run (what it applied to them late lands there).  A copy is
kept when the registry places its session on that instance with nothing left to take (it
came back there since: its state there is live) or when it was taken over there after
the freeze was asked for (the store's clock says so, `StateStore.freeze_stale`).

A session missing here that runs on another instance now (its game server sent this
instance work before it learnt of a move, or the work was forwarded to the shared queue)
is not applied here: its entries go back to the caller to send on.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from kombu.exceptions import OperationalError as BrokerError
from redis import RedisError

from app.instances.placement import Move
from app.players import durable, statelog, storenames
from app.players.hotstore import HotStore
from app.players.sessions import Arrived
from app.players.statelog import Elsewhere
from app.players.statestore import Emit, Fence
from app.priority import BANDS, Route
from app.protocol import keys
from app.protocol.names import (
    ARRIVE_TASK,
    HANDOFF_HEADER,
    SENT_HEADER,
    UPDATE_TASK,
    VOID_TASK,
)
from app.protocol.vocab import Queue
from app.tasking.factory import GameschedCelery
from app.tasking.runtime import Runtime

log = logging.getLogger(__name__)

HANDED_EMIT = Emit(None, keys.HANDED_UPDATES, keys.HANDED_BYTES, keys.HANDED_STALE)
SendOn = Callable[[str, bytes], None]  # a state batch (wire form) to an instance's queue


@dataclass(frozen=True)
class Landing:
    """How an instance's worker writes the state it takes: with its `fence`, logged to
    `log_to`, and telling an instance whose store's copies it voided (`tell`)."""

    fence: Fence | None = None
    log_to: Callable[[bytes], None] | None = None
    tell: Callable[[str], None] | None = None


def arrive(runtime: Runtime, instance: str, sessions: set[str],
           landing: Landing = Landing()) -> Arrived:
    """Sort the `sessions` this worker's hot store lacks, on instance `instance`: those
    placed elsewhere (with their instance), and those placed here whose state was taken
    from the store of the instance they moved from, or from SQL with the updates that
    store logged when it does not answer (written as `landing` says).  The rest (never
    moved, or nothing logged of them) are left to the caller to restore from SQL.
    Idempotent."""
    registry = runtime.instances
    ids = sorted(sessions)
    owners = registry.owners(ids)
    elsewhere = {s: o for s, o in zip(ids, owners, strict=True) if o not in (None, instance)}
    mine = [s for s, o in zip(ids, owners, strict=True) if o == instance]
    taken: set[str] = set()
    for source, group in _by_source(mine, registry.came_from(mine)).items():
        if source != instance:
            taken |= _take(runtime, source, group, landing)
    return Arrived(elsewhere, taken)


def send_arrivals(app: GameschedCelery, moves: Sequence[Move]) -> int:
    """Tell each instance that `moves` took sessions to from an instance with another hot
    store to take their state now: one `ARRIVE_TASK` per instance, at the player queue's
    first step; returns how many were sent."""
    stores = app.runtime.hot_stores
    arriving: dict[str, list[str]] = {}
    for move in moves:
        if (move.source is not None
                and stores.of_instance(move.source) is not stores.of_instance(move.target)):
            arriving.setdefault(move.target, []).append(move.session)
    for target, sessions in arriving.items():
        route = Route(ARRIVE_TASK, Queue.PLAYER, BANDS[Queue.PLAYER].low, instance=target)
        app.publisher.send(route, [sorted(sessions)], {})
    return len(arriving)


def stores_elsewhere(runtime: Runtime) -> Elsewhere:
    """For a recovery of this worker's hot store (`app.players.statelog.replay`): the
    store of each session that runs now on an instance keeping its state elsewhere."""
    def elsewhere(ids: Sequence[str]) -> dict[str, HotStore]:
        stores, out = runtime.hot_stores, {}
        for session, owner in zip(ids, runtime.instances.owners(list(ids)), strict=True):
            if owner is not None and (store := stores.of_instance(owner)) is not stores.own:
                out[session] = store
        return out
    return elsewhere


def send_void_notice(app: GameschedCelery, instance: str) -> None:
    """Tell `instance` that copies in its hot store are out of date (`VOID_TASK`, at the
    player queue's first step): its worker freezes them (`freeze_voided`)."""
    route = Route(VOID_TASK, Queue.PLAYER, BANDS[Queue.PLAYER].low, instance=instance)
    app.publisher.send(route, [], {})


def _from_log(runtime: Runtime, source: str, sessions: list[str], landing: Landing, *,
              name: str = "") -> set[str]:
    """Restore `sessions` here from SQL: their snapshots and every update the store of
    `source` (which does not answer; `name`, else the name it recorded) logged of them;
    the sessions restored (none when `source` recorded no store, or its log names none of
    them).  The copies in that store are void from then on, and `source` is told so
    (unless the registry lost it: it freezes them as it joins again)."""
    tell = landing.tell if not name else None  # a store the registry lost: no instance
    name = name or runtime.hot_stores.name_of(source)
    if not name:
        return set()
    storenames.void_states(runtime.sessions, name, sessions)  # before: SQL outlives a crash
    named = statelog.replay_sessions(runtime.hot_stores.own, runtime.sessions, name,
                                     sessions, fence=landing.fence, log_to=landing.log_to)
    runtime.instances.arrived(sessions, source)  # never taken from that copy later
    if tell is not None:
        _tell(tell, source)
    if named:
        log.info("restored %d sessions from instance %s from SQL, its state log included",
                 len(named), source)
    return named


def send_updates(app: GameschedCelery, instance: str | None, batch: bytes, *,
                 step: int | None = None, handoff: float | None = None) -> None:
    """Send a state batch in wire form to `instance`'s queue (None: the shared player
    queue), at `step` (else the default one), handed off at `handoff` (else now)."""
    now = time.time()
    step = app.runtime.settings.default_priority if step is None else step
    app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, step, instance=instance), [batch],
                       {HANDOFF_HEADER: handoff or now, SENT_HEADER: now},
                       serializer="msgpack")


def _tell(tell: Callable[[str], None], instance: str) -> None:
    """Send `instance` its notice; a broker that does not take it is logged (the instance
    freezes its copies as it joins again): the sessions restored are not failed for it."""
    try:
        tell(instance)
    except (BrokerError, RedisError) as exc:
        log.warning("instance %s not told that copies in its hot store are void (%s); it "
                    "freezes them as it joins again", instance, exc)


def freeze_voided(runtime: Runtime, instance: str,
                  send_on: SendOn | None = None) -> int:
    """Freeze in this worker's hot store (`StateStore.freeze_stale`) the copies SQL says
    are out of date (sessions that moved off `instance` while the store did not answer),
    and clear them in SQL; returns how many were frozen.  A session the registry places on
    `instance` with nothing to take from elsewhere is kept: it came back here since
    (restored from SQL, or placed again after a restart), and its state here is live; so
    is one taken over here after this call read the store's clock.  With `send_on`, what
    this store logged of the sessions that run elsewhere goes to the instances they run
    on (again by a call tried again after a failure: what the log holds of the copies an
    earlier call froze): updates it applied to those copies after they were voided
    (batches sent to it before their game server learnt of the move) land on their state
    (the rest is stale there).  Waits for the store's other log writers first
    (`_flush_logs`).  Raises what SQL, the store or the broker raised: the copies stay
    void in SQL, and a call tried again sends on what the log holds of them."""
    name = runtime.hot_stores.own_store
    voided = storenames.voided(runtime.sessions, name)
    if not voided:
        return 0
    states, registry = runtime.hot_stores.own.states, runtime.instances
    since = states.clock()  # before the registry is read: a take after it is kept
    owners = dict(zip(voided, registry.owners(voided), strict=True))
    stale = [s for s, source in zip(voided, registry.came_from(voided), strict=True)
             if owners[s] != instance or source not in (None, instance)]
    frozen = states.freeze_stale(stale, since)
    if stale and send_on is not None:  # tried again, some may be frozen already
        _send_logged(runtime, name, {s: owners[s] for s in stale}, instance, send_on)
    storenames.unvoid(runtime.sessions, name, voided)
    log.warning("instance %s: froze %d out-of-date session states in its hot store %s "
                "(those sessions moved away while it did not answer)", instance, len(frozen),
                name)
    return len(frozen)


def _flush_logs(runtime: Runtime, store: str) -> None:
    """Have what the store named `store` applied to the copies just frozen written to its
    log, which is read next: this process's unwritten rows at once, and those of the
    store's other writers (every worker process of the instance) as their write-behind
    writes them (`durable.wait_for_flushes`: within about two `GAMESCHED_WRITE_BEHIND_MS`).
    Raises what failed (SQL or the store away): the freeze is tried again."""
    states = runtime.hot_stores.own.states
    frozen = states.clock()  # after the freeze: nothing lands on those copies since
    statelog.this_process().flush(runtime.sessions, store)
    durable.wait_for_flushes(states, frozen, runtime.settings.write_behind_ms / 1000)


def _send_logged(runtime: Runtime, store: str, owners: dict[str, str | None], instance: str,
                 send_on: SendOn) -> None:
    """Send what the store named `store` logged of the sessions of `owners` (merged: per
    field its newest value) to the instance each runs on, when another than `instance`.
    Raises what the broker raised (sending it all again is harmless: newest wins)."""
    targets: dict[str, set[bytes]] = {}
    for session, owner in owners.items():
        if owner not in (None, instance):
            targets.setdefault(owner, set()).add(session.encode())
    if not targets:
        return
    _flush_logs(runtime, store)
    merged = statelog.Merged()
    wanted = set().union(*targets.values())
    for batch_entries in statelog.entries(runtime.sessions, [store]):
        merged.add(batch_entries, only=wanted)
    for owner, ids in sorted(targets.items()):
        for batch in merged.batches(only=ids):
            send_on(owner, batch)


def _by_source(sessions: Sequence[str], sources: Sequence[str | None]) -> dict[str, list[str]]:
    grouped: dict[str, list[str]] = {}
    for session, source in zip(sessions, sources, strict=True):
        if source is not None:
            grouped.setdefault(source, []).append(session)
    return grouped


def _take(runtime: Runtime, source: str, sessions: list[str], landing: Landing) -> set[str]:
    """Take `sessions`' state from `source`'s hot store into this worker's; the sessions
    taken (none when the two share a store, or that store does not answer)."""
    stores = runtime.hot_stores
    if gone := stores.gone(source):  # the registry lost its store (it never came back)
        return _from_log(runtime, source, sessions, landing, name=gone)
    old = stores.of_instance(source)
    if old is stores.own:  # one store: the state is here, or lost with it
        runtime.instances.arrived(sessions, source)
        return set()
    try:
        handed = old.states.hand_over(sessions)
    except RedisError as exc:
        log.warning("%d sessions moved from instance %s: its hot store does not answer "
                    "(%s); they start from SQL, its log included", len(sessions), source, exc)
        return _from_log(runtime, source, sessions, landing)
    stores.own.states.take_over(sessions, handed, HANDED_EMIT, fence=landing.fence)
    if landing.log_to is not None:
        landing.log_to(handed)  # durable under this store's name, as applied batches are
    runtime.instances.arrived(sessions, source)
    log.info("took the state of %d sessions from instance %s", len(sessions), source)
    return set(sessions)
