"""Player role: session state updates and session operations (queue ``player``)."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from functools import partial
from typing import Any

from celery import shared_task
from kombu.exceptions import OperationalError as BrokerError
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.db import transaction
from app.errors import Fenced
from app.instances import identity
from app.players import sessions, statelog, wire
from app.players.statestore import Fence
from app.protocol import keys
from app.protocol.names import (
    ARRIVE_TASK,
    HANDOFF_HEADER,
    SENT_HEADER,
    SESSION_MOVES_TASK,
    SESSION_TASK,
    UPDATE_TASK,
    VOID_TASK,
)
from app.tasking import arrivals, gather
from app.tasking.base import GameTask, header

log = logging.getLogger(__name__)

VOID_RETRY_CAP_S = 30.0  # the longest wait between two tries of `freeze_voided`
VOID_RETRIES = 125  # about an hour of tries
# A state batch that waited in its queue at least this long (from its send to its start)
# looks for others waiting behind it to apply with it (`app.tasking.gather`).  The send
# time is the game server's clock: one running behind the worker's makes its batches
# look, one running ahead makes them not.
GATHER_AFTER_S = 0.005


@shared_task(base=GameTask, bind=True, name=UPDATE_TASK, tracks_latency=True)
def apply_updates(self: GameTask, updates: bytes | list[dict[str, Any]]) -> dict[str, int]:
    """Apply a batch of state updates in per-session sequence order and publish deltas.

    `updates` is a batch in wire form (``app.players.wire``, as the client sends it) or a list of
    ``{"session", "seq", "state"}`` mappings.  Idempotent: an update at or below a
    session's applied sequence is skipped as stale.  Malformed updates and unknown sessions
    are rejected one by one (logged at info); the rest of the batch still applies.  Not
    retried: a newer update supersedes a lost one.  On Redis, a batch that waited in the
    queue then takes the state batches waiting behind it (`app.tasking.gather`, up to
    ``state_batches_per_task`` in all) and applies each of them, one script call each, as
    if each were a task of its own.  On a server instance taken over while
    it was silent (fenced), the batch writes nothing: it is counted as refused and sent on
    to the instance its sessions run on now.  On an instance, a session its hot store
    lacks is taken from the store of the instance it moved from before its updates apply
    (`app.tasking.arrivals`), and the updates of one that runs on another instance now are
    sent on there.
    """
    if isinstance(updates, bytes | bytearray):
        counts = Counter(_apply_wire(self, bytes(updates)))
        gathered = _gather(self) if not counts["fenced"] else []
        for at, one in enumerate(gathered):
            try:
                counts.update(_apply_wire(self, one.batch, one.handoff, one.step))
            except ValueError as exc:  # not in wire form: this one fails alone
                log.info("gathered state batch %s refused: %s", one.task_id, exc)
                gathered[at] = replace(one, ok=False)
        return dict(counts)
    hot = self.runtime.hot
    result = sessions.apply_updates(hot, updates, publish=True, db_factory=self.runtime.sessions,
                                    size_later=True, log_to=statelog.this_process().add)
    return _counted(self, result)


@shared_task(base=GameTask, bind=True, name=SESSION_TASK)
def session_op(self: GameTask, op: str, session_id: str, spec: dict[str, Any]) -> bool:
    """Open, update or close a session in SQL; opening restores the last snapshot into hot
    state when it is newer.  Idempotent; not retried (the client may send it again).  An
    unknown `op` is refused (InvalidRequest naming ``op``) and changes nothing."""
    with transaction(self.runtime.sessions) as db:
        return sessions.session_op(db, self.runtime.hot, op, session_id, spec)


@shared_task(base=GameTask, bind=True, name=ARRIVE_TASK)
def arrive(self: GameTask, session_ids: list[str]) -> int:
    """Take the state of `session_ids`, moved to this worker's instance, from the hot
    stores of the instances they moved from (`app.tasking.arrivals`); returns how many
    were taken.  Idempotent: a session whose state a batch of it took first, or that moved
    on since, is left alone.  Not retried: the first batch of a session left behind takes
    its state.  A worker of no instance, or one fenced, takes nothing."""
    take = _arrive(self, _fence(), statelog.this_process().add)
    if take is None:
        return 0
    try:
        return len(take(set(session_ids)).taken)
    except Fenced:
        identity.fenced()
        return 0


@shared_task(base=GameTask, bind=True, name=VOID_TASK, max_retries=VOID_RETRIES)
def freeze_voided(self: GameTask) -> int:
    """Freeze the copies of sessions in this worker's hot store that SQL says are out of
    date (`app.tasking.arrivals.freeze_voided`): another instance restored them from SQL
    while this store did not answer; what this store logged of them goes on to the
    instances they run on.  Returns how many were frozen.  Idempotent.  Sent as
    the store does not answer, so retried while it (or SQL, or the broker it sends on
    to) does not: after 1 s, doubling to 30 s, for about an hour; past that the instance
    does it as it joins again.  A worker of no instance does nothing."""
    me = identity.current()
    if me is None:
        return 0
    try:
        return arrivals.freeze_voided(self.runtime, me.instance,
                                      partial(arrivals.send_updates, self.app))
    except (RedisError, SQLAlchemyError, BrokerError) as exc:
        delay = min(2.0 ** self.request.retries, VOID_RETRY_CAP_S)
        raise self.retry(exc=exc, countdown=delay) from exc


@shared_task(base=GameTask, bind=True, name=SESSION_MOVES_TASK)
def session_moves(self: GameTask, moves: list[list[str]]) -> int:
    """Record the sessions' new regions, ``[session_id, region]`` each, in one SQL
    transaction; returns how many named a known session.  Idempotent; not retried (a later
    move supersedes a lost one)."""
    with transaction(self.runtime.sessions) as db:
        return sessions.move_sessions(db, moves)


def _gather(task: GameTask) -> list[gather.Gathered]:
    """The state batches waiting behind the task's own in its queue, in the order a
    consumer would receive them, noted on the task (a failed one is replaced by a copy
    saying so).  Only a batch that waited in the queue looks (`GATHER_AFTER_S`); a broker
    that does not answer gathers nothing."""
    settings = task.runtime.settings
    most = settings.state_batches_per_task - 1
    queue = (task.request.delivery_info or {}).get("routing_key")
    if most <= 0 or not queue or not settings.uses_redis or settings.naive or not _waited(task):
        return []
    try:
        gathered = gather.take_waiting(task.runtime.broker, str(queue), most)
    except RedisError as exc:
        log.info("no state batch gathered: the broker did not answer (%s)", exc)
        return []
    task.note_gathered(gathered)
    return gathered


def _apply_wire(task: GameTask, batch: bytes, handoff: float | None = None,
                step: int | None = None) -> dict[str, int]:
    """Apply one batch in wire form on this worker's instance (if it is one): what is not
    applied here goes on to where its sessions run now; a fenced instance's batch goes on
    whole.  `handoff` and `step`: the batch's (None: the task's own)."""
    hot, log_to, fence = task.runtime.hot, statelog.this_process().add, _fence()
    try:
        result = sessions.apply_batch_restoring(
            hot, task.runtime.sessions, batch, publish=True, size_later=True, fence=fence,
            log_to=log_to, arrive=_arrive(task, fence, log_to))
    except Fenced:
        return _pass_on(task, batch, handoff, step)
    for instance, elsewhere in result.elsewhere.items():
        _send_on(task, elsewhere, instance, handoff, step)
    return _counted(task, result)


def _counted(task: GameTask, result: sessions.ApplyResult) -> dict[str, int]:
    """Count and log what a batch's updates came to; its full state sized after done."""
    hot = task.runtime.hot
    sessions.count_rejected(hot, len(result.rejected))
    if result.unsized:  # the bandwidth measure is not the players' wait
        task.after_done(lambda: sessions.size_full_state(hot, result))
    for index, field, reason in result.rejected:
        log.info("update %d rejected: %s: %s", index, field, reason)
    return {"applied": result.applied, "stale": result.stale, "rejected": len(result.rejected)}


