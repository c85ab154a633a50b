"""The load driver: hands each tick's planned work to the public client API, in real time.

Tick `k` covers ``[k * tick_s, (k + 1) * tick_s)`` of the run and is handed over at its end,
as a game server's loop handles the inputs of a tick once it is over.  When the driver falls
behind it emits the late ticks at once (the schedule stays the same) and reports how late it
ran; ticks still due when the run's wall-clock end passes are dropped and counted.

Every update carries the moment its player acted and every frame its scheduled start
(`intended` times, seconds since the epoch).  The client tells the driver which updates
left in which batch task, so that each update's latency can later run from its intended
time to the moment its batch was applied: a driver that falls behind adds its lag to the
latency of what it sent late instead of hiding it.

Background jobs follow the wall clock instead, at `background_rate` per second, from a
thread of their own: they stand for work the servers do whatever the players do, offered
above what the background workers can run so that their queue always has a backlog, even
when the driver falls behind.
Purchases follow the wall clock too, from a thread of their own at the scenario's rate per
open session: a store front takes orders beside the game loop, whether or not that loop
keeps up, and hands them to the store processes (a put on a pipe each).
"""

from __future__ import annotations

import math
import threading
import time
from array import array
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError
from redis import RedisError
from sqlalchemy.exc import OperationalError as SqlError

from app.client.api import GameClient
from app.client.textbook import TextbookClient
from app.errors import InvalidRequest, ServerFull
from app.observe.stats import percentile
from app.protocol.vocab import BackgroundKind
from app.simulate.population import SessionSpec, Update
from app.simulate.purchases import Store
from app.simulate.schedule import BackgroundJob, PhysicsFrame, Schedule, TickPlan
from app.tasking.publish import send_tick

OPEN_THREADS = 8
PROGRESS_EVERY_S = 0.25
KEPT_UP_LAG_MS = 10.0  # a run whose tick lag p99 is above this did not keep to schedule
STORE_STEP_S = 0.005  # the store front hands over the purchases due this often
SEND_ERRORS = (OperationalError, RedisError, ConnectionError, SqlError)

Progress = Callable[[float], None]
Client = GameClient | TextbookClient  # gamesched's, or the textbook baseline's


@dataclass(frozen=True)
class SentBatch:
    """A state batch the client sent: its task id, when it left, and the intended time of
    each of its updates that was handed over during the load (epoch seconds)."""

    task_id: str
    sent: float
    intended: array[float]


@dataclass(frozen=True)
class SentFrame:
    """A physics frame the client sent: its tasks (one, or one per region) and its
    scheduled start; it ran when all of them did."""

    task_ids: tuple[str, ...]
    intended: float


@dataclass(frozen=True)
class SentAi:
    """An AI batch the client sent: its task id and the NPCs it decides."""

    task_id: str
    npcs: tuple[str, ...]


@dataclass(frozen=True)
class ServerLag:
    """How well one game-server process kept to the schedule."""

    server: int
    pid: int
    ticks_planned: int
    ticks_emitted: int
    lag_p99_ms: float | None
    lag_max_ms: float | None
    kept_up: bool


