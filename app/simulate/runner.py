"""One simulation run: a fresh worker fleet, sessions opened, background capacity measured,
the seeded load driven for the run's duration, the latency-bound work drained."""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

import numpy as np
from rich.progress import Progress, TaskID
from sqlalchemy import delete
from sqlalchemy.exc import OperationalError as SqlOperationalError

from app.control.controller import read_decision
from app.errors import GameschedError
from app.fleet.fleets import ProcessFleet
from app.instances.registry import InstanceState
from app.observe.recorder import Execution, Recorder
from app.physics.notes import RegionNote
from app.players.hotstore import HotStore, hot_store_for
from app.players.models import GameSession
from app.players.sessions import NetworkTotals, network_totals, reset_network_totals
from app.protocol.names import (
    ANALYTICS_TASK,
    APPLY_BATCH_TASK,
    APPLY_TASK,
    SESSION_TASK,
    SNAPSHOT_TASK,
    SWEEP_TASK,
    TICK_TASK,
)
from app.protocol.queues import NAIVE_QUEUE
from app.protocol.vocab import BackgroundKind, RoleName
from app.settings import Settings
from app.simulate.driver import Client, DriveStats, LoadDriver, combine
from app.simulate.environment import (
    Services,
    clear_broker,
    clear_state,
    depth_reader,
)
from app.simulate.faults import FaultEvent, FaultInjector, launchers, plan_faults
from app.simulate.gameservers import GameServers, default_count
from app.simulate.modes import MODES
from app.simulate.population import Update
from app.simulate.purchases import Store
from app.simulate.restarts import at_kill, restart_section
from app.simulate.sampler import Sample, Sampler
from app.simulate.scenarios import Scenario
from app.simulate.schedule import Schedule
from app.simulate.serverprocs import ServerProcesses
from app.simulate.surge import SurgeSummary
from app.tasking.broker import queue_names
from app.tasking.factory import GameschedCelery, create_app

SETUP_TIMEOUT_S = 180.0
DRAIN_TIMEOUT_S = 60.0
QUIET_S = 5.0
START_MARGIN_S = 0.25  # the game servers get the start time this long before it
CALIBRATION_JOBS = 8  # two cycles: six snapshots, two analytics batches
BACKGROUND_TASKS = frozenset({SNAPSHOT_TASK, ANALYTICS_TASK})
LEDGER_TASKS = frozenset({APPLY_TASK, APPLY_BATCH_TASK, SWEEP_TASK})
CONTROL_TASKS = frozenset({TICK_TASK})  # beat sends them after the run too
# latency not awaited at the end: backlog, the ledger's, or the controller's
UNMEASURED = BACKGROUND_TASKS | LEDGER_TASKS | CONTROL_TASKS
FORGET_ATTEMPTS = 5
BUYERS = 200  # players with a wallet; purchases are spread over them


@dataclass(frozen=True)
class RunSpec:
    """What to simulate; the same for the baseline and for us."""

    scenario: Scenario
    players: int
    duration_s: float
    seed: int
    faults: tuple[str, ...] = ()
    game_servers: int = field(default_factory=default_count)
    instances: int = 0  # server instances, "i0", "i1", ...; 0: one shared player queue

    @property
    def instance_names(self) -> tuple[str, ...]:
        """The server instances' names."""
        return tuple(f"i{n}" for n in range(self.instances))


@dataclass(frozen=True)
class Capacity:
    """Background work the background workers can run, measured: `concurrency` slots, each
    taking `run_ms` per task on average."""

    concurrency: int
    run_ms: float
    tasks: int

    @property
    def per_s(self) -> float:
        """Background tasks per second."""
        return self.concurrency * 1000.0 / self.run_ms


def _detail(base: Settings, frame_hz: float) -> dict[str, float]:
    """The level-of-detail settings of a run whose game servers send physics frames at
    `frame_hz`: the base's rates, none above the frame rate."""
    near = min(base.physics_near_hz, frame_hz)
    return {"physics_frame_hz": frame_hz, "physics_near_hz": near,
            "physics_far_hz": min(base.physics_far_hz, near)}


@dataclass
class PhysicsTotals:
    """What the physics units and the director left at the end of a run: each region's
    last step, and the running counts (moves, skipped and handed-over regions, anomalies)."""

    notes: dict[str, RegionNote]
    counts: dict[str, int]


