"""Worker fleets for the demo and the simulator.

``EmbeddedFleet`` runs one Celery worker per role in threads of this process, on kombu's
in-memory transport.  ``ProcessFleet`` starts ``gamesched worker`` subprocesses on a real
broker.  Both are context managers that return once every worker consumes.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any

from celery.worker import WorkController
from celery.worker import state as worker_state
from kombu.exceptions import OperationalError
from redis import RedisError

from app.errors import GameschedError
from app.fleet import jobs
from app.fleet.memoryguard import MemoryGuard
from app.fleet.roles import ROLES, WORKER_ROLES
from app.fleet.worker import WRITES_BEHIND, consumption, node_name
from app.instances.heartbeat import Heartbeat
from app.players.durable import WriteBehind
from app.protocol.vocab import RoleName
from app.settings import ENV_PREFIX, Settings
from app.tasking.broker import live_workers
from app.tasking.factory import GameschedCelery, create_app

log = logging.getLogger(__name__)

# What asking the workers may raise while the broker restarts: kombu shares pooled
# connections between apps of one broker URL, so a new app's first broadcast can still
# go out on a connection to the server that was killed.
BROKER_ERRORS = (OperationalError, RedisError, OSError)
RETRY_S = 0.2


class _Worker(WorkController):  # type: ignore[misc]
    """A WorkController that signals when its consumer is ready."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.ready = threading.Event()
        super().__init__(*args, **kwargs)

    def on_consumer_ready(self, consumer: Any) -> None:
        """Mark the worker as consuming."""
        self.ready.set()


class EmbeddedFleet:
    """One thread-pool worker per role inside this process (each with its own app)."""

    def __init__(self, settings: Settings, roles: Sequence[str] = (*WORKER_ROLES, "control"),
                 instances: Sequence[str] = ()):
        self.settings = settings
        self.roles = tuple(roles)
        # With `instances`, the player role runs one worker per server instance, each
        # serving the sessions placed on it and heartbeating to the registry.
        self.instances = tuple(instances)
        self._heartbeats: list[Heartbeat] = []
        self._writer: WriteBehind | None = None  # sessions' hot state to SQL
        self._workers: list[_Worker] = []
        self._threads: list[threading.Thread] = []
        # One process runs every role: it keeps the ``all`` role's budget.  It is the
        # process of the command using the fleet, so it is not replaced; the job is stopped.
        self.memory_guard = MemoryGuard(settings.budget(RoleName.ALL).memory_mb,
                                        jobs.this_process(), label="embedded", over=None,
                                        then="the fleet carries on")

    def __enter__(self) -> EmbeddedFleet:
        # Celery's pool threads run tasks from the default app, not the consuming worker's
        # (one app per process is its model).  Every role's app has the same settings, so
        # one of them serves as the default; each role keeps its own queue selection.
        runner = create_app(self.settings)
        runner.finalize()
        runner.set_default()
        runner.set_current()
        for name in self.roles:
            if name == RoleName.PHYSICS:
                for unit in range(self.settings.physics_units):
                    self._start(name, unit)
            elif name == RoleName.PLAYER and self.instances:
                for instance in self.instances:
                    self._start(name, instance=instance)
            else:
                self._start(name)
        for worker in self._workers:
            if not worker.ready.wait(timeout=30):
                raise GameschedError(f"embedded worker {worker.hostname} did not start")
        registry = runner.runtime.instances
        settings = self.settings
        for instance in self.instances:
            beat = Heartbeat(registry, instance, settings.instance_capacity,
                             settings.instance_heartbeat_s)
            beat.start()
            self._heartbeats.append(beat)
        if any(name in WRITES_BEHIND for name in self.roles):
            runtime = runner.runtime
            self._writer = WriteBehind(runtime.hot, runtime.sessions,
                                       settings.hot_store_name,
                                       settings.write_behind_ms / 1000,
                                       settings.snapshot_ms / 1000,
                                       retention_s=settings.state_log_retention_s)
            self._writer.start()
        self.memory_guard.start()
        return self

    def _start(self, name: str, unit: int | None = None, instance: str | None = None) -> None:
        app: GameschedCelery = create_app(self.settings)
        app.finalize()
        queues = (consumption(self.settings, name, unit, instance).queues if name != "control"
                  else [q.value for q in ROLES[name].queues])
        concurrency = (1 if name == "control" or unit is not None
                       else self.settings.budget(name).concurrency)
        worker = _Worker(
            app=app, hostname=f"{node_name(name, unit)}@{instance or 'embedded'}", pool="threads",
            concurrency=concurrency, queues=list(queues), loglevel="WARNING",
            without_heartbeat=True, without_mingle=True, without_gossip=True,
        )
        thread = threading.Thread(target=worker.start, name=f"worker-{name}", daemon=True)
        thread.start()
        self._workers.append(worker)
        self._threads.append(thread)

    def __exit__(self, *exc: object) -> None:
        for beat in self._heartbeats:  # the instances leave: no new session goes to them
            beat.leave()
        self.memory_guard.stop()
        worker_state.should_terminate = 0
        for thread in self._threads:
            thread.join(timeout=15)
        worker_state.should_terminate = None
        if self._writer is not None:  # what the workers applied last, into SQL
            self._writer.stop()