@dataclass
class DriveStats:
    """What the driver handed over, counted by kind, and how well it kept to time."""

    updates: int = 0
    opens: int = 0
    moves: int = 0  # sessions that changed region
    move_tasks: int = 0  # the tasks the moves left in
    physics: int = 0  # frames sent
    physics_tasks: int = 0  # the tasks they went as
    ai: int = 0  # AI tasks: one per AI tick with decisions due
    ai_decisions: int = 0
    ai_full: int = 0  # the decisions at each tier
    ai_reduced: int = 0
    ai_minimal: int = 0
    npcs: int = 0  # the NPCs handed to the client each AI tick (every server has them all)
    body_changes: int = 0  # change_bodies calls (combat)
    bodies_spawned: int = 0
    background: int = 0
    purchases: int = 0
    purchase_sends: int = 0
    control: int = 0
    rejected: int = 0
    server_full: int = 0  # sessions refused because every server instance was full
    send_errors: int = 0
    first_error: str = ""
    tasks_sent: int = 0  # every task the client sent during the run
    ticks_planned: int = 0
    ticks_emitted: int = 0
    frames_due: int = 0  # frames scheduled in the run, those of dropped ticks included
    started: float = 0.0  # wall clock, seconds since the epoch
    ended: float = 0.0
    lag_s: list[float] = field(default_factory=list)
    batches: list[SentBatch] = field(default_factory=list)
    frames: list[SentFrame] = field(default_factory=list)
    ai_sent: list[SentAi] = field(default_factory=list)
    servers: list[ServerLag] = field(default_factory=list)  # the game servers' own, when many

    @property
    def elapsed_s(self) -> float:
        """Wall time of the load window."""
        return self.ended - self.started

    @property
    def ticks_dropped(self) -> int:
        """Ticks due within the run that never went out."""
        return self.ticks_planned - self.ticks_emitted

    @property
    def lag_p99_ms(self) -> float | None:
        """How late the ticks went out (99th percentile, ms); None when none went."""
        return percentile(self.lag_s, 99) * 1000.0 if self.lag_s else None

    @property
    def lag_max_ms(self) -> float | None:
        """How late the latest tick went out (ms); None when none went."""
        return max(self.lag_s) * 1000.0 if self.lag_s else None

    @property
    def kept_up(self) -> bool:
        """True when every planned tick went out and their lag p99 stayed within
        KEPT_UP_LAG_MS (in every game server, when several played): only then do the run's
        figures describe the load it planned."""
        if self.servers:
            return all(server.kept_up for server in self.servers)
        lag = self.lag_p99_ms
        return self.ticks_dropped == 0 and lag is not None and lag <= KEPT_UP_LAG_MS

    def lag(self, server: int, pid: int) -> ServerLag:
        """This drive's lag as game server `server` (process `pid`)."""
        return ServerLag(server, pid, self.ticks_planned, self.ticks_emitted, self.lag_p99_ms,
                         self.lag_max_ms, self.kept_up)

    @property
    def batches_sent(self) -> int:
        """State-update batch tasks sent: every task of the client that was not another
        kind of work (purchases leave through the store's own client)."""
        return self.tasks_sent - (self.opens + self.move_tasks + self.physics_tasks + self.ai
                                  + self.body_changes + self.background)

    @property
    def latency_bound(self) -> int:
        """Tasks sent whose latency is awaited at the end: all the client sent but
        background work and purchases (whose outcome the ledger reports).  Control ticks
        are not awaited: the controller's beat keeps sending its own."""
        return self.tasks_sent - self.background


COUNTS = ("updates", "opens", "moves", "move_tasks", "physics", "physics_tasks", "ai",
          "ai_decisions", "ai_full", "ai_reduced", "ai_minimal", "body_changes", "bodies_spawned",
          "background", "purchases", "purchase_sends", "control", "rejected", "server_full",
          "send_errors", "tasks_sent", "ticks_planned", "ticks_emitted", "frames_due")


def combine(front: DriveStats, servers: list[tuple[int, DriveStats]]) -> DriveStats:
    """One drive from the front's (background, purchases, control) and each game server's
    ``(pid, stats)``: counts added, sent work and tick lags pooled, each server's lag kept."""
    whole = DriveStats(started=front.started, ended=front.ended)
    for part in [front] + [stats for _, stats in servers]:
        for name in COUNTS:
            setattr(whole, name, getattr(whole, name) + getattr(part, name))
        whole.first_error = whole.first_error or part.first_error
        whole.ended = max(whole.ended, part.ended)
        whole.lag_s += part.lag_s
        whole.batches += part.batches
        whole.frames += part.frames
        whole.ai_sent += part.ai_sent
        whole.npcs = max(whole.npcs, part.npcs)
    whole.servers = [stats.lag(n, pid) for n, (pid, stats) in enumerate(servers)]
    return whole