@dataclass
class RunResult:
    """Everything one run measured."""

    mode: str
    drive: DriveStats
    samples: list[Sample]
    executions: list[Execution]
    network: NetworkTotals
    capacity: Capacity
    background_rate: float
    sessions: int  # opened before play
    sessions_total: int  # with those that joined during play
    drained: bool
    roles: tuple[str, ...]
    faults: list[FaultEvent] = field(default_factory=list)
    transactions: SurgeSummary | None = None
    sampler_errors: int = 0
    repeated_runs: int = 0  # executions of a task id that had already run
    drain_ended: float = 0.0  # epoch seconds: work not applied by then counts as this old
    phases_s: dict[str, float] = field(default_factory=dict)  # wall time of each phase
    physics: PhysicsTotals | None = None  # the units' notes and counts at the end
    instances: list[InstanceState] = field(default_factory=list)  # at the end of the load
    moved: dict[str, int] = field(default_factory=dict)  # sessions moved, by why
    restart: dict[str, object] = field(default_factory=dict)  # after a restart-fleet fault


def first_runs(executions: Iterable[Execution]) -> list[Execution]:
    """Each task once, at its first run that succeeded (else its first finished run): a
    redelivered or retried message runs again under the same task id, and the work was
    applied when the first successful run finished."""
    first: dict[str, Execution] = {}
    for e in executions:
        seen = first.get(e.task_id)
        if seen is None or (e.ok, -e.done) > (seen.ok, -seen.done):
            first[e.task_id] = e
    return sorted(first.values(), key=lambda e: e.done)


