"""Once a second: CPU and memory of the worker processes, of the server's Redis and
PostgreSQL (found by their own process ids, `app.simulate.serverprocs`), of the simulator,
queue depths, and the execution records the workers wrote since the last sample."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import psutil
from kombu.exceptions import OperationalError
from redis import RedisError

from app.observe.recorder import Execution, Recorder

INTERVAL_S = 1.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One sampling interval.  CPU figures are shares of the whole machine (0..1)."""

    at: float  # seconds since the sampler started
    fleet_cpu: float
    simulator_cpu: float
    services_cpu: float  # the server's Redis servers and PostgreSQL, by their process ids
    fleet_rss_mb: float
    role_cpu_s: dict[str, float]  # CPU seconds per second of each role's process tree
    depths: dict[str, int]
    service_cpu: dict[str, float] = field(default_factory=dict)  # share per service kind
    unmeasured: tuple[str, ...] = ()  # services with no process on this machine
    client_cpu: float = 0.0  # the simulated game servers: this process and its store's
    # CPU seconds in the interval per kind of process: "workers", each service kind,
    # "game_servers" (their processes and the store's) and "simulator" (this process)
    cpu_s: dict[str, float] = field(default_factory=dict)
    # The controller's last decision (`app.control.controller.Decision`, as a dict): what
    # its degradation ladder had engaged; empty before its first or when unreadable.
    control: dict[str, Any] = field(default_factory=dict)

    @property
    def server_cpu(self) -> float:
        """The whole server side: workers, Redis and PostgreSQL (the game servers
        excluded)."""
        return self.fleet_cpu + self.services_cpu


class CpuMeter:
    """CPU seconds used by a changing set of processes between two calls of `measure`."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], float] = {}
        self._baseline = True
        self._at = 0.0
        self.interval_s = 0.0  # wall time between the last two calls of `measure`

    def measure(self, procs: Iterable[psutil.Process]) -> tuple[float, float]:
        """(CPU seconds since the last call, resident MB now) of `procs`.

        The first call takes the baseline.  Later, a process not seen at the last call
        started since (a child of a measured tree, or a restarted worker) and counts in full.
        """
        cpu, rss, seen = 0.0, 0.0, {}
        for proc in procs:
            try:
                key = (proc.pid, proc.create_time())
                times = proc.cpu_times()
                total = times.user + times.system
                rss += proc.memory_info().rss / MB
            except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                continue
            if not self._baseline:
                cpu += total - self._seen.get(key, 0.0)
            seen[key] = total
        now = time.monotonic()
        self.interval_s = now - self._at if self._at else 0.0
        self._seen, self._baseline, self._at = seen, False, now
        return max(0.0, cpu), rss

    def share(self, cpu_s: float, cores: int) -> float:
        """`cpu_s` (from the last call) as a share of `cores` over this meter's own interval:
        under load the sampler runs late, and a meter read late has more CPU to report."""
        return cpu_s / (self.interval_s * cores) if self.interval_s > 0 else 0.0


def tree(pid: int) -> list[psutil.Process]:
    """Process `pid` and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


@dataclass
class Sampler:
    """A thread that samples once per `interval_s` until stopped."""

    fleet_pids: Callable[[], dict[str, int]]  # role -> worker pid, read at every sample
    depths: Callable[[], dict[str, int]]
    recorder: Recorder
    service_pids: Callable[[], dict[str, int | None]] = dict  # kind -> root pid
    client_pids: Callable[[], list[int]] = list  # game-server processes besides this one
    control: Callable[[], dict[str, Any]] = dict  # the controller's last decision
    interval_s: float = INTERVAL_S
    samples: list[Sample] = field(default_factory=list)
    executions: list[Execution] = field(default_factory=list)
    errors: int = 0

    def __post_init__(self) -> None:
        self.cores = psutil.cpu_count() or 1
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="sim-sampler", daemon=True)
        self._meters: dict[str, CpuMeter] = {}
        self._me = psutil.Process(os.getpid())

    def start(self) -> None:
        """Take the baseline and start sampling."""
        self.started = time.monotonic()
        self._measure()
        self._thread.start()

    def stop(self) -> None:
        """Take a last sample and stop."""
        self._stop.set()
        self._thread.join(timeout=30)
        self.collect()

    def snapshot(self) -> list[Execution]:
        """The execution records collected so far (a copy)."""
        with self._lock:
            return list(self.executions)

    def _run(self) -> None:
        last = time.monotonic()
        while not self._stop.wait(max(0.0, last + self.interval_s - time.monotonic())):
            last = time.monotonic()
            self._sample()

    def _sample(self) -> None:
        sample = self._measure()
        if sample is not None:
            self.samples.append(sample)
        self.collect()

    def _measure(self) -> Sample | None:
        """Read every meter; the sample since the last call, or None for the first call
        (the baseline: each meter divides by its own interval)."""
        fleet_cpu_s, fleet_cpu, fleet_rss, roles = 0.0, 0.0, 0.0, {}
        for role, pid in self.fleet_pids().items():
            meter = self._meter(role)
            cpu, rss = meter.measure(tree(pid))
            fleet_cpu_s, fleet_rss = fleet_cpu_s + cpu, fleet_rss + rss
            fleet_cpu += meter.share(cpu, self.cores)
            roles[role] = meter.share(cpu, 1)
        sim_cpu, _ = self._meter("simulator").measure([self._me])
        others = [p for pid in self.client_pids() for p in tree(pid)]
        game_cpu = self._meter("client").measure(others)[0]
        pids = self._service_pids()
        services = {kind: self._meter(kind).measure(tree(pid))[0]
                    for kind, pid in pids.items() if pid}
        depths = self._depths()
        if self._meter("simulator").interval_s <= 0:  # the first call took the baseline
            return None
        shares = {k: self._meter(k).share(v, self.cores) for k, v in services.items()}
        sim_share = self._meter("simulator").share(sim_cpu, self.cores)
        return Sample(at=time.monotonic() - self.started, fleet_cpu=fleet_cpu,
                      simulator_cpu=sim_share,
                      client_cpu=sim_share + self._meter("client").share(game_cpu, self.cores),
                      services_cpu=sum(shares.values()),
                      fleet_rss_mb=fleet_rss, role_cpu_s=roles, depths=depths,
                      service_cpu=shares,
                      unmeasured=tuple(sorted(k for k, pid in pids.items() if not pid)),
                      cpu_s={"workers": fleet_cpu_s, **services, "game_servers": game_cpu,
                             "simulator": sim_cpu},
                      control=self._control())

    def _service_pids(self) -> dict[str, int | None]:
        try:
            return self.service_pids()
        except (RedisError, OSError):
            self.errors += 1
            return {}

    def _control(self) -> dict[str, Any]:
        try:
            return self.control()
        except (RedisError, OSError):
            self.errors += 1
            return {}

    def _meter(self, name: str) -> CpuMeter:
        return self._meters.setdefault(name, CpuMeter())

    def _depths(self) -> dict[str, int]:
        try:
            return self.depths()
        except (OperationalError, RedisError, OSError):
            self.errors += 1
            return {}

    def collect(self) -> None:
        """Move the execution records written since the last call into `executions`."""
        try:
            got = self.recorder.drain()
        except (RedisError, OSError):
            self.errors += 1
            return
        with self._lock:
            self.executions.extend(got)