def _waited(task: GameTask) -> bool:
    """Whether the task's message waited in the queue at least `GATHER_AFTER_S` after it
    was sent: one taken as it came (the workers keep up) has nothing behind it worth a
    round trip.  Without a send time, it looks."""
    sent = header(task.request, SENT_HEADER)
    return sent is None or time.time() - float(sent) >= GATHER_AFTER_S


def _fence() -> Fence | None:
    """This worker's instance and fencing token, when it is an instance: the state script
    checks it on the hot store it writes, where the registry keeps a copy of the token
    (`app.instances.tokens`)."""
    me = identity.current()
    if me is None:
        return None
    return Fence(keys.INSTANCES_TOKEN, me.instance, me.token)


def _arrive(task: GameTask, fence: Fence | None,
            log_to: Callable[[bytes], None]) -> sessions.Arrive | None:
    """What this worker does with sessions its hot store lacks, when it is an instance."""
    me = identity.current()
    if me is None:
        return None
    landing = arrivals.Landing(fence, log_to, partial(arrivals.send_void_notice, task.app))
    return partial(arrivals.arrive, task.runtime, me.instance, landing=landing)


def _send_on(task: GameTask, batch: bytes, instance: str | None,
             handoff: float | None = None, step: int | None = None) -> None:
    """Send a batch on to `instance`'s queue (None: the shared player queue), at its step
    and with its first hand-off time (`step` and `handoff`, else the task's)."""
    if step is None:
        priority = (task.request.delivery_info or {}).get("priority")
        step = priority if isinstance(priority, int) else None
    arrivals.send_updates(task.app, instance, batch, step=step,
                          handoff=handoff or header(task.request, HANDOFF_HEADER))
    if instance is not None:
        log.info("a state batch of sessions that run on instance %s now went there",
                 instance)


def _pass_on(task: GameTask, batch: bytes, handoff: float | None,
             step: int | None) -> dict[str, int]:
    """A fenced instance's batch: counted as refused, and sent to the instance its first
    session runs on now (the shared player queue when that is still this one)."""
    me = identity.current()
    instance = me.instance if me is not None else "?"
    registry = task.runtime.instances
    registry.refused(instance)
    entries = wire.unpack_batch(batch)
    owner = registry.owner(entries[0][0].decode()) if entries else None
    target = owner if owner != instance else None
    _send_on(task, batch, target, handoff, step)
    log.warning("instance %s is fenced: a state batch it took went to %s", instance,
                f"instance {target}" if target else "the shared player queue")
    identity.fenced()  # this worker stops taking work, and starts again
    return {"applied": 0, "stale": 0, "rejected": 0, "fenced": 1}