class Run:
    """One run of `spec` on one system (gamesched or a baseline, `modes.MODES`)."""

    def __init__(self, spec: RunSpec, base: Settings, services: Services, mode: str,
                 progress: Progress) -> None:
        self.spec, self.services, self.progress = spec, services, progress
        self.mode = MODES[mode]
        self.tag = uuid.uuid4().hex[:6]
        self.settings = self.mode.settings(
            base, broker_url=services.broker_url, database_url=services.database_url,
            hot_url=services.hot_url, record_latency=True, instance_id=f"sim-{self.tag}",
            **_detail(base, spec.scenario.physics_hz))
        self.phases_s: dict[str, float] = {}
        self._phase_started = time.monotonic()

    def _phase(self, name: str) -> None:
        """Close the phase in progress, naming it `name`."""
        now = time.monotonic()
        self.phases_s[name] = round(now - self._phase_started, 3)
        self._phase_started = now

    def execute(self, capacity: Capacity | None) -> RunResult:
        """Run.  Background work is offered at the scenario's factor times `capacity` (from
        an earlier run, so that both runs get the same work) or else the capacity measured
        here."""
        self._clear()
        app = create_app(self.settings)
        self._phase_started = time.monotonic()
        try:
            with tempfile.TemporaryDirectory(prefix="gamesched-sim-logs-") as logs, ProcessFleet(
                    self.settings, roles=self.mode.roles, env=self.settings.to_env(), log_dir=logs,
                    launchers=launchers(self.spec.faults, self.spec.seed, self.mode.roles),
                    replicas=self.mode.replicas,
                    instances=() if self.mode.naive else self.spec.instance_names,
                    hot_urls=self.services.instance_hot_urls) as fleet:
                client = self.mode.client(app, self.settings)
                try:
                    return self._play(app, fleet, client, capacity)
                finally:
                    client.close()
                    # The backlog goes before the workers stop, so they stop at once.
                    clear_broker(self.services.broker_url, include_state=False)
        finally:
            self._clear()

    @cached_property
    def stores(self) -> list[HotStore]:
        """Every hot store session state may live in: the shared one and each instance's."""
        return [hot_store_for(url) for url in self.services.hot_urls]

    def _clear(self) -> None:
        clear_broker(self.services.broker_url)
        for url in self.services.hot_urls:
            if url != self.services.broker_url:
                clear_state(url)

    def _play(self, app: GameschedCelery, fleet: ProcessFleet, client: Client,
              capacity: Capacity | None) -> RunResult:
        spec, recorder = self.spec, app.runtime.recorder
        self._phase("fleet_start")
        schedule = Schedule(spec.scenario, spec.players, spec.seed, spec.duration_s,
                            world_size=self.settings.world_size)
        ids = [f"sim-{self.tag}-{i}" for i in range(schedule.size)]
        store = None
        if spec.scenario.purchases_per_player_s > 0:
            store = Store(app, ids, min(BUYERS, spec.players), self.tag)
        driver = LoadDriver(client, schedule, ids, store=store, control_ticks=not self.mode.naive,
                            plays=False)
        self._join(driver, schedule, recorder)
        sessions = driver.stats.opens
        if store is not None and not store.fund():
            raise GameschedError(f"{self.mode.label}: the buyers' starting rewards were not "
                                 "applied in time")
        self._phase("join")
        measured = self._calibrate(driver, schedule, recorder)
        self._phase("calibration")
        driver.background_rate = (capacity or measured).per_s * spec.scenario.background_factor
        game = GameServers(self.mode, self.settings, schedule, ids, count=spec.game_servers,
                           duration_s=spec.duration_s)
        try:
            return self._load(app, fleet, driver, game=game, store=store, sessions=sessions,
                              measured=measured)
        finally:
            game.close()

    def _load(self, app: GameschedCelery, fleet: ProcessFleet, driver: LoadDriver, *,
              game: GameServers, store: Store | None, sessions: int,
              measured: Capacity) -> RunResult:
        """Play the load from the game servers, drain, and gather what was measured."""
        spec, recorder = self.spec, app.runtime.recorder
        game.wait_ready()
        # the game servers adopted every session: they alone serve them from now on (after a
        # full restart, each places its own again and restores their state, once)
        driver.client.release_sessions(driver.ids)
        self._phase("game_servers")
        reset_network_totals(*self.stores)
        app.runtime.physics.notes.reset()
        recorder.drain()
        servers = ServerProcesses(self.services.broker_url, self.services.hot_url,
                                  self.services.database_url,
                                  instance_hot=self.services.instance_hot_urls)
        sampler = Sampler(lambda: {r: p.pid for r, p in fleet.procs.items()},
                          lambda: depth_reader(app, self._queue_names(app)), recorder,
                          servers.current,
                          client_pids=lambda: game.pids + (store.pids if store else []),
                          control=lambda: _decision(app))
        worker_roles = [r for r in self.mode.roles if r != RoleName.CONTROL]
        injector = FaultInjector(
            plan_faults(spec.faults, spec.duration_s, spec.seed, worker_roles), fleet,
            self.settings, self.services.private_redis, self.services.hot_servers,
            at_kill=lambda: at_kill(self.stores, app.runtime.sessions, f"sim-{self.tag}-"),
            owners=app.runtime.instances.owners if spec.instances else None)
        sampler.start()
        injector.start()
        drive = self._drive(driver, game)
        injector.stop()
        submissions = store.finish() if store else []
        self._phase("load")
        restart = restart_section(injector.kept, self.stores,
                                  app.runtime.instances if spec.instances else None)
        instances = app.runtime.instances.instances()
        moved = app.runtime.instances.moved()
        drained = self._drain(sampler, drive)
        drain_ended = time.time()
        ledger = store.summary(submissions) if store else None
        faults = injector.finish()
        sampler.stop()
        self._phase("drain")
        network = network_totals(*self.stores)
        if injector.kept is not None:
            network = network.plus(injector.kept.network)  # counted before a full restart
        physics = PhysicsTotals(app.runtime.physics.notes.read(),
                                app.runtime.physics.notes.totals())
        self._forget_sessions(app)
        return RunResult(
            mode=self.mode.name, drive=drive, samples=sampler.samples,
            executions=first_runs(e for e in sampler.executions if e.handoff >= drive.started),
            network=network, capacity=measured, background_rate=driver.background_rate,
            sessions=sessions, sessions_total=sessions + drive.opens, drained=drained,
            roles=self.mode.roles, physics=physics, instances=instances, moved=moved,
            restart=restart,
            faults=faults, transactions=ledger, sampler_errors=sampler.errors,
            repeated_runs=len(sampler.executions) - len({e.task_id for e in sampler.executions}),
            phases_s=self.phases_s, drain_ended=drain_ended)

    def _queue_names(self, app: GameschedCelery) -> list[str]:
        return [NAIVE_QUEUE] if self.mode.naive else queue_names(app)

    # phases -----------------------------------------------------------------------------

    def _join(self, driver: LoadDriver, schedule: Schedule, recorder: Recorder) -> None:
        """Players log in: open every initial session, then send each one's full state."""
        specs = schedule.initial_sessions()
        task = self.progress.add_task(f"{self.mode.label}: opening sessions", total=len(specs))
        driver.open_sessions(specs, lambda n: self.progress.advance(task, n))
        self._await(recorder, lambda e: e.task == SESSION_TASK, driver.stats.opens, task,
                    "sessions opened")
        self._send_applied(driver, schedule.join_updates(), task, "first states")
        self.progress.remove_task(task)

    def _send_applied(self, driver: LoadDriver, updates: list[Update], task: TaskID | None,
                      what: str) -> None:
        """Send `updates` and wait until the workers applied every one.  Counting applied
        updates, not batches: a batch may still be leaving the coalescer when flush returns."""
        target = network_totals(*self.stores).updates + len(updates)
        driver.submit_updates(updates)
        if task is not None:
            self.progress.update(task, total=len(updates), completed=0)
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while (applied := network_totals(*self.stores).updates) < target:
            if time.monotonic() > deadline:
                raise GameschedError(f"{self.mode.label}: {what}: {len(updates) - target + applied}"
                                     f" of {len(updates)} updates applied within "
                                     f"{SETUP_TIMEOUT_S:.0f}s")
            if task is not None:
                self.progress.update(task, completed=len(updates) - target + applied)
            time.sleep(0.02)

    def _calibrate(self, driver: LoadDriver, schedule: Schedule,
                   recorder: Recorder) -> Capacity:
        """Time the background jobs the run will offer, one after another, each snapshot
        finding fresh state to write as it does in play."""
        slots = self.settings.budget(RoleName.BACKGROUND).concurrency
        count = CALIBRATION_JOBS + slots  # the first `slots` jobs warm the workers up
        task = self.progress.add_task(f"{self.mode.label}: measuring background capacity",
                                      total=count)
        done: list[Execution] = []
        for number in range(count):
            job = schedule.background_job(number)
            if job.kind == BackgroundKind.SNAPSHOT:
                fresh = schedule.population.refresh_updates(
                    np.asarray(job.sessions, dtype=np.int64))
                self._send_applied(driver, fresh, None, "fresh states")
            driver.send_background(job)
            done += self._await(recorder, lambda e: e.task in BACKGROUND_TASKS, 1, None,
                                "background calibration")
            self.progress.advance(task, 1)
        self.progress.remove_task(task)
        runs = done[slots:]
        run_ms = sum((e.done - e.started) * 1000.0 for e in runs) / len(runs)
        return Capacity(concurrency=slots, run_ms=run_ms, tasks=len(runs))

    def _drive(self, driver: LoadDriver, game: GameServers) -> DriveStats:
        """Play: the game servers run their loops, this process the fronts beside them."""
        duration = self.spec.duration_s
        task = self.progress.add_task(f"{self.mode.label}: {self.spec.scenario.name}",
                                      total=duration)
        start_at = time.time() + START_MARGIN_S
        game.start(start_at)
        front = driver.run(duration, lambda s: self.progress.update(task, completed=s),
                           start_at=start_at)
        self.progress.remove_task(task)
        return combine(front, game.results(duration))

    def _drain(self, sampler: Sampler, drive: DriveStats) -> bool:
        """Wait until every latency-bound task handed over has run, or the queues went quiet,
        or the deadline passed; True when all ran."""
        expected = drive.latency_bound
        task = self.progress.add_task(f"{self.mode.label}: draining", total=expected)
        deadline = time.monotonic() + DRAIN_TIMEOUT_S
        count, last_count, last_change = 0, -1, time.monotonic()
        while time.monotonic() < deadline:
            sampler.collect()
            count = sum(1 for e in sampler.snapshot()
                        if e.handoff >= drive.started and e.task not in UNMEASURED)
            self.progress.update(task, completed=count)
            if count >= expected:
                break
            if count != last_count:
                last_count, last_change = count, time.monotonic()
            elif time.monotonic() - last_change > QUIET_S:
                break
            time.sleep(0.1)
        self.progress.remove_task(task)
        return count >= expected

    def _await(self, recorder: Recorder, match: Callable[[Execution], bool], expected: int,
               task: TaskID | None, what: str) -> list[Execution]:
        got: list[Execution] = []
        if task is not None:
            self.progress.update(task, total=expected, completed=0)
        deadline = time.monotonic() + SETUP_TIMEOUT_S
        while len(got) < expected:
            if time.monotonic() > deadline:
                raise GameschedError(f"{self.mode.label}: {what}: {len(got)} of {expected} "
                                     f"tasks ran within {SETUP_TIMEOUT_S:.0f}s")
            got.extend(e for e in recorder.drain() if match(e))
            if task is not None:
                self.progress.update(task, completed=len(got))
            time.sleep(0.02)
        return got

    def _forget_sessions(self, app: GameschedCelery) -> None:
        """Delete this run's session rows; the simulator leaves no data behind.  Snapshots of
        the background backlog still write these rows, so a deadlock is tried again."""
        for attempt in range(FORGET_ATTEMPTS):
            try:
                with app.runtime.sessions() as db, db.begin():
                    db.execute(delete(GameSession)
                               .where(GameSession.id.like(f"sim-{self.tag}-%")))
                return
            except SqlOperationalError:
                if attempt == FORGET_ATTEMPTS - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))


DECISION_FRESH_S = 5.0  # an older decision is a controller's that no longer runs


def _decision(app: GameschedCelery) -> dict[str, Any]:
    """The controller's last decision, as a dict (empty before its first, or when it is
    older than `DECISION_FRESH_S`: one left by an earlier run)."""
    decision = read_decision(app.runtime.fleet)
    if decision is None or time.time() - decision.at > DECISION_FRESH_S:
        return {}
    return asdict(decision)
