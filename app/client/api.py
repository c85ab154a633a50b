"""The client API a game server imports: sessions, state updates, physics, AI, purchases.

Every call validates its input (InvalidRequest names the field; nothing is enqueued),
classifies the work, computes its priority from the session's factors and routes it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from typing import Any
from uuid import uuid4

from celery.result import AsyncResult
from kombu.exceptions import OperationalError as BrokerError

from app.ai.tiers import Tier
from app.client.attention import Attention, ControlledDetail, ControlledSlowed, ControlledTier
from app.client.coalesce import Coalescer
from app.client.frames import FrameRouter
from app.client.inflight import InflightTable, Sent, pack_args
from app.client.lanes import Lanes
from app.client.npcs import AI_TICK_HZ, AiLoop, ai_route
from app.client.outbox import Outbox
from app.client.registry import ACTIVE_HZ, SessionRegistry
from app.client.requests import (
    BACKGROUND_TASKS,
    AiCall,
    BackgroundJob,
    CloseSession,
    FrameStep,
    OpenSession,
    PhysicsStep,
    SessionChange,
    body_change,
    check_decision,
    check_decisions,
    check_update,
    session_move,
)
from app.control.controller import read_decision
from app.errors import InvalidRequest
from app.instances.placement import Move, weight
from app.ledger.handle import TransactionHandle
from app.ledger.policy import APPLY_BATCH_MAX
from app.ledger.submit import submit_purchase, submit_reward
from app.observe.metrics import metrics, serve, zero_enqueued
from app.periodic import Periodic
from app.physics.detail import DetailRates, frame_steps
from app.players import durable, sessions, wire
from app.players.delta import POSITION_FIELD, quantise
from app.priority import Factors, Route, route
from app.protocol.names import (
    AI_BATCH_TASK,
    AI_TASK,
    APPLY_BATCH_TASK,
    CLAIM_HEADER,
    HANDOFF_HEADER,
    PHYSICS_BODIES_TASK,
    PHYSICS_FRAME_TASK,
    PHYSICS_REGION_TASK,
    SENT_HEADER,
    SESSION_MOVES_TASK,
    SESSION_TASK,
    UPDATE_TASK,
)
from app.protocol.queues import Queue
from app.protocol.vocab import SessionOp
from app.settings import Settings, load_settings
from app.tasking.arrivals import send_arrivals
from app.tasking.factory import GameschedCelery, create_app
from app.tasking.publish import connect
from app.tasking.transport import published_depth
from app.validation import check_position, parse

log = logging.getLogger(__name__)
MOVES_MAX = 1000  # session moves per task
FOLLOW_S = 0.1  # how often a client looks for its sessions moving to other instances
PLACE_CHUNK = 200  # sessions placed again per registry call
# Sessions restored together: each chunk costs a handful of round trips (Redis and SQL),
# each a wait for the CPU on a machine busy with a fleet starting again; chunks of 1,000
# restored in a third of the time chunks of 200 took (docs/measurements.md).
RESTORE_CHUNK = 1000
# After the registry lost the sessions (the fleet restarted), a session waits this long for
# the instance it ran on to come back before it is placed on another: its state and the
# log of its last updates are in that instance's hot store (instances apart), and its
# updates meanwhile queue on that instance.
RETURN_GRACE_S = 30.0


class GameClient:
    """What a game server calls.  One per process; thread-safe."""

    def __init__(self, app: GameschedCelery, settings: Settings | None = None) -> None:
        self.app = app
        self.settings: Settings = settings or app.runtime.settings
        self.sessions = SessionRegistry()
        self.tasks_sent = 0
        # Called with each state batch's task id and entries once it is sent (from the
        # coalescing thread): a load generator times every update by it.
        self.batch_listener: Callable[[str, list[wire.Entry]], None] | None = None
        # Called with each AI batch's task id and decisions (``[npc_id, position, players,
        # tier]``) once `ai_tick` sent it: a load generator measures how often each NPC is
        # decided, and at which tier.
        self.ai_listener: Callable[[str, list[list[Any]]], None] | None = None
        self._lock = threading.Lock()
        self._inflight = InflightTable()
        tick_s = self.settings.tick_ms / 1000.0
        floor_s = max(tick_s, self.settings.batch_window_min_ms / 1000.0)
        self.instances = app.runtime.instances
        self._epoch = 0  # the placement epoch this client's sessions' instances are from
        self._generation = ""  # the registry's, when this client placed its sessions
        self._unplaced = False  # sessions the registry lost are still to be placed again
        self._lost_at = 0.0  # monotonic time this client found them lost
        self._to_restore: list[str] = []  # placed again, their state not yet restored
        self._to_fetch: list[Move] = []  # placed away, their state not yet fetched
        self.return_grace_s = RETURN_GRACE_S
        self._follower = Periodic(self.follow_moves, FOLLOW_S, "gamesched-follow-moves")
        self._closing = threading.Event()
        self._updates = Lanes(lambda instance: Coalescer(
            partial(self._send_updates, instance), tick_s, self.settings.batch_max_updates,
            max_window_s=self.settings.batch_window_max_ms / 1000.0, min_window_s=floor_s,
            own_thread=False), floor_s, tick_s)
        self._moves = Lanes(lambda instance: Coalescer(
            partial(self._send_moves, instance), tick_s, MOVES_MAX, min_window_s=floor_s,
            own_thread=False), floor_s, tick_s)
        self.move_tasks_sent = 0  # the tasks `move_session`'s moves left in
        self._applies = Coalescer(self._send_applies,
                                  self.settings.transaction_tick_ms / 1000.0, APPLY_BATCH_MAX)
        self._apply_step = route(APPLY_BATCH_TASK).priority  # no session factors: fixed
        # The game loop's frames, body changes and AI batches, sent by a thread of its own
        self._outbox = Outbox()
        physics = app.runtime.physics
        self._frames = FrameRouter(physics.owners, physics.units,
                                   self.settings.physics_map_ttl_ms / 1000.0)
        self._detail = DetailRates(self.settings.physics_frame_hz, self.settings.physics_near_hz,
                                   self.settings.physics_far_hz, self.settings.physics_near_hops)
        self._attention = Attention(physics.players, self.sessions.players_by_region)
        self._lowered = ControlledDetail(self._physics_detail)
        self._slowed = ControlledSlowed(physics.slowed.read)
        cap = ControlledTier(self._ai_tier).value if self.settings.ai_throttle else _full
        self._ai_loop = AiLoop(cap, self.settings.world_size)

    @classmethod
    def from_env(cls) -> GameClient:
        """A client of the fleet the ``GAMESCHED_*`` variables name (the embedded default
        when none is set), read now; raises ConfigError naming a bad variable."""
        return cls(create_app(load_settings()))

    def serve_metrics(self, port: int) -> None:
        """Serve this game server's Prometheus metrics on `port` (``/metrics``, from a daemon
        thread): `gamesched_tasks_enqueued_total` per queue, each queue's series at zero
        from this call.  A game server that serves Prometheus's default registry already
        has them there without this call."""
        zero_enqueued(q.value for q in Queue)
        serve(port)

    def connect(self) -> None:
        """Connect to the broker now and load what the first send would load (a producer
        and its pooled connection, the hot store's connection, and the result backend,
        which Celery keeps per thread): call it at boot from the game loop's thread, so
        that its first tick does not pay them (a first AI tick sent from the loop: 14.6
        ms cold, 3.5 after it, 0.5 warm).  The client's own sending threads load their
        backend on their first send, off the loop.  Raises kombu's OperationalError when
        the broker cannot be reached."""
        connect(self.app)
        read_decision(self.app.runtime.fleet)  # the fleet store's connection, which ticks read

    def close(self) -> None:
        """Send the updates and transaction messages still buffered and stop the coalescing
        threads (and the follower's: sessions it placed again and has not restored yet are
        left to their workers)."""
        self._closing.set()  # a round of the follower under way stops at its next chunk
        self._follower.stop()
        self._outbox.close()
        self._updates.close()
        self._moves.close()
        self._applies.close()

    @property
    def update_window_s(self) -> float:
        """How long a state batch now waits for more updates before it leaves: the
        window's floor while the player queue keeps up, longer while batches wait in it."""
        return self._updates.window_s

    def flush(self) -> int:
        """Send the buffered state updates, session moves and transaction messages now, and
        wait for the physics frames, body changes and AI batches handed over before it to
        be sent; returns how many updates, moves and messages went."""
        self._outbox.drain()
        return self._updates.flush() + self._moves.flush() + self._applies.flush()

    @property
    def send_failures(self) -> int:
        """Physics frames, body changes and AI batches the broker did not take (each logged;
        those calls never raise for the broker)."""
        return self._outbox.failed

    @property
    def first_send_failure(self) -> str:
        """The first of `send_failures`, as ``"Type: message"`` ("" while there is none)."""
        return self._outbox.first_error

    # sessions ---------------------------------------------------------------------------

    def open_session(self, session_id: str, **spec: Any) -> AsyncResult:
        """Open a session on the server instance the registry places it on (`place`): it
        accepts updates at once, and all its work goes to that instance; the worker records
        it in SQL and restores its last snapshot.  Idempotent: a session open already stays
        on its instance.  Raises ServerFull, opening nothing, when every live instance
        holds as many sessions as it takes."""
        req = parse(OpenSession, {"session_id": session_id, **spec})
        instance = self.place(session_id, req.players)
        self._ensure_state(session_id, instance)
        self.sessions.open(session_id, req.session_type, req.players, req.region, instance)
        return self._send_open(session_id, req.model_dump(exclude={"session_id"}), instance)

    def _ensure_state(self, session_id: str, instance: str | None) -> None:
        """Create `session_id`'s state empty in `instance`'s hot store (unless there), so that
        its updates are accepted at once."""
        sessions.ensure_state(self.app.runtime.hot_stores.of_instance(instance), session_id)

    def _send_open(self, session_id: str, spec: dict[str, Any], instance: str | None, *,
                   later: bool = False) -> AsyncResult:
        """Send the open of `session_id` (`spec`: type, players, region) to `instance`
        (`later`: from the outbox's thread)."""
        body = spec | {"instance_id": instance or self.settings.instance_id}
        return self._send(replace(self._session_route(session_id), instance=instance),
                          [SessionOp.OPEN.value, session_id, body], later=later)

    def adopt_session(self, session_id: str, **spec: Any) -> None:
        """Take over a session already open on the fleet (opened by another process of this
        game server, or before this one restarted): its updates are accepted and
        prioritised here from now on, and go to the instance it runs on.  Sends nothing;
        the next update's `seq` only has to be positive."""
        req = parse(OpenSession, {"session_id": session_id, **spec})
        instance = self.place(session_id, req.players)
        self.sessions.open(session_id, req.session_type, req.players, req.region, instance)

    def release_sessions(self, session_ids: Sequence[str]) -> int:
        """Hand sessions over to another game server, which adopts them (`adopt_session`):
        this client stops serving them without closing them.  What it buffered is sent
        first; from then on it refuses their updates, as a closed session's, and no longer
        follows their moves or places them again after the registry lost them (their new
        game server does).  Returns how many of them it held."""
        self.flush()
        return self.sessions.release(session_ids)

    def place(self, session_id: str, players: int) -> str | None:
        """The server instance `session_id` runs on, placed now if it has none yet (by
        affinity and load, `app.instances.registry`; its weight follows `players`).  None
        while no instance has registered: the fleet's shared player queue serves it."""
        instance = self.instances.place(session_id, weight(players))
        if instance is not None:
            self._follower.start()
        return instance

    def follow_moves(self) -> int:
        """Learn which of this client's sessions moved to another instance (a drain, a
        takeover of a silent instance, a rebalance), and send each one's work there from
        now on (what was buffered for the old instance goes there at once).  An update
        still waiting on the old instance may be applied after newer ones sent to the new:
        the state store keeps each field's newest value (`app.players.statestore`), so none
        is lost.  When the registry lost this client's sessions (the fleet's Redis
        restarted empty), they are placed again, each most likely on the instance it ran
        on, and their state is put back into hot state from SQL where it was lost
        (`last_applied`).  Runs every `FOLLOW_S` in a thread of the client once a session
        is on an instance; returns how many sessions moved."""
        epoch = self.instances.epoch()
        lost = self._registry_lost()
        if epoch == self._epoch and not lost:
            return 0
        ids = self.sessions.ids()
        owners = self.instances.owners(ids)
        if lost:
            owners = self._place_lost(ids, owners)
        moved = [old for s, owner in zip(ids, owners, strict=True)
                 if owner is not None and (old := self.sessions.move(s, owner)) is not None]
        for old in set(moved):
            self._updates.flush_lane(old)
            self._moves.flush_lane(old)
        self._epoch = epoch
        return len(moved)

    def _registry_lost(self) -> bool:
        """Whether the registry lost this client's sessions: it started again empty (a new
        generation) since this client placed them, or some are still to be placed again."""
        generation = self.instances.generation()
        if not self._generation:
            self._generation = generation
        elif generation and generation != self._generation:
            self._generation, self._unplaced = generation, True
            self._lost_at = time.monotonic()
        return self._unplaced

    def _place_lost(self, ids: list[str], owners: list[str | None]) -> list[str | None]:
        """Place again the sessions of `ids` the registry has no owner for, each on the
        instance it ran on when that is back (within `return_grace_s`, a session waits for
        it), `PLACE_CHUNK` to a registry call, then restore their state from SQL; their
        owners now (None: still unplaced).  Stops after a chunk in which some session found
        no instance (none live yet, or every one full): the next round tries again.  So does a round
        that fails part way (the registry, a hot store or SQL not answering): the sessions
        it placed keep their restore and fetch due."""
        placed, again = list(owners), 0
        due, still = self._lost_due(ids, placed)
        for start in range(0, len(due), PLACE_CHUNK):
            chunk = due[start:start + PLACE_CHUNK]
            targets = self.instances.place_many([(ids[i], w, before) for i, w, before in chunk])
            for (index, _w, before), target in zip(chunk, targets, strict=True):
                placed[index] = target
                if target is None:
                    continue
                again += 1
                self._to_restore.append(ids[index])
                if before is not None and target != before:
                    self._to_fetch.append(Move(ids[index], before, target))
            if None in targets:  # no instance takes sessions now: next round
                still = True
                break
        # Every session placed first, then their state restored: a worker restores a
        # session's state on its first update anyway, and a game server starved of CPU
        # took about a second a chunk, placing and restoring, while the rest waited
        # unplaced (docs/measurements.md).  Restoring one chunk a round while others still
        # waited for their instance placed them sooner but restored fewer by the load's
        # end: tried and left out (docs/measurements.md).
        self._restore_placed()
        self._fetch_state()
        if again:
            log.info("placed %d sessions again (the registry had lost them)", again)
        self._unplaced = still
        return placed

    def _lost_due(self, ids: list[str], owners: list[str | None]
                  ) -> tuple[list[tuple[int, float, str | None]], bool]:
        """The sessions of `ids` without an owner to place again now: index, weight and the
        instance each ran on; and whether any waits for its instance to be back (within
        the grace).  A session closed meanwhile is left out."""
        waiting = self._still_waiting()
        due, still = [], False
        for index, session_id in enumerate(ids):
            if owners[index] is not None:
                continue
            before = self.sessions.instance_if_open(session_id)
            if before in waiting:  # its state is on an instance not back yet
                still = True
                continue
            try:
                players = self.sessions.factors(session_id).players
            except InvalidRequest:  # closed meanwhile
                continue
            due.append((index, weight(players), before))
        return due, still

    def _restore_placed(self) -> None:
        """Put back from SQL the state of the sessions placed again and not yet restored
        (`last_applied`), `RESTORE_CHUNK` at a time, until the client closes; open again
        those SQL has no record of (`_open_again`)."""
        while self._to_restore and not self._closing.is_set():
            chunk = self._to_restore[:RESTORE_CHUNK]
            known = self.last_applied(chunk)
            self._open_again([s for s in chunk if s not in known])
            del self._to_restore[:len(chunk)]

    def _open_again(self, session_ids: list[str]) -> None:
        """Send again, as it was sent, to the instance it is placed on now, the open of each
        session of `session_ids` SQL has no record of: the fleet lost it with everything
        else (its message still in the broker when the fleet was killed), and without it
        every update of the session would be refused as of an unknown session.  A session
        SQL knows, closed included, is left alone."""
        again = durable.unrecorded(self.app.runtime.sessions, session_ids) if session_ids else []
        opened = [(session_id, owner, info) for session_id, owner in
                  zip(again, self.instances.owners(again), strict=True)
                  if (info := self.sessions.opened(session_id)) is not None]  # not closed
        placed = {session_id: owner for session_id, owner, _ in opened}
        stores = self.app.runtime.hot_stores
        for store, ids in stores.by_store(placed).items():  # one round trip per store
            sessions.ensure_states(store, ids)
        for session_id, owner, info in opened:
            self._send_open(session_id, {"session_type": info.session_type,
                                         "players": info.players, "region": info.region},
                            owner, later=True)  # placing the rest waits on no publish
        if again:
            log.warning("opened %d sessions again: the fleet lost their open", len(again))

    def _fetch_state(self) -> None:
        """Tell the instances that sessions placed away from the instance they ran on went
        to, to take their state from that one's store now (`send_arrivals`), as after a
        move: whatever that store holds of them, its replayed log included, is newer than
        their snapshots.  A broker that does not take it is logged (those sessions then
        carry on from their snapshots there)."""
        away, self._to_fetch = self._to_fetch, []
        if not away:
            return
        try:
            send_arrivals(self.app, away)
        except BrokerError as exc:
            log.warning("%d sessions placed away from their instance: their state was not "
                        "fetched at once (%s)", len(away), exc)

    def _still_waiting(self) -> set[str]:
        """The instances not back yet that the sessions of this client ran on, within the
        grace after the registry lost them (none after it)."""
        if time.monotonic() - self._lost_at >= self.return_grace_s:
            return set()
        live = {state.name for state in self.instances.instances() if state.live}
        return self.sessions.instance_names() - live

    def last_applied(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The newest sequence number the fleet applied for each session, for a game server
        that restarted, or whose fleet did, to carry on after: from the hot state of the
        instance it runs on, or from the session's SQL snapshot when hot state was lost
        with its Redis (and put back into that hot state).  Sessions the fleet does not
        know are left out.  Sends nothing."""
        out: dict[str, int] = {}
        for store, ids in self.app.runtime.hot_stores.where_they_run(session_ids).items():
            out.update(durable.last_applied(store, self.app.runtime.sessions, ids))
        return out

    def states(self, session_ids: Sequence[str]) -> dict[str, sessions.HotState]:
        """The hot state of each session (its sequence number and fields), read from the
        store of the instance it runs on; sessions hot state does not hold are left out."""
        out: dict[str, sessions.HotState] = {}
        for store, ids in self.app.runtime.hot_stores.where_they_run(session_ids).items():
            out.update(sessions.read_states(store, ids))
        return out

    def last_durable(self, session_ids: Sequence[str]) -> dict[str, int]:
        """The sequence number up to which each session's state is durable in SQL (the
        player workers log the batches they applied every `GAMESCHED_WRITE_BEHIND_MS`):
        those updates survive the loss of every worker and every Redis.  A game server
        keeps what it sent after it, to send again after such a loss.  Sessions SQL does
        not know are left out.  Reads SQL's whole state log (a snapshot period of batches):
        ask now and then, not per update."""
        return durable.last_durable(self.app.runtime.sessions, session_ids)

    def instance_of(self, session_id: str) -> str | None:
        """The server instance an open session runs on (None: the shared player queue)."""
        return self.sessions.instance(session_id)

    def _session_route(self, session_id: str) -> Route:
        """A session operation's route: its instance's player queue, at its step."""
        where = route(SESSION_TASK, self.sessions.factors(session_id), weights=self._weights)
        return replace(where, instance=self.sessions.instance(session_id))

    def update_session(self, session_id: str, **changes: Any) -> AsyncResult:
        """Change a session's type, players or region; its next work gets the new priority."""
        req = parse(SessionChange, {"session_id": session_id, **changes})
        body = req.model_dump(exclude={"session_id"}, exclude_none=True)
        info = self.sessions.change(session_id, **body)
        if req.players is not None and info.instance is not None:
            self.place(session_id, req.players)  # its instance carries its new weight
        return self._send(self._session_route(session_id),
                          [SessionOp.UPDATE.value, session_id, body])

    def move_session(self, session_id: str, region: str) -> None:
        """A session's players are now in `region`: counted there for physics attention at
        once, and recorded in SQL with the other moves of the batch window, one task for
        them all (a crowd crossing a border moves hundreds of sessions a second; a task
        each made the game server fall behind).  Bad input raises InvalidRequest naming
        the field and nothing changes.  The moves task is not ordered with the session's
        other operations: a move recorded before the session's opening is left out (the
        client's table, which prices its work and counts its players, has it at once)."""
        session_id, region = session_move(session_id, region)
        info = self.sessions.change(session_id, region=region)
        step = route(SESSION_TASK, self.sessions.factors(session_id), weights=self._weights)
        self._moves.add(info.instance, step.priority, [session_id, region])

    def _send_moves(self, instance: str | None, step: int, moves: list[Any],
                    oldest: float) -> None:
        self._publish(Route(SESSION_MOVES_TASK, Queue.PLAYER, step, instance=instance),
                      [moves], oldest)
        with self._lock:
            self.move_tasks_sent += 1

    def close_session(self, session_id: str) -> AsyncResult:
        """Close a session; later updates to it are refused.  Idempotent on the worker."""
        parse(CloseSession, {"session_id": session_id})
        where = self._session_route(session_id)
        self.sessions.close(session_id)
        sent = self._send(where, [SessionOp.CLOSE.value, session_id, {}])
        if where.instance is not None:
            self.instances.release(session_id)
        return sent

    def priority_of_update(self, session_id: str) -> int:
        """The step a state update of this session would be sent at now."""
        return self._update_route(self.sessions.factors(session_id)).priority

    # state updates ----------------------------------------------------------------------

    def submit_update(self, session_id: str, seq: int, state: dict[str, Any],
                      position: tuple[float, float] | None = None) -> None:
        """Accept one state update; it leaves with this tick's batch for its priority step
        and is applied in `seq` order per session."""
        fields = check_update(seq, state)
        if position is not None:
            fields[POSITION_FIELD] = quantise(self._position("position", position))
        step, instance = self.sessions.accept(session_id, seq, self._update_step)
        self._updates.add(instance, step, wire.entry(session_id, seq, fields))

    def _update_step(self, factors: Factors) -> int:
        return self._update_route(factors).priority

    def _update_route(self, factors: Factors) -> Route:
        critical = factors.activity_hz >= ACTIVE_HZ
        return route(UPDATE_TASK, factors, critical=critical, weights=self._weights)

    def _send_updates(self, instance: str | None, step: int, batch: list[wire.Entry],
                      oldest: float) -> None:
        # A batch is never a dependency (no handle leaves the client), so it is never raised
        # and needs no claim: it goes out once, without joining the in-flight table.
        # The batch travels in its wire form, msgpack: the worker hands it to the state
        # store as it arrives.
        where = Route(UPDATE_TASK, Queue.PLAYER, step, instance=instance)
        result = self._publish(where, [wire.pack_batch(batch)], oldest, serializer="msgpack",
                               claim=False)
        depth = published_depth()  # the batches waiting at its step, this one included
        self._updates.waiting(instance, None if depth is None else depth - 1)
        listener = self.batch_listener
        if listener is not None:
            listener(str(result.id), batch)

    # physics, AI, background ----------------------------------------------------------

    def submit_physics(self, region: str, frame: int, dt_ms: float = 16.0, bodies: int = 0,
                       depends_on: Sequence[AsyncResult] = ()) -> AsyncResult:
        """Send one frame of one region to the physics unit that owns it; an occupied
        region's step is critical-path."""
        req = parse(PhysicsStep, {"region": region, "frame": frame, "dt_ms": dt_ms,
                                  "bodies": bodies})
        unit, epoch = self._owner(req.region)
        where = replace(self._physics_route(PHYSICS_REGION_TASK, [req.region]), unit=unit)
        return self._send(where, [req.region, req.frame, float(req.dt_ms), req.bodies, unit,
                                  epoch], depends_on=depends_on)

    def change_bodies(self, region: str, spawn: Sequence[Mapping[str, Any]] = (),
                      remove: Sequence[str] = (),
                      depends_on: Sequence[AsyncResult] = ()) -> AsyncResult:
        """Remove bodies of `region` by id, then spawn balls in it, each ``{"id", "x", "y",
        "vx", "vy", "radius", "mass"}`` (a position in world coordinates inside the region,
        or inside its arena for a name off the quadtree; velocity, radius up to 24 and mass
        optional), on the physics unit that owns it, at the region's physics step.  Bad
        input raises InvalidRequest naming the field (``spawn.2.x``) and nothing is sent.
        Idempotent: an id already in the region is not spawned again.  Sent by the client's
        own thread, after the frames handed over before it (`submit_physics_frame`)."""
        name, spawns, removals = body_change(region, spawn, remove, self.settings.world_size)
        unit, epoch = self._owner(name)
        where = replace(self._physics_route(PHYSICS_BODIES_TASK, [name]), unit=unit)
        return self._send(where, [name, spawns, removals, unit, epoch],
                          depends_on=depends_on, later=True)

    def _owner(self, region: str) -> tuple[int, int]:
        """The unit owning `region` and the owner map's epoch; on an epoch new to this
        client, the other units get an empty frame so that they learn of it."""
        epoch, by_unit = self._frames.split({self._frames.first_region(region): 0})
        owner = next(u for u, regions in by_unit.items() if regions)
        for other in (u for u, regions in by_unit.items() if not regions):
            self._send_frame(other, epoch, {}, frame=0, dt_ms=16.0)
        return owner, epoch

    def submit_physics_frame(self, frame: int, regions: Mapping[str, int], dt_ms: float = 16.0,
                             depends_on: Sequence[AsyncResult] = ()) -> list[AsyncResult]:
        """Send one frame of the world's regions (region -> bodies; `dt_ms`: the time
        between frames): the regions due in it by level of detail, one task per physics
        unit owning any of them, at the step of its most urgent region (critical-path when
        any has players); returns the tasks (none when nothing is due).

        Regions with players (of every game server: `app.client.attention`) step every
        frame, those within `GAMESCHED_PHYSICS_NEAR_HOPS` of them at
        `GAMESCHED_PHYSICS_NEAR_HZ`, the rest at `GAMESCHED_PHYSICS_FAR_HZ`, each advancing
        by the time since its last step (at most 100 ms: a rarely stepped region runs
        slower than real time).  Frames are counted at `GAMESCHED_PHYSICS_FRAME_HZ`.  Under
        load the controller lowers the rates of regions without players
        (`physics_detail` in its decision, read about once a second).

        The tasks are sent by a thread of the client's, in the order handed over: the call
        returns their handles at once, never waits on the broker and never raises for it
        (`send_failures` counts those the broker did not take; `flush` waits for them)."""
        if not isinstance(regions, Mapping):
            raise InvalidRequest("regions", regions, "expected a mapping of region to bodies")
        req = parse(FrameStep, {"frame": frame, "dt_ms": dt_ms, "regions": dict(regions)})
        steps = frame_steps(req.regions, self._attention.players(), frame=req.frame,
                            dt_ms=float(req.dt_ms), rates=self._detail,
                            lowered=self._lowered.factor(), slowed=self._slowed_names(req.regions))
        epoch, by_unit = self._frames.split(self._frames.resolve(steps))
        return [self._send_frame(unit, epoch, unit_steps, frame=req.frame,
                                 dt_ms=float(req.dt_ms), depends_on=depends_on)
                for unit, unit_steps in sorted(by_unit.items())]

    def _send_frame(self, unit: int, epoch: int, steps: Mapping[str, tuple[int, float]], *,
                    frame: int, dt_ms: float,
                    depends_on: Sequence[AsyncResult] = ()) -> AsyncResult:
        """Send unit `unit` its regions of a frame, ``[region, bodies, dt_ms]`` each."""
        where = replace(self._physics_route(PHYSICS_FRAME_TASK, list(steps)), unit=unit)
        args = [frame, dt_ms, [[r, b, dt] for r, (b, dt) in steps.items()], unit, epoch]
        return self._send(where, args, depends_on=depends_on, later=True)

    def _slowed_names(self, regions: Iterable[str]) -> dict[str, float]:
        """The factor on the step rate of each of `regions` the director slowed: a name
        whose every region of the owner map is slowed, at the least slowed one's factor."""
        factors = self._slowed.value()
        if not factors:
            return {}
        out = {}
        for name in regions:
            factor = max(factors.get(leaf, 1.0) for leaf in self._frames.leaves(name))
            if factor < 1.0:
                out[name] = factor
        return out

    def _physics_detail(self) -> float | None:
        decision = read_decision(self.app.runtime.fleet)
        return decision.physics_detail if decision is not None else None

    def _ai_tier(self) -> str | None:
        decision = read_decision(self.app.runtime.fleet)
        return decision.ai_tier if decision is not None else None

    def _physics_route(self, task: str, regions: Sequence[str]) -> Route:
        """Physics goes at the step of its most crowded region, critical-path when that
        region has players (sessions name regions as the game server knows them: a region
        split since counts the players of the region it was cut from)."""
        players = max((self.sessions.region_players(r[:k]) for r in regions
                       for k in range(len(r), 0, -1)), default=0)
        factors = Factors(players=players, activity_hz=10.0 if players else 0.0)
        return route(task, factors, critical=players > 0, weights=self._weights)

    def submit_ai(self, npc_id: str, position: tuple[float, float],
                  players: list[tuple[float, float]] | None = None,
                  depends_on: Sequence[AsyncResult] = (), *,
                  tier: str | None = None) -> AsyncResult:
        """Send one NPC decision to the AI fleet, at `tier` (``full``, ``reduced`` or
        ``minimal``; without it, the players the NPC sees set it)."""
        args = check_decision(npc_id, position, players, self.settings.world_size, tier)
        return self._send(ai_route(AI_TASK, [args], self._weights), args,
                          depends_on=depends_on)

    def submit_ai_batch(self, decisions: Sequence[AiCall],
                        depends_on: Sequence[AsyncResult] = ()) -> AsyncResult:
        """Send the decisions of one AI tick, ``(npc_id, position, players)`` each (and a
        tier, as `submit_ai`), as one task, at the step of the NPC that sees the most
        players.  A bad decision raises InvalidRequest naming it
        (``decisions.3.position``); nothing is sent."""
        return self._send_ai(check_decisions(decisions, self.settings.world_size), depends_on)

    def ai_tick(self, tick: int, npcs: Sequence[AiCall], *,
                tick_hz: float = AI_TICK_HZ) -> list[AsyncResult]:
        """One tick of the game server's AI loop (`tick` counted from 0 at `tick_hz`), given
        all its NPCs, ``(npc_id, position, players)`` each: those due at their tier are
        sent, with their tiers, as one batch (more past 4,096); returns the tasks, none
        when no NPC is due.  The players an NPC sees set its tier (one within 600 units
        keeps it full, within 1,500 reduced, else minimal), capped by the controller's
        (`ai_tier`, read about once a second); full NPCs are decided 10 times a second,
        reduced 4 (5 at 10 Hz), minimal every 0.8 s (`app.ai.tiers`).  A bad NPC raises
        InvalidRequest naming it (``npcs.3.position``); nothing is sent.  Sent as
        `submit_physics_frame` sends: the call never waits on the broker."""
        sent = []
        for batch in self._ai_loop.due(tick, npcs, tick_hz):
            sent.append(handle := self._send_ai(batch, later=True))
            if (listener := self.ai_listener) is not None:
                listener(str(handle.id), batch)
        return sent

    @property
    def ai_decided(self) -> dict[str, int]:
        """The decisions `ai_tick` sent, by tier."""
        return {tier.value: n for tier, n in self._ai_loop.decided.items()}

    def _send_ai(self, batch: list[list[Any]], depends_on: Sequence[AsyncResult] = (), *,
                 later: bool = False) -> AsyncResult:
        # msgpack: a tenth of JSON's time for a batch of positions, half its bytes
        # (docs/measurements.md)
        return self._send(ai_route(AI_BATCH_TASK, batch, self._weights), [batch],
                          depends_on=depends_on, serializer="msgpack", later=later)

    def submit_background(self, kind: str, payload: list[Any],
                          depends_on: Sequence[AsyncResult] = ()) -> AsyncResult:
        """Send background work (``snapshot`` of session ids, or ``analytics`` events)."""
        req = parse(BackgroundJob, {"kind": kind, "payload": payload})
        try:
            packed = pack_args([req.payload])
        except (TypeError, ValueError, OverflowError) as exc:
            raise InvalidRequest("payload", payload, "expected plain data: strings, numbers, "
                                 f"booleans, None, lists and maps ({exc})") from None
        # msgpack: a large batch of events takes a fraction of JSON's time to send
        # (docs/measurements.md)
        return self._send(route(BACKGROUND_TASKS[req.kind]), [req.payload],
                          depends_on=depends_on, serializer="msgpack", packed=packed)

    # transactions ---------------------------------------------------------------------

    def purchase(self, player_id: str, sku: str, price: int, currency: str,
                 idempotency_key: str) -> TransactionHandle:
        """Charge a known player `price` of `currency` for `sku`, exactly once per key.

        The intent row is committed before its message is sent: the intents committed
        during one tick leave as one ``apply_batch`` message, which a worker settles in one
        SQL transaction.  The returned handle reads the status from SQL.  The same key with
        the same parameters returns the same transaction; with other parameters it raises
        InvalidRequest and changes nothing.
        """
        return submit_purchase(
            self.app.runtime.sessions, self._queue_apply, self.settings.currencies,
            player_id=player_id, sku=sku, price=price, currency=currency,
            idempotency_key=idempotency_key)

    def grant_reward(self, player_id: str, amount: int, currency: str, idempotency_key: str,
                     reason: str = "reward") -> TransactionHandle:
        """Credit `amount` of `currency` to a player (registering a new one), exactly once
        per key; idempotent as `purchase`."""
        return submit_reward(
            self.app.runtime.sessions, self._queue_apply, self.settings.currencies,
            player_id=player_id, amount=amount, currency=currency,
            idempotency_key=idempotency_key, reason=reason)

    def _queue_apply(self, transaction_id: int) -> None:
        self._applies.add(self._apply_step, transaction_id)

    def _send_applies(self, step: int, ids: list[int], oldest: float) -> None:
        # SQL holds every intent, so a message the broker refuses is not lost: the sweeper
        # re-sends what stays pending.
        try:
            self._publish(Route(APPLY_BATCH_TASK, Queue.TRANSACTIONS, step), [ids], oldest,
                          claim=False)
        except BrokerError as exc:
            log.warning("%d transactions are recorded but their message was not sent (%s); "
                        "the sweeper will send them", len(ids), exc)

    # sending --------------------------------------------------------------------------

    def _send(self, where: Route, args: list[Any], *, depends_on: Sequence[AsyncResult] = (),
              serializer: str | None = None, packed: bytes | None = None,
              later: bool = False) -> AsyncResult:
        """Send a task and keep it (`packed`: its arguments packed already) so that a later
        dependent can raise it.  With `later`, the outbox's thread publishes it, after
        every send handed over before it, and the handle comes at once under an id chosen
        here: the game loop does not wait on the broker."""
        for dependency in depends_on:
            self._raise(str(dependency.id), where)
        handoff = time.time()
        sent = Sent(where, pack_args(args) if packed is None else packed, handoff, serializer)
        if later:
            task_id = str(uuid4())
            self._inflight.add(task_id, sent)
            self._outbox.put(partial(self._publish, where, args, handoff,
                                     serializer=serializer, task_id=task_id))
            return self.app.AsyncResult(task_id)
        result = self._publish(where, args, handoff, serializer=serializer)
        self._inflight.add(str(result.id), sent)
        return result

    def _raise(self, task_id: str, dependent: Route) -> None:
        """Priority inheritance: a dependency queued at a lower step is sent again at its
        dependent's step under the same id; whichever copy starts first runs, the other is
        skipped."""
        raised = self._inflight.raised(task_id, dependent)
        if raised is not None:
            self._publish(raised.route, raised.args, raised.handoff,
                          serializer=raised.serializer, task_id=task_id)

    def _publish(self, where: Route, args: list[Any], handoff: float, *,
                 serializer: str | None = None, task_id: str | None = None,
                 claim: bool = True) -> AsyncResult:
        headers: dict[str, Any] = {HANDOFF_HEADER: handoff, SENT_HEADER: time.time()}
        if claim and where.queue is not Queue.TRANSACTIONS:  # SQL dedupes transactions
            headers[CLAIM_HEADER] = 1
        result = self.app.publisher.send(where, args, headers, task_id=task_id,
                                         serializer=serializer)
        metrics().enqueued.labels(where.queue.value).inc()
        with self._lock:
            self.tasks_sent += 1
        return result

    # helpers --------------------------------------------------------------------------

    @property
    def _weights(self) -> dict[str, float]:
        return self.settings.session_weights

    def _position(self, name: str, position: Any) -> tuple[float, float]:
        check_position(name, position, self.settings.world_size)
        return (float(position[0]), float(position[1]))


def _full() -> Tier:
    """No cap on the AI tier (`GAMESCHED_AI_THROTTLE` off)."""
    return Tier.FULL