class ProcessFleet:
    """``gamesched worker`` subprocesses, one per role, on the configured broker."""

    def __init__(self, settings: Settings, roles: Sequence[str] = WORKER_ROLES,
                 env: dict[str, str] | None = None, log_dir: str | None = None, *,
                 launchers: Mapping[str, Sequence[str]] | None = None,
                 replicas: Mapping[str, int] | None = None, loglevel: str = "WARNING",
                 instances: Sequence[str] = (),
                 hot_urls: Mapping[str, str] | None = None):
        self.settings = settings
        # Warnings and errors only: Celery's two INFO lines per task cost the workers CPU
        # at thousands of tasks a second.
        self.loglevel = loglevel
        self.roles = tuple(roles)
        # Workers cache the bytecode they compile: one (re)started by the fleet does not
        # compile celery, kombu and SQLAlchemy again (about 3 s of CPU each time).
        self.env = {k: v for k, v in {**os.environ, **settings.to_env(), **(env or {})}.items()
                    if k != "PYTHONDONTWRITEBYTECODE"}
        # Instance -> the Redis its player worker keeps its sessions' state on
        # (GAMESCHED_HOT_URL), for instances with one of their own.
        self.hot_urls = dict(hot_urls or {})
        self.log_dir = log_dir
        # Python arguments that run ``gamesched`` per role (``-m app.cli`` when absent),
        # e.g. the simulator's SQL fault wrapper.
        self.launchers = dict(launchers or {})
        # Nodes per role: `replicas` of a role run as "role", "role-2", ... on its queues, so
        # that killing one leaves the role served; the physics role runs as its units,
        # "physics-u0", "physics-u1", ..., each on its own queue; with `instances`, the player
        # role runs as one worker per server instance, each serving
        # the sessions placed on it (node "player-<instance>").
        self.instances = tuple(instances)
        self.nodes = [node for name in self.roles
                      for node in _nodes(settings, name, replicas, self.instances)]
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def __enter__(self) -> ProcessFleet:
        try:
            for name in self.nodes:
                self.procs[name] = self.spawn(name)
            self.wait_ready()
        except BaseException:
            self.__exit__(None, None, None)  # never leave workers behind a failed start
            raise
        return self

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        """Start the worker node `name` (a role, or a role's replica "role-N"), again after
        a kill."""
        role, _, suffix = name.partition("-")
        # The control role runs as the controller: beat drives its tick and the ledger's
        # sweeper, which re-sends intents whose messages a broker restart lost.
        command = ["controller"] if role == "control" else ["worker", "--role", role]
        env = self.env
        if role == RoleName.PLAYER and suffix in self.instances:
            command += ["--instance", suffix]
            if suffix in self.hot_urls:
                env = {**env, f"{ENV_PREFIX}HOT_URL": self.hot_urls[suffix]}
        elif suffix.startswith("u"):
            command += ["--unit", suffix[1:]]
        if role == "control" and self.log_dir is not None:  # beat's files go with the logs
            command += ["--schedule", os.path.join(self.log_dir, "beat-schedule")]
        launcher = self.launchers.get(role, ("-m", "app.cli"))
        cmd = [sys.executable, *launcher, *command, "--hostname", self.hostname(name),
               "--loglevel", self.loglevel]
        if self.log_dir is None:
            return subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        with open(os.path.join(self.log_dir, f"{name}.log"), "ab") as out:
            return subprocess.Popen(cmd, env=env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)

    def hostname(self, name: str) -> str:
        """The Celery node name of the worker node `name`."""
        return f"{name}@{self.settings.instance_id}-{os.getpid()}"

    def wait_ready(self, timeout: float = 60.0, nodes: Sequence[str] | None = None) -> None:
        """Block until the worker of each of `nodes` (every node when None) answers the
        broker, and every instance among them is in the registry, or raise."""
        chosen = list(self.nodes if nodes is None else nodes)
        app = create_app(self.settings)
        deadline = time.monotonic() + timeout
        wanted = {self.hostname(n) for n in chosen}
        failure = ""
        while time.monotonic() < deadline:
            self._check_alive(chosen)
            try:
                if wanted <= set(live_workers(app, timeout=0.5)) and self._registered(app,
                                                                                  chosen):
                    return
            except BROKER_ERRORS as exc:  # a pooled connection to a Redis that restarted
                failure = f" (last broker error: {type(exc).__name__}: {exc})"
                time.sleep(RETRY_S)
        raise GameschedError(f"workers did not start within {timeout:.0f}s: "
                             f"{sorted(wanted)}{failure}")

    def _registered(self, app: GameschedCelery, nodes: Sequence[str]) -> bool:
        """Every instance among `nodes` has told the registry it is alive."""
        instances = {n.partition("-")[2] for n in nodes
                     if n.startswith(f"{RoleName.PLAYER.value}-")} & set(self.instances)
        if not instances:
            return True
        live = {state.name for state in app.runtime.instances.instances() if state.live}
        return instances <= live

    def _check_alive(self, nodes: Sequence[str]) -> None:
        for name in nodes:
            proc = self.procs[name]
            if proc.poll() is not None:
                raise GameschedError(f"worker {name} exited with code {proc.returncode}")

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        stop_process_groups(self.procs.values())


def _nodes(settings: Settings, role: str, replicas: Mapping[str, int] | None,
           instances: Sequence[str] = ()) -> list[str]:
    """The worker nodes of `role`: its units (physics, unless the baseline's shared queue
    makes units meaningless), its instances (player, when the fleet has instances), else
    its replicas."""
    if role == RoleName.PHYSICS and not settings.naive:
        return [node_name(role, unit) for unit in range(settings.physics_units)]
    if role == RoleName.PLAYER and instances:
        return [f"{role}-{instance}" for instance in instances]
    return [role if n == 1 else f"{role}-{n}" for n in range(1, (replicas or {}).get(role, 1) + 1)]


def stop_process_groups(procs: Iterable[subprocess.Popen[bytes]], grace_s: float = 20) -> None:
    """Stop processes started with ``start_new_session=True``, their children included:
    SIGTERM (a warm shutdown) to all at once, then SIGKILL for any still running `grace_s`
    after it (one grace for all: they stop side by side)."""
    running = [p for p in procs if p.poll() is None]
    for proc in running:
        os.killpg(proc.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    for proc in running:
        try:
            proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            log.warning("pid %d did not stop within %.0f s of SIGTERM: SIGKILL", proc.pid,
                        grace_s)
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
