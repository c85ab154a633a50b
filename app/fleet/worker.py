"""Build and run ``celery worker`` command lines for gamesched roles."""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import tempfile
import threading
from dataclasses import dataclass
from functools import partial

from celery.signals import (
    worker_process_init,
    worker_ready,
    worker_shutdown,
    worker_shutting_down,
)
from celery.utils.nodenames import default_nodename, host_format
from celery.worker import state as worker_state
from kombu.exceptions import OperationalError as BrokerError
from redis import RedisError
from sqlalchemy.exc import SQLAlchemyError

from app.errors import InvalidRequest
from app.fleet import jobs
from app.fleet.memoryguard import MemoryGuard, warm_shutdown
from app.fleet.roles import WORKER_ROLES, role
from app.instances import identity
from app.instances.heartbeat import Heartbeat
from app.players.durable import WriteBehind
from app.players.storenames import record_store
from app.protocol.queues import (
    INSTANCE_NAME,
    INSTANCE_QUEUES,
    NAIVE_QUEUE,
    instance_queue,
    task_modules,
    unit_queue,
    unit_queues,
)
from app.protocol.vocab import CpuPolicy, Queue, RoleName
from app.settings import Settings
from app.tasking.arrivals import freeze_voided, send_updates, stores_elsewhere
from app.tasking.deliveries import Runner
from app.tasking.direct import DirectConsumer
from app.tasking.factory import GameschedCelery, create_app

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Consumption:
    """How a role's worker consumes (queues, Celery options, and a pool and concurrency of
    its own where the role's are not used) and whether it runs under the role's CPU
    niceness and policy.  The baselines' workers differ from gamesched's here and nowhere
    else."""

    queues: tuple[str, ...]
    options: tuple[str, ...]
    lowers_cpu: bool
    pool: str | None = None  # None: the role's pool
    concurrency: int | None = None  # None: the role's budget


def consumption(settings: Settings, role_name: str, unit: int | None = None,
                instance: str | None = None) -> Consumption:
    """How a worker of `role_name` consumes under `settings` (`unit`: the one physics unit
    it is, else every unit's queue; `instance`: the server instance whose sessions it
    serves, on its queues first, ``player.<instance>``)."""
    spec = role(role_name)
    check_unit(settings, role_name, unit)
    check_instance(role_name, instance)
    if settings.naive and settings.textbook:  # Celery's defaults, pool and size included
        return Consumption((NAIVE_QUEUE,), (), lowers_cpu=False, pool="prefork",
                           concurrency=os.cpu_count() or 1)
    if settings.naive:  # the baseline: Celery's defaults, one shared queue, OS scheduling
        return Consumption((NAIVE_QUEUE,), (), lowers_cpu=False)
    options = ["--prefetch-multiplier", "1"]
    if role_name in WORKER_ROLES and spec.pool == "prefork":
        options += ["--max-memory-per-child", str(settings.budget(role_name).memory_mb * 1024)]
    queues = tuple(name for q in spec.queues for name in _queue_names(settings, q, unit))
    if instance is not None:
        queues = (*(instance_queue(q, instance) for q in INSTANCE_QUEUES), *queues)
    return Consumption(queues, tuple(options), lowers_cpu=True,
                       concurrency=1 if unit is not None else None)


def _queue_names(settings: Settings, queue: Queue, unit: int | None) -> list[str]:
    """The queues behind `queue`: physics is one queue per unit, ``physics.<unit>``; the
    plain ``physics`` queue (a task sent by name without a route) goes with unit 0."""
    if queue is not Queue.PHYSICS:
        return [queue.value]
    if unit is None:
        return [queue.value, *unit_queues(settings.physics_units)]
    return [queue.value, unit_queue(unit)] if unit == 0 else [unit_queue(unit)]


def check_unit(settings: Settings, role_name: str, unit: int | None) -> None:
    """Refuse a physics unit on another role or past GAMESCHED_PHYSICS_UNITS."""
    if unit is None:
        return
    if role_name != RoleName.PHYSICS:
        raise InvalidRequest("unit", unit, f"only the physics role has units, not {role_name}")
    if not 0 <= unit < settings.physics_units:
        raise InvalidRequest("unit", unit, f"expected 0 to {settings.physics_units - 1} "
                             f"(GAMESCHED_PHYSICS_UNITS={settings.physics_units})")


def check_instance(role_name: str, instance: str | None) -> None:
    """Refuse an instance on a role that serves no session, or a name no queue can carry."""
    if instance is None:
        return
    if not any(q in role(role_name).queues for q in INSTANCE_QUEUES):
        raise InvalidRequest("instance", instance, "only the player and all roles serve an "
                             f"instance's sessions, not {role_name}")
    if not re.fullmatch(INSTANCE_NAME, instance):
        raise InvalidRequest("instance", instance, "expected letters, digits, '.', '_' or '-', "
                             "starting with a letter or digit, at most 64")