class LoadDriver:
    """Drives one Schedule through one client.  A driver that does not `play` runs only the
    fronts beside the game loops of other processes: background work, the store and the
    controller's ticks."""

    def __init__(self, client: Client, schedule: Schedule, ids: list[str], *,
                 store: Store | None = None, control_ticks: bool = False,
                 background_rate: float = 0.0, plays: bool = True) -> None:
        self.client = client
        self.plays = plays
        self.schedule = schedule
        self.ids = ids
        self.store = store
        self.control_ticks = control_ticks
        self.background_rate = background_rate
        self.stats = DriveStats()
        self._errors_lock = threading.Lock()
        self._epoch: float | None = None
        self._pending: dict[tuple[str, int], float] | None = None

    # before play ------------------------------------------------------------------------

    def open_sessions(self, specs: list[SessionSpec], progress: Progress) -> None:
        """Open `specs` through the client API, several at a time (as players log in)."""
        with ThreadPoolExecutor(OPEN_THREADS, thread_name_prefix="sim-open") as pool:
            for opened in pool.map(self._open_one, specs):
                self.stats.opens += opened  # counted here: `+=` across threads loses counts
                progress(1)

    def submit_updates(self, updates: list[Update]) -> None:
        """Send `updates` (before play: first states, refreshes) and flush them."""
        for update in updates:
            self._submit(update)
        self.client.flush()

    def send_background(self, job: BackgroundJob) -> None:
        """Hand one background job to the client API."""
        if job.kind == BackgroundKind.SNAPSHOT:
            self.client.submit_background(BackgroundKind.SNAPSHOT,
                                          [self.ids[i] for i in job.sessions])
        else:
            self.client.submit_background(BackgroundKind.ANALYTICS, job.events)
        self.stats.background += 1

    # play -------------------------------------------------------------------------------

    def run(self, duration_s: float, progress: Progress,
            start_at: float | None = None) -> DriveStats:
        """Emit the schedule's ticks in real time for `duration_s` seconds, each at its
        tick's end; ticks still due one tick after the end are dropped.  Play starts at
        `start_at` (epoch seconds: several processes start together) or now."""
        stats = self.stats = DriveStats()
        self._background_next = 0
        sent_before, moved_before = self.client.tasks_sent, self.client.move_tasks_sent
        failed_before = self.client.send_failures
        stats.ticks_planned = self.schedule.ticks if self.plays else 0
        if start_at is not None:
            time.sleep(max(0.0, start_at - time.time()))
        stats.started, start = time.time(), time.monotonic()
        self._measure(stats.started)
        store_front = self._open_store(start, duration_s)
        back_office = (self._front(self._background_front, "sim-background", start, duration_s)
                       if self.background_rate > 0 else None)  # (game servers send none)
        emitted = (self._loop if self.plays else self._idle)(start, duration_s, progress)
        schedule = self.schedule  # the frames of dropped ticks are due all the same
        stats.frames_due += schedule.frames_due(stats.ticks_planned) - schedule.frames_due(emitted)
        if back_office is not None:
            back_office.join()
        if store_front is not None:
            store_front.join()
        self.client.flush()
        self._measure(None)
        stats.ended = time.time()
        stats.tasks_sent = self.client.tasks_sent - sent_before
        stats.send_errors += self.client.send_failures - failed_before  # sent by its thread
        if self.client.send_failures > failed_before:
            stats.first_error = stats.first_error or self.client.first_send_failure
        stats.move_tasks = self.client.move_tasks_sent - moved_before
        progress(min(duration_s, time.monotonic() - start))
        return stats

    def _loop(self, start: float, duration_s: float, progress: Progress) -> int:
        """The game loop: hand each tick over at its end, late ones at once; returns the
        ticks emitted."""
        stats, tick_s = self.stats, self.schedule.tick_s
        k, next_progress, next_control = 0, start, start
        stop_at = duration_s + tick_s
        while k < stats.ticks_planned and (now := time.monotonic() - start) < stop_at:
            due = min(stats.ticks_planned, int(now / tick_s + 1e-9))
            while k < due and time.monotonic() - start < stop_at:
                stats.lag_s.append(max(0.0, time.monotonic() - start - (k + 1) * tick_s))
                self.emit(self.schedule.plan(k))
                k += 1
            stats.ticks_emitted = k
            clock = time.monotonic()
            if clock >= next_progress:
                progress(min(duration_s, clock - start))
                next_progress = clock + PROGRESS_EVERY_S
            if self.control_ticks and clock >= next_control:
                self._control_tick()
                next_control += 1.0
            time.sleep(max(0.0, start + (k + 1) * tick_s - time.monotonic()))
        return k

    def _idle(self, start: float, duration_s: float, progress: Progress) -> int:
        """Beside game loops in other processes: show progress and stand in for beat until
        the run's end; no tick is emitted here."""
        next_control = start
        while (now := time.monotonic()) < start + duration_s:
            progress(now - start)
            if self.control_ticks and now >= next_control:
                self._control_tick()
                next_control += 1.0
            time.sleep(min(PROGRESS_EVERY_S, max(0.0, start + duration_s - now)))
        return 0

    def emit(self, plan: TickPlan) -> None:
        """Hand one tick's work to the client API."""
        for spec in plan.opens:
            self._open(spec)
        for update in plan.updates:
            self._submit(update)
        self._moves(plan.moves)
        self.stats.frames_due += len(plan.physics)
        for frame in plan.physics:
            self._frame(frame)
        if plan.ai:
            ok, result = self._attempt(self.client.ai_tick, plan.ai_tick,
                                       [(f"npc-{d.npc}", d.position, d.players) for d in plan.ai])
            if ok:
                self.stats.ai += len(_handles(result))
            self.stats.npcs = max(self.stats.npcs, len(plan.ai))
        for change in plan.bodies:
            ok, _ = self._attempt(self.client.change_bodies, change.region, change.spawn,
                                  change.remove)
            if ok:
                self.stats.body_changes += 1
                self.stats.bodies_spawned += len(change.spawn)

    # intended times ---------------------------------------------------------------------

    def _measure(self, epoch: float | None) -> None:
        """Start timing what is handed over, play starting at `epoch`; None stops."""
        self._epoch = epoch
        self._pending = {} if epoch is not None else None
        self.client.batch_listener = self._batch_sent if epoch is not None else None
        self.client.ai_listener = self._ai_sent if epoch is not None else None

    def _ai_sent(self, task_id: str, decisions: list[list[Any]]) -> None:
        """The client sent an AI batch: count its decisions by tier, note its NPCs."""
        stats = self.stats
        stats.ai_decisions += len(decisions)
        for decision in decisions:
            tier = f"ai_{decision[3]}" if len(decision) > 3 else "ai_full"
            setattr(stats, tier, getattr(stats, tier) + 1)
        stats.ai_sent.append(SentAi(task_id, tuple(str(d[0]) for d in decisions)))

    def _batch_sent(self, task_id: str, entries: list[Any]) -> None:
        """The client sent a batch: note each timed update's intended time under it."""
        pending = self._pending
        if pending is None:
            return
        times = array("d")
        for entry in entries:
            intended = pending.pop((entry[0], entry[1]), None)
            if intended is not None:
                times.append(intended)
        if times:
            self.stats.batches.append(SentBatch(task_id, time.time(), times))

    def _frame(self, frame: PhysicsFrame) -> None:
        ok, result = self._attempt(self.client.submit_physics_frame, frame.frame,
                                   frame.regions, frame.dt_ms)
        if ok:
            handles = _handles(result)
            if not handles:  # every region at a lower rate: nothing was due in this frame
                self.stats.frames_due -= 1
                return
            self.stats.physics += 1
            self.stats.physics_tasks += len(handles)
            if self._epoch is not None:
                self.stats.frames.append(SentFrame(tuple(str(h.id) for h in handles),
                                                   self._epoch + frame.at))

    def _background_front(self, start: float, duration_s: float) -> None:
        """Send the background jobs due by the wall clock until the run's end, from a thread
        of its own: the servers' background work (large snapshot and analytics payloads to
        pack and send) does not hold up the game loop's ticks."""
        end = start + duration_s
        while True:
            now = min(end, time.monotonic())
            self._background_due(now - start)
            if now >= end:
                return
            time.sleep(STORE_STEP_S)

    def _background_due(self, elapsed: float) -> None:
        """Send the background jobs due by `elapsed` seconds of wall time."""
        while self._background_next < math.floor(self.background_rate * elapsed):
            self._call(self.send_background, self.schedule.background_job(self._background_next))
            self._background_next += 1

    def _front(self, target: Callable[[float, float], None], name: str, start: float,
               duration_s: float) -> threading.Thread:
        thread = threading.Thread(target=target, args=(start, duration_s), name=name,
                                  daemon=True)
        thread.start()
        return thread

    def _submit(self, update: Update) -> None:
        session = self.ids[update.index]
        pending = self._pending
        if pending is not None and self._epoch is not None:
            pending[(session, update.seq)] = self._epoch + update.at
        sent = self._call(self.client.submit_update, session, update.seq, update.state,
                          update.position)
        if not sent and pending is not None:
            pending.pop((session, update.seq), None)
        self.stats.updates += sent

    def _open(self, spec: SessionSpec) -> None:
        self.stats.opens += self._open_one(spec)

    def _open_one(self, spec: SessionSpec) -> int:
        return self._call(self.client.open_session, self.ids[spec.index],
                          session_type=spec.session_type, players=spec.players,
                          region=spec.region)

    def _moves(self, moves: list[tuple[int, str]]) -> None:
        for index, region in moves:
            self.stats.moves += self._call(self.client.move_session, self.ids[index], region)

    def _open_store(self, start: float, duration_s: float) -> threading.Thread | None:
        if self.store is None:
            return None
        front = threading.Thread(target=self._store_front, args=(self.store, start, duration_s),
                                 name="sim-store-front", daemon=True)
        front.start()
        return front

    def _store_front(self, store: Store, start: float, duration_s: float) -> None:
        """Hand over the purchases due by the wall clock until the run's end, each with the
        moment it fell due (when the player bought)."""
        end, epoch = start + duration_s, self.stats.started - start
        credit, last, number = 0.0, start, 0
        while last < end:
            time.sleep(STORE_STEP_S)
            now = min(end, time.monotonic())
            rate = self.schedule.purchase_rate()
            due_from, credit = credit, credit + rate * (now - last)
            while number < int(credit):
                bought = last + (number + 1 - due_from) / rate  # credit reached number + 1
                self.stats.purchase_sends += store.submit(self.schedule.purchase(number),
                                                          epoch + bought)
                self.stats.purchases += 1
                number += 1
            last = now

    def _control_tick(self) -> None:
        """Stand in for beat: the simulated fleet runs the control worker without beat."""
        self.stats.control += self._call(send_tick, self.client.app)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Call the client API; 1 if it accepted the work, 0 if it refused or failed."""
        return 1 if self._attempt(fn, *args, **kwargs)[0] else 0

    def _attempt(self, fn: Callable[..., Any], *args: Any,
                 **kwargs: Any) -> tuple[bool, Any]:
        """Call the client API: (True, what it returned), or (False, None) when it refused
        the work or could not send it (counted)."""
        try:
            return True, fn(*args, **kwargs)
        except InvalidRequest as exc:
            self._rejected(exc)
        except ServerFull:
            with self._errors_lock:
                self.stats.server_full += 1
        except SEND_ERRORS as exc:
            self._send_failed(exc)
        return False, None

    def _rejected(self, exc: InvalidRequest) -> None:
        with self._errors_lock:  # sessions are opened from several threads
            self.stats.rejected += 1
            self.stats.first_error = self.stats.first_error or str(exc)

    def _send_failed(self, exc: Exception) -> None:
        with self._errors_lock:
            self.stats.send_errors += 1
            self.stats.first_error = self.stats.first_error or f"{type(exc).__name__}: {exc}"


def _handles(result: Any) -> list[Any]:
    """The task handles a client call returned: one, or a list (one task per region or per
    decision, as the textbook baseline sends them)."""
    return list(result) if isinstance(result, list) else [result]
