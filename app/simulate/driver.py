"""The load driver: hands each tick's planned work to the public client API, in real time.

Tick `k` is due at ``start + k * tick_s``.  When the driver falls behind it emits the late
ticks at once (the schedule stays the same) and reports how late it ran; it stops at the
wall-clock end of the run whether or not every tick went out.

Background jobs follow the wall clock instead, at `background_rate` per second: they stand
for work the servers do whatever the players do, offered above what the background workers
can run so that their queue always has a backlog, even when the driver falls behind.
Purchases follow the wall clock too, from a thread of their own at the scenario's rate per
open session: a store front takes orders beside the game loop, whether or not that loop
keeps up, and hands them to the store processes (a put on a pipe each).
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from kombu.exceptions import OperationalError
from redis import RedisError
from sqlalchemy.exc import OperationalError as SqlError

from app.client.api import GameClient
from app.errors import InvalidRequest
from app.protocol.vocab import BackgroundKind
from app.simulate.population import SessionSpec, Update
from app.simulate.purchases import Store
from app.simulate.schedule import BackgroundJob, Schedule, TickPlan
from app.tasking.publish import send_tick

OPEN_THREADS = 8
PROGRESS_EVERY_S = 0.25
STORE_STEP_S = 0.005  # the store front hands over the purchases due this often
SEND_ERRORS = (OperationalError, RedisError, ConnectionError, SqlError)

Progress = Callable[[float], None]


@dataclass
class DriveStats:
    """What the driver handed over, counted by kind, and how well it kept to time."""

    updates: int = 0
    opens: int = 0
    moves: int = 0
    physics: int = 0
    ai: int = 0  # AI tasks: one per AI tick with decisions due
    ai_decisions: int = 0
    background: int = 0
    purchases: int = 0
    purchase_sends: int = 0
    control: int = 0
    rejected: int = 0
    send_errors: int = 0
    first_error: str = ""
    tasks_sent: int = 0  # every task the client sent during the run
    ticks_planned: int = 0
    ticks_emitted: int = 0
    started: float = 0.0  # wall clock, seconds since the epoch
    ended: float = 0.0
    lag_s: list[float] = field(default_factory=list)

    @property
    def elapsed_s(self) -> float:
        """Wall time of the load window."""
        return self.ended - self.started

    @property
    def kept_up(self) -> bool:
        """True when every planned tick went out within the run."""
        return self.ticks_emitted >= self.ticks_planned

    @property
    def batches(self) -> int:
        """State-update batch tasks sent: every task of the client that was not another
        kind of work (purchases leave through the store's own client)."""
        return self.tasks_sent - (self.opens + self.moves + self.physics + self.ai
                                  + self.background)

    @property
    def latency_bound(self) -> int:
        """Tasks sent whose latency is awaited at the end: all the client sent but
        background work and purchases (whose outcome the ledger reports).  Control ticks
        are not awaited: the controller's beat keeps sending its own."""
        return self.tasks_sent - self.background


class LoadDriver:
    """Drives one Schedule through one GameClient."""

    def __init__(self, client: GameClient, schedule: Schedule, ids: list[str], *,
                 store: Store | None = None, control_ticks: bool = False,
                 background_rate: float = 0.0) -> None:
        self.client = client
        self.schedule = schedule
        self.ids = ids
        self.store = store
        self.control_ticks = control_ticks
        self.background_rate = background_rate
        self.stats = DriveStats()
        self._errors_lock = threading.Lock()

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

    def run(self, duration_s: float, progress: Progress) -> DriveStats:
        """Emit the schedule's ticks in real time for `duration_s` seconds."""
        stats = self.stats = DriveStats()
        self._background_next = 0
        tick_s, sent_before = self.schedule.tick_s, self.client.tasks_sent
        stats.ticks_planned = self.schedule.ticks
        stats.started = time.time()
        start = time.monotonic()
        store_front = self._open_store(start, duration_s)
        k, next_progress, next_control = 0, start, start
        while k < stats.ticks_planned and (now := time.monotonic() - start) < duration_s:
            due = min(stats.ticks_planned, int(now / tick_s) + 1)
            while k < due and time.monotonic() - start < duration_s:
                stats.lag_s.append(max(0.0, time.monotonic() - start - k * tick_s))
                self.emit(self.schedule.plan(k))
                k += 1
            stats.ticks_emitted = k
            self._background(time.monotonic() - start)
            clock = time.monotonic()
            if clock >= next_progress:
                progress(clock - start)
                next_progress = clock + PROGRESS_EVERY_S
            if self.control_ticks and clock >= next_control:
                self._control_tick()
                next_control += 1.0
            time.sleep(max(0.0, start + k * tick_s - time.monotonic()))
        if store_front is not None:
            store_front.join()
        self.client.flush()
        stats.ended = time.time()
        stats.tasks_sent = self.client.tasks_sent - sent_before
        progress(min(duration_s, time.monotonic() - start))
        return stats

    def emit(self, plan: TickPlan) -> None:
        """Hand one tick's work to the client API."""
        for spec in plan.opens:
            self._open(spec)
        for update in plan.updates:
            self._submit(update)
        self._moves(plan.moves)
        for frame in plan.physics:
            self.stats.physics += self._call(self.client.submit_physics_frame, frame.frame,
                                             frame.regions, frame.dt_ms)
        if plan.ai:
            sent = self._call(self.client.submit_ai_batch,
                              [(f"npc-{d.npc}", d.position, d.players) for d in plan.ai])
            self.stats.ai += sent
            self.stats.ai_decisions += sent * len(plan.ai)

    def _background(self, elapsed: float) -> None:
        """Send the background jobs due by `elapsed` seconds of wall time."""
        while self._background_next < math.floor(self.background_rate * elapsed):
            self._call(self.send_background, self.schedule.background_job(self._background_next))
            self._background_next += 1

    def _submit(self, update: Update) -> None:
        self.stats.updates += self._call(self.client.submit_update, self.ids[update.index],
                                         update.seq, update.state, update.position)

    def _open(self, spec: SessionSpec) -> None:
        self.stats.opens += self._open_one(spec)

    def _open_one(self, spec: SessionSpec) -> int:
        return self._call(self.client.open_session, self.ids[spec.index],
                          session_type=spec.session_type, players=spec.players,
                          region=spec.region)

    def _moves(self, moves: list[tuple[int, str]]) -> None:
        for index, region in moves:
            self.stats.moves += self._call(self.client.update_session, self.ids[index],
                                           region=region)

    def _open_store(self, start: float, duration_s: float) -> threading.Thread | None:
        if self.store is None:
            return None
        front = threading.Thread(target=self._store_front, args=(self.store, start, duration_s),
                                 name="sim-store-front", daemon=True)
        front.start()
        return front

    def _store_front(self, store: Store, start: float, duration_s: float) -> None:
        """Hand over the purchases due by the wall clock until the run's end."""
        end = start + duration_s
        credit, last, number = 0.0, start, 0
        while last < end:
            time.sleep(STORE_STEP_S)
            now = min(end, time.monotonic())
            credit += self.schedule.purchase_rate() * (now - last)
            last = now
            while number < int(credit):
                self.stats.purchase_sends += store.submit(self.schedule.purchase(number))
                self.stats.purchases += 1
                number += 1

    def _control_tick(self) -> None:
        """Stand in for beat: the simulated fleet runs the control worker without beat."""
        self.stats.control += self._call(send_tick, self.client.app)

    def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
        """Call the client API; 1 if it accepted the work, 0 if it refused or failed."""
        try:
            fn(*args, **kwargs)
        except InvalidRequest as exc:
            self._rejected(exc)
        except SEND_ERRORS as exc:
            self._send_failed(exc)
        else:
            return 1
        return 0

    def _rejected(self, exc: InvalidRequest) -> None:
        with self._errors_lock:  # sessions are opened from several threads
            self.stats.rejected += 1
            self.stats.first_error = self.stats.first_error or str(exc)

    def _send_failed(self, exc: Exception) -> None:
        with self._errors_lock:
            self.stats.send_errors += 1
            self.stats.first_error = self.stats.first_error or f"{type(exc).__name__}: {exc}"