def node_name(role_name: str, unit: int | None) -> str:
    """A worker's node name before the ``@``: its role, and its unit if it has one."""
    return role_name if unit is None else f"{role_name}-u{unit}"


def worker_argv(settings: Settings, role_name: str, concurrency: int | None,  # noqa: PLR0917
                hostname: str | None, loglevel: str, unit: int | None = None,
                instance: str | None = None) -> list[str]:
    """The Celery worker arguments of role `role_name` (`concurrency`: the pool size, when
    not the role's or the baseline's; `unit`: the physics unit it is; `instance`: the
    server instance whose sessions it serves)."""
    spec = role(role_name)
    consumes = consumption(settings, role_name, unit, instance)
    size = concurrency or consumes.concurrency or settings.budget(role_name).concurrency
    return [
        "worker", "-P", consumes.pool or spec.pool, "-c", str(size),
        "-n", hostname or f"{node_name(role_name, unit)}@{instance or settings.instance_id}",
        "-l", loglevel, "--without-gossip", "--without-mingle",
        "-Q", ",".join(consumes.queues), *consumes.options,
    ]


AUTOGROUP = "/proc/self/autogroup"
_POLICIES: dict[CpuPolicy, int | None] = {
    CpuPolicy.NORMAL: getattr(os, "SCHED_OTHER", None),
    CpuPolicy.BATCH: getattr(os, "SCHED_BATCH", None),
    CpuPolicy.IDLE: getattr(os, "SCHED_IDLE", None),
}
SWITCH_INTERVAL_S = 0.0005
WRITES_BEHIND = (RoleName.PLAYER, RoleName.ALL)  # the roles that apply state batches
# What the Celery side of a player worker with a direct consumer consumes, after its first
# queue's name (``player.east:direct``): nothing is sent there (no queue of gamesched's
# has a ':' in its name).
DIRECT_HOST_SUFFIX = ":direct"


def lower_cpu_priority(settings: Settings, role_name: str) -> int:
    """Raise this process's niceness to at least the role's `nice` budget and put it under
    the role's CPU scheduling policy (children inherit both; calling again, as after the
    metrics re-exec, changes nothing); returns the niceness increment.  The naive baseline
    keeps the OS defaults, as plain Celery.

    Linux with autogroup scheduling shares CPU between sessions first and applies a
    process's nice only inside its session, so a worker that leads its own session (as
    fleets start them) also lowers its session's autogroup niceness.
    """
    if role_name not in WORKER_ROLES or not consumption(settings, role_name).lowers_cpu:
        return 0
    budget = settings.budget(role_name)
    set_cpu_policy(budget.cpu_policy)
    increment = budget.nice - os.nice(0)
    if increment <= 0:
        return 0
    os.nice(increment)
    if os.getsid(0) == os.getpid() and os.path.exists(AUTOGROUP):
        with open(AUTOGROUP, "w") as group:
            group.write(str(budget.nice))
    return increment


def set_cpu_policy(policy: CpuPolicy) -> bool:
    """Put this process (and the children it starts later) under the Linux scheduling
    `policy`; True if it was changed.  Where the OS has no such policy, nothing changes."""
    wanted = _POLICIES.get(policy)
    if wanted is None or not hasattr(os, "sched_setscheduler"):
        return False
    if os.sched_getscheduler(0) == wanted:
        return False
    try:
        os.sched_setscheduler(0, wanted, os.sched_param(0))
    except OSError as exc:  # leaving idle or batch may need a privilege the process lacks
        log.warning("CPU policy %s not set: %s", policy, exc)
        return False
    return True


def controller_argv(settings: Settings, schedule: str, loglevel: str,
                    hostname: str | None = None) -> list[str]:
    """The Celery arguments of the controller: beat embedded in a solo ``control`` worker."""
    return [
        "worker", "-B", "-s", schedule, "-Q", Queue.CONTROL.value, "-P", "solo", "-c", "1",
        "-n", hostname or f"controller@{settings.instance_id}", "-l", loglevel,
        "--without-gossip", "--without-mingle",
    ]


def memory_budget(settings: Settings, role_name: str) -> int | None:
    """The MiB a worker of `role_name` keeps each of its processes under
    (`app.fleet.memoryguard`); None for the textbook baseline, Celery's defaults."""
    if settings.naive and settings.textbook:
        return None
    return settings.budget(role_name).memory_mb


