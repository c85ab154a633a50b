"""``--faults``: what goes wrong during a run, at seeded times.

``kill-worker`` SIGKILLs the worker of each role twice (its whole process group) and
starts it again; ``kill-worker-every=<seconds>s`` SIGKILLs the (first) transactions worker
that often, from that many seconds in, and starts it again (a bad day for the ledger);
``restart-broker`` stops and restarts the private redis-server once;
``partition`` cuts the first server instance off once (SIGSTOP of its player worker for
`PARTITION_S`, then SIGCONT): the controller takes it over, and back, it is fenced and
starts again by itself (with ``--instances`` 2 or more);
``restart-fleet`` SIGKILLs every worker of the fleet and every private Redis server (the
broker and hot state, each instance's own included) at once, starts the servers again
empty and the workers again: the
sessions come back from SQL (`app.simulate.restarts` reports how many, and what was lost);
``db-errors`` makes 1 % of the SQL statements of the ledger's processes (the transactions
worker and the controller, which runs the sweeper) fail with an operational error, for the
whole run: their workers start under ``python -m app.cli.sqlfaults``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import random
import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from celery import Celery

from app.errors import GameschedError, InvalidRequest
from app.fleet.fleets import BROKER_ERRORS, ProcessFleet
from app.fleet.roles import WORKER_ROLES
from app.protocol.vocab import RoleName
from app.settings import Settings
from app.simulate.redisserver import PrivateRedis
from app.simulate.restarts import AtKill
from app.tasking.broker import live_workers
from app.tasking.factory import create_app

log = logging.getLogger(__name__)

KNOWN = ("kill-worker", "restart-broker", "db-errors", "partition", "restart-fleet")
EVERY = "kill-worker-every"  # =<seconds>s: the transactions worker, SIGKILLed that often
MIN_EVERY_S, MAX_EVERY_S = 1.0, 3600.0
AVAILABLE = KNOWN
PARTITION_S = 6.0  # past the instances' time to live (3 s): long enough to be taken over
KILLS_PER_ROLE = 2
SQL_ERROR_RATE = 0.01
SQL_FAULT_ROLES = (RoleName.TRANSACTIONS, RoleName.CONTROL)  # the ledger's processes
# A fault's target not answering this long after the fault is reported as not recovered
# (a whole fleet restarting beside busy game servers took 25-30 s on 2 cores).
RECOVERY_TIMEOUT_S = 60.0
FIRST_BACK_TIMEOUT_S = 30.0  # a restart-fleet starts the rest without the first after this
RESTART_STEPS = (
    "killed",  # every worker's process group SIGKILLed and reaped
    "noted",  # where the sessions stood read from hot state and SQL
    "redis_back",  # every Redis server killed and started again, empty
    "sessions_back",  # the player workers and the controller answer (the rest start now)
)
FIRST_BACK = (RoleName.PLAYER.value, RoleName.CONTROL.value)  # after a restart-fleet
# A further step of a restart-fleet, with `owners`: every session open at the kill placed
# again on an instance (by the game servers' clients); missing when that took longer
# than the recovery timeout.
PLACED_STEP = "placed"
PLACED_POLL_S = 0.25


@dataclass(frozen=True)
class Fault:
    """One planned fault: `kind` on `target` at `at_s` seconds into the run."""

    at_s: float
    kind: str
    target: str


@dataclass(frozen=True)
class FaultEvent:
    """A fault as it happened: when, and how long from then until the target answered
    again; for ``restart-fleet``, also when each of its steps ended (`RESTART_STEPS`,
    seconds from the kill)."""

    kind: str
    target: str
    at_s: float
    recovered_s: float | None
    steps: dict[str, float] | None = None


def parse_faults(text: str | None) -> tuple[str, ...]:
    """The fault names of a comma list, or InvalidRequest naming the bad one."""
    names = tuple(dict.fromkeys(n.strip() for n in (text or "").split(",") if n.strip()))
    for name in names:
        if name.startswith(f"{EVERY}="):
            kill_every_s(name)
            continue
        if name not in KNOWN:
            raise InvalidRequest("faults", name, f"expected a comma list of {', '.join(KNOWN)}, "
                                 f"{EVERY}=<seconds>s")
        if name not in AVAILABLE:
            raise InvalidRequest("faults", name, "not available yet; available: "
                                 + ", ".join(AVAILABLE))
    return names


def kill_every_s(name: str) -> float:
    """The period of ``kill-worker-every=<seconds>s``, or InvalidRequest naming it."""
    text = name.partition("=")[2].removesuffix("s")
    try:
        period = float(text)
    except ValueError:
        period = 0.0
    if not MIN_EVERY_S <= period <= MAX_EVERY_S:
        raise InvalidRequest("faults", name, f"expected {EVERY}=<seconds>s, {MIN_EVERY_S:g} "
                             f"to {MAX_EVERY_S:g} seconds, like {EVERY}=9s")
    return period


def plan_faults(names: tuple[str, ...], duration_s: float, seed: int,
                roles: Sequence[str] = WORKER_ROLES) -> list[Fault]:
    """The seeded fault times of a run over the fleet's worker `roles` (the same times for
    the baseline and for us)."""
    rng = random.Random(f"faults:{seed}")
    plan: list[Fault] = []
    if "kill-worker" in names:
        plan += [Fault(rng.uniform(0.1, 0.9) * duration_s, "kill-worker", role)
                 for role in roles for _ in range(KILLS_PER_ROLE)]
    if "restart-broker" in names:
        plan.append(Fault(rng.uniform(0.3, 0.7) * duration_s, "restart-broker", "redis"))
    if "partition" in names and RoleName.PLAYER in roles:
        plan.append(Fault(rng.uniform(0.1, 0.4) * duration_s, "partition", RoleName.PLAYER))
    for name in (n for n in names if n.startswith(f"{EVERY}=")):
        period = kill_every_s(name)
        target = RoleName.TRANSACTIONS if RoleName.TRANSACTIONS in roles else roles[0]
        plan += [Fault(k * period, "kill-worker", target)
                 for k in range(1, int(duration_s / period) + 1) if k * period < duration_s]
    if "restart-fleet" in names:  # the fleet takes 10-12 s to be back on 2 cores
        plan.append(Fault(rng.uniform(0.4, 0.5) * duration_s, "restart-fleet", "fleet"))
    return sorted(plan, key=lambda f: f.at_s)


def launchers(names: tuple[str, ...], seed: int,
              roles: Sequence[str] = (*WORKER_ROLES, RoleName.CONTROL)) -> dict[str, list[str]]:
    """How the fleet of `roles` starts each role's worker when the run's faults need
    another launcher than ``python -m app.cli`` (``db-errors``: the SQL fault wrapper, on
    the roles that write the ledger); roles absent here start as usual."""
    if "db-errors" not in names:
        return {}
    wrapper = ["-m", "app.cli.sqlfaults", "--sql-error-rate", str(SQL_ERROR_RATE),
               "--seed", str(seed), "--"]
    return {str(role): wrapper for role in (*SQL_FAULT_ROLES, RoleName.ALL) if role in roles}


@dataclass
class _Pending:
    """A fault whose target has not answered again yet."""

    fault: Fault
    at_s: float
    since: float
    ready: Callable[[set[str]], bool]
    steps: dict[str, float] | None = None


@dataclass
class FaultInjector:
    """Runs a fault plan in a thread, relative to `start()`; one watcher thread times every
    recovery (one broadcast at a time: concurrent broadcasts exhaust kombu's shared
    connection pool, each holding a connection while it acquires another)."""

    plan: list[Fault]
    fleet: ProcessFleet
    settings: Settings
    redis_server: PrivateRedis | None = None
    hot_servers: Sequence[PrivateRedis] = ()  # hot state's (each instance's), killed too
    at_kill: Callable[[], AtKill] | None = None  # where the sessions stand before it
    # The instance of each of the sessions (the registry's), to time their placing again
    owners: Callable[[Sequence[str]], list[str | None]] | None = None
    kept: AtKill | None = None
    events: list[FaultEvent] = field(default_factory=list)

    def __post_init__(self) -> None:
        kinds = {f.kind for f in self.plan}
        if "restart-broker" in kinds and self.redis_server is None:
            raise InvalidRequest("faults", "restart-broker", "needs the simulator's private "
                                 "redis-server: unset GAMESCHED_BROKER_URL")
        if "restart-fleet" in kinds and (self.redis_server is None or not self.hot_servers):
            raise InvalidRequest("faults", "restart-fleet", "needs the simulator's private "
                                 "broker and hot-state redis-servers: unset "
                                 "GAMESCHED_BROKER_URL and GAMESCHED_HOT_URL")
        self._stop = threading.Event()
        self._done = threading.Event()
        self._lock = threading.Lock()
        self._pending: list[_Pending] = []
        self._resumes: list[threading.Timer] = []  # partitions to heal
        self._injector = threading.Thread(target=self._run, name="sim-faults", daemon=True)
        self._watcher = threading.Thread(target=self._watch, name="sim-fault-recovery",
                                         daemon=True)
        self._placing: threading.Thread | None = None

    def start(self) -> None:
        """Start the clock of the plan."""
        self._started = time.monotonic()
        if self.plan:
            self._injector.start()
            self._watcher.start()

    def stop(self) -> None:
        """Skip the faults not yet due (a partition in progress heals now)."""
        self._stop.set()
        if self._injector.is_alive():
            self._injector.join()
        for timer in self._resumes:
            if timer.is_alive():
                timer.cancel()
                timer.function()

    def finish(self) -> list[FaultEvent]:
        """Wait (bounded) until every injected fault recovered or timed out; the events in
        time order."""
        self.stop()
        self._done.set()
        if self._watcher.is_alive():
            self._watcher.join(timeout=RECOVERY_TIMEOUT_S + 10)
        if self._placing is not None:
            self._placing.join(timeout=RECOVERY_TIMEOUT_S + 10)
        return sorted(self.events, key=lambda e: e.at_s)

    def _run(self) -> None:
        for fault in self.plan:
            if self._stop.wait(max(0.0, self._started + fault.at_s - time.monotonic())):
                return
            since = time.monotonic()
            at, steps = since - self._started, None
            if fault.kind == "kill-worker":
                ready = _role_answers(self._kill(fault.target))
            elif fault.kind == "partition":
                ready = _role_answers(self._cut_off(fault.target))
            elif fault.kind == "restart-fleet":
                steps = self._restart_fleet()
                ready = _all_answer(len(self.fleet.procs))
            else:
                self._restart_broker()
                ready = _all_answer(len(self.fleet.procs))
            with self._lock:
                self._pending.append(_Pending(fault, at, since, ready, steps))

    def _watch(self) -> None:
        app = create_app(self.settings)
        try:
            while True:
                finished = self._done.is_set() or self._injector_finished()
                with self._lock:
                    pending = list(self._pending)
                if not pending and finished:
                    return
                if pending:
                    self._resolve(pending, self._answering(app))
                else:
                    time.sleep(0.1)
        finally:
            app.close()

    def _injector_finished(self) -> bool:
        return self._stop.is_set() or not self._injector.is_alive()

    def _answering(self, app: Celery) -> set[str] | None:
        try:
            return set(live_workers(app, timeout=0.5))
        except BROKER_ERRORS:
            time.sleep(0.2)
            return None

    def _resolve(self, pending: list[_Pending], names: set[str] | None) -> None:
        now = time.monotonic()
        for item in pending:
            recovered = names is not None and item.ready(names)
            if recovered or now - item.since > RECOVERY_TIMEOUT_S:
                self.events.append(FaultEvent(item.fault.kind, item.fault.target,
                                              round(item.at_s, 3),
                                              round(now - item.since, 3) if recovered else None,
                                              item.steps))
                with self._lock:
                    self._pending.remove(item)

    def _kill(self, role: str) -> str:
        """SIGKILL the first node of `role` (the role's own, or its first unit) and start it
        again; returns the node."""
        node = self._first(role)
        proc = self.fleet.procs[node]
        with contextlib.suppress(ProcessLookupError):  # it may have died on its own
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        self.fleet.procs[node] = self.fleet.spawn(node)
        return node

    def _cut_off(self, role: str) -> str:
        """Stop the first node of `role` (SIGSTOP of its process group) and resume it
        `PARTITION_S` later; returns the node."""
        node = self._first(role)
        group = self.fleet.procs[node].pid
        os.killpg(group, signal.SIGSTOP)

        def resume() -> None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(group, signal.SIGCONT)

        timer = threading.Timer(PARTITION_S, resume)
        timer.daemon = True
        timer.start()
        self._resumes.append(timer)
        return node

    def _first(self, role: str) -> str:
        """The first node of `role`: the role's own, or its first unit or instance."""
        return role if role in self.fleet.procs else next(
            n for n in self.fleet.procs if n.startswith(f"{role}-"))

    def _restart_fleet(self) -> dict[str, float]:
        """SIGKILL every worker's process group, note where the sessions stand (hot state
        and SQL, which nothing writes any more), SIGKILL every Redis server, then start the
        servers (empty) and the workers again: the player workers (the sessions' own) and
        the controller (which rebalances the instances that joined one after another)
        first, the rest once those answer (a whole fleet starting at once on a busy machine
        took twice as long to be back).  Returns when each step ended (`RESTART_STEPS`)."""
        assert self.redis_server is not None
        began, steps = time.monotonic(), {}

        def step(name: str) -> None:
            steps[name] = round(time.monotonic() - began, 3)

        nodes = list(self.fleet.procs)
        for node in nodes:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.fleet.procs[node].pid, signal.SIGKILL)
        for node in nodes:
            self.fleet.procs[node].wait()
        step("killed")
        if self.at_kill is not None:
            self.kept = self.at_kill()
        step("noted")
        servers = [self.redis_server, *self.hot_servers]
        for server in servers:
            server.kill()
        for server in servers:
            server.start()
        step("redis_back")
        first = [n for n in nodes if n.startswith(FIRST_BACK)] or nodes
        for node in first:
            self.fleet.procs[node] = self.fleet.spawn(node)
        try:  # the rest start once these answer, or after the recovery timeout
            self.fleet.wait_ready(FIRST_BACK_TIMEOUT_S, nodes=first)
        except (GameschedError, *BROKER_ERRORS) as exc:
            log.warning("restart-fleet: the first workers did not answer: %s", exc)
        else:
            step("sessions_back")
        for node in nodes:
            if node not in first:
                self.fleet.procs[node] = self.fleet.spawn(node)
        if self.owners is not None and self.kept is not None and self.kept.durable:
            self._placing = threading.Thread(
                target=self._time_placed, args=(sorted(self.kept.durable), began, steps),
                name="sim-fault-placed", daemon=True)
            self._placing.start()
        return steps

    def _time_placed(self, ids: list[str], began: float, steps: dict[str, float]) -> None:
        """Add `PLACED_STEP` to `steps` once every one of `ids` has an instance again (the
        registry restarted empty), polling; nothing after the recovery timeout."""
        assert self.owners is not None
        while time.monotonic() - began <= RECOVERY_TIMEOUT_S:
            try:
                if None not in self.owners(ids):
                    steps[PLACED_STEP] = round(time.monotonic() - began, 3)
                    return
            except BROKER_ERRORS:  # the registry's Redis still starting
                pass
            time.sleep(PLACED_POLL_S)

    def _restart_broker(self) -> None:
        assert self.redis_server is not None
        self.redis_server.stop()
        self.redis_server.start()


def _role_answers(node: str) -> Callable[[set[str]], bool]:
    return lambda names: any(name.startswith(f"{node}@") for name in names)


def _all_answer(count: int) -> Callable[[set[str]], bool]:
    return lambda names: len(names) >= count