def run_worker(settings: Settings, argv: list[str], metrics_port: int | None,  # noqa: PLR0917
               memory_mb: int | None = None, role_name: str = "",
               instance: str | None = None) -> None:
    """Run Celery's worker in this process, serving metrics on `metrics_port` if given.
    With `memory_mb`, a job that takes a process of the worker past that much resident
    memory is stopped and the process replaced (`app.fleet.memoryguard`): a thread-pool or
    solo worker finishes its other tasks and starts again as a fresh process.  With
    `instance`, the worker says in the instance registry that the instance is alive, from
    the moment it consumes until it stops (`app.instances`)."""
    if metrics_port is not None:
        _ensure_multiprocess_metrics()
        from app.observe.metrics import serve, zero

        zero(argv[argv.index("-Q") + 1].split(","))  # a series per queue it consumes
        serve(metrics_port)
    # The consumer loop and the pool threads share one interpreter lock: a thread back from
    # the broker waits for the running one to yield it, 5 ms by default, on every message.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    worker_ready.connect(freeze_startup_objects, weak=False)
    worker_process_init.connect(freeze_startup_objects, weak=False)
    guard = _guard(argv, memory_mb, role_name)
    app = create_app(settings)
    # the modules of its own tasks only, not every role's (docs/measurements.md)
    app.conf.include = task_modules(argv[argv.index("-Q") + 1].split(","))
    direct = _direct(app, argv) if consumes_directly(settings, role_name) else None
    beat = _announce(app, instance) if instance is not None else None
    if direct is not None:  # after the instance's freeze and first heartbeat
        worker_ready.connect(direct.start, weak=False)
        argv = host_argv(argv)
    if role_name in WRITES_BEHIND:
        _write_behind(app)
    asked = _stop_asked()
    try:
        start_worker(app, argv)
    finally:
        if not asked.is_set() and ((guard is not None and guard.tripped.is_set())
                                   or (beat is not None and beat.fenced.is_set())):
            os.execv(sys.executable, sys.orig_argv)  # the same command, as a fresh process


def consumes_directly(settings: Settings, role_name: str) -> bool:
    """Whether a worker of `role_name` takes its messages with gamesched's own consumer
    (`app.tasking.direct`): the player role on a Redis broker, with
    ``GAMESCHED_PLAYER_CONSUMER=direct``; never the baselines."""
    return (role_name == RoleName.PLAYER and settings.player_consumer == "direct"
            and settings.uses_redis and not settings.naive)


def host_argv(argv: list[str]) -> list[str]:
    """The Celery worker arguments of a worker whose queues a direct consumer takes:
    one thread, consuming only its first queue's name with `DIRECT_HOST_SUFFIX`, where
    nothing is sent (`gamesched status` shows that name).  It still answers remote
    control, and its signals start and stop everything else."""
    hosted = list(argv)
    at = hosted.index("-Q") + 1
    hosted[at] = hosted[at].split(",")[0] + DIRECT_HOST_SUFFIX
    hosted[hosted.index("-c") + 1] = "1"
    return hosted


def _direct(app: GameschedCelery, argv: list[str]) -> DirectConsumer:
    """A consumer of the queues `argv` names, on as many threads as its pool would have;
    stopped as the worker shuts down, before anything else that listens for that (the
    instance's leaving, the write-behind's last flush)."""
    queues = argv[argv.index("-Q") + 1].split(",")
    threads = int(argv[argv.index("-c") + 1])
    hostname = host_format(default_nodename(argv[argv.index("-n") + 1]))  # as Celery names it
    consumer = DirectConsumer(app.runtime.broker, queues, Runner(app, hostname), threads,
                              should_stop=_stop_requested)
    worker_shutdown.connect(consumer.stop, weak=False)
    return consumer


def _stop_requested() -> bool:
    """Whether the Celery worker of this process was asked to stop (a signal, the memory
    guard, a fence): it then takes no more messages."""
    return worker_state.should_stop is not None or worker_state.should_terminate is not None


def _stop_asked() -> threading.Event:
    """Set once a signal asks this worker to stop (SIGTERM, SIGINT, SIGQUIT), even while it
    stops on its own to be replaced: then it stays stopped."""
    asked = threading.Event()

    def stop(**_: object) -> None:
        asked.set()

    worker_shutting_down.connect(stop, weak=False)
    return asked


def start_worker(app: GameschedCelery, argv: list[str]) -> int:
    """Run ``celery worker`` with `argv` (``["worker", ...]``) on `app` until it stops;
    its exit code.  What `Celery.worker_main` does, through the worker command alone:
    that goes through the whole ``celery`` command line, whose import (every subcommand,
    the interactive shell's libraries, the plugins installed) was about a sixth of a
    worker's boot CPU (docs/measurements.md)."""
    from celery.bin.base import CLIContext
    from celery.bin.worker import worker as worker_command

    if argv[:1] != ["worker"]:
        raise ValueError(f"argv: expected the worker command first, got {argv[:1]}")
    context = CLIContext(app=app, no_color=None, workdir=None, quiet=False)
    code: int = worker_command.main(args=argv[1:], obj=context, prog_name="celery worker",
                                    standalone_mode=False)
    return code


def _announce(app: GameschedCelery, instance: str) -> Heartbeat:
    """Freeze the out-of-date session states SQL names in this instance's hot store
    (`arrivals.freeze_voided`), then join the registry as `instance`, with the hot store its
    session state lives on (`GAMESCHED_HOT_URL`, else the broker's) and that store's name
    (`GAMESCHED_HOT_STORE`), and heartbeat while this worker consumes; on
    a warm shutdown it leaves at once (silent: the controller moves its sessions).  Taken over
    while it was silent (fenced), it shuts down warm and starts again as a fresh process,
    which joins anew."""
    settings = app.runtime.settings
    beat = Heartbeat(app.runtime.instances, instance, settings.instance_capacity,
                     settings.instance_heartbeat_s, on_fenced=warm_shutdown,
                     hot_url=settings.hot_store_url, hot_name=settings.hot_store_name)

    def become(token: int) -> None:  # this process's writes carry the token
        identity.set_current(identity.Identity(instance, token), beat.notice_fenced)
        try:  # the store's name outlives the registry (`app.players.storenames`)
            record_store(app.runtime.sessions, instance, settings.hot_store_name)
        except SQLAlchemyError as exc:
            log.warning("instance %s: its hot store's name not recorded in SQL (%s)",
                        instance, exc)

    def freeze(**_: object) -> None:  # before it consumes: no update lands on such a copy
        try:
            freeze_voided(app.runtime, instance, partial(send_updates, app))
        except (SQLAlchemyError, RedisError, BrokerError) as exc:
            log.error("instance %s: out-of-date session states in its hot store not "
                      "frozen, or what it logged of them not sent on (%s); it tries again "
                      "as it joins next", instance, exc)

    beat.on_join = become
    worker_ready.connect(freeze, weak=False)  # receivers run in this order, before the loop
    worker_ready.connect(beat.start, weak=False)
    worker_shutdown.connect(beat.leave, weak=False)
    return beat


def _write_behind(app: GameschedCelery) -> WriteBehind:
    """Write the sessions' changed hot state to SQL while this worker consumes, and once
    more as it stops (`app.players.durable`)."""
    runtime = app.runtime
    settings = runtime.settings
    writer = WriteBehind(runtime.hot, runtime.sessions, settings.hot_store_name,
                         settings.write_behind_ms / 1000, settings.snapshot_ms / 1000,
                         elsewhere=stores_elsewhere(runtime),
                         retention_s=settings.state_log_retention_s)
    worker_ready.connect(writer.start, weak=False)
    worker_shutdown.connect(writer.stop, weak=False)
    return writer


def _guard(argv: list[str], memory_mb: int | None, role_name: str) -> MemoryGuard | None:
    """Keep the worker's processes under `memory_mb`: each prefork child guards itself (and
    Celery replaces it after the stopped job), a one-process worker guards itself and is
    replaced here (the guard returned)."""
    if not memory_mb:
        return None
    running = jobs.this_process()
    if argv[argv.index("-P") + 1] == "prefork":
        then = ("this child ends after it (Celery starts another)"
                if "--max-memory-per-child" in argv else "the child carries on")

        def guard_child(**_: object) -> None:
            MemoryGuard(memory_mb, running, label=role_name, over=None, then=then).start()

        worker_process_init.connect(guard_child, weak=False)
        return None
    guard = MemoryGuard(memory_mb, running, label=role_name)
    worker_ready.connect(guard.start, weak=False)
    return guard


def freeze_startup_objects(**_: object) -> int:
    """Move what start-up allocated (modules, app, connections) out of the collector's
    reach, so that its full collections, which pause every thread, stay short; returns how
    many objects are frozen."""
    gc.collect()
    gc.freeze()
    return gc.get_freeze_count()


def _ensure_multiprocess_metrics() -> None:
    """Prefork children share metrics through files; the variable must be set before
    prometheus-client is first imported, so re-execute this command with it set."""
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        return
    directory = tempfile.mkdtemp(prefix="gamesched-metrics-")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": directory}
    os.execve(sys.executable, [sys.executable, "-m", "app.cli", *sys.argv[1:]], env)
