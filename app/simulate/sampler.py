"""Once a second: CPU and memory of the worker processes, the simulator and the services,
queue depths, and the execution records the workers wrote since the last sample."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

import psutil
from kombu.exceptions import OperationalError
from redis import RedisError

from app.observe.recorder import Execution, Recorder

SERVICE_NAMES = frozenset({"redis-server", "postgres", "postmaster"})
INTERVAL_S = 1.0
MB = 1024 * 1024


@dataclass(frozen=True)
class Sample:
    """One sampling interval.  CPU figures are shares of the whole machine (0..1)."""

    at: float  # seconds since the sampler started
    fleet_cpu: float
    simulator_cpu: float
    services_cpu: float
    fleet_rss_mb: float
    role_cpu_s: dict[str, float]  # CPU seconds per second of each role's process tree
    depths: dict[str, int]


class CpuMeter:
    """CPU seconds used by a changing set of processes between two calls of `measure`."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, float], float] = {}
        self._baseline = True

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
        self._seen, self._baseline = seen, False
        return max(0.0, cpu), rss


def tree(pid: int) -> list[psutil.Process]:
    """Process `pid` and all its descendants (empty if it is gone)."""
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return []


def service_processes(pids: Iterable[int] = ()) -> list[psutil.Process]:
    """Redis and PostgreSQL processes on this machine, plus `pids` and their children."""
    found = {p.pid: p for p in psutil.process_iter(["name"])
             if (p.info.get("name") or "") in SERVICE_NAMES}
    for pid in pids:
        found |= {p.pid: p for p in tree(pid)}
    return list(found.values())


@dataclass
class Sampler:
    """A thread that samples once per `interval_s` until stopped."""

    fleet_pids: Callable[[], dict[str, int]]  # role -> worker pid, read at every sample
    depths: Callable[[], dict[str, int]]
    recorder: Recorder
    service_pids: tuple[int, ...] = ()
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
        self._measure(0.0)
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
            now = time.monotonic()
            self._sample(now - last)
            last = now

    def _sample(self, elapsed: float) -> None:
        sample = self._measure(elapsed)
        if sample is not None:
            self.samples.append(sample)
        self.collect()

    def _measure(self, elapsed: float) -> Sample | None:
        fleet_cpu, fleet_rss, roles = 0.0, 0.0, {}
        for role, pid in self.fleet_pids().items():
            cpu, rss = self._meter(role).measure(tree(pid))
            fleet_cpu, fleet_rss = fleet_cpu + cpu, fleet_rss + rss
            roles[role] = cpu / elapsed if elapsed else 0.0
        sim_cpu, _ = self._meter("simulator").measure([self._me])
        svc_cpu, _ = self._meter("services").measure(service_processes(self.service_pids))
        depths = self._depths()
        if elapsed <= 0:
            return None
        share = 1.0 / (elapsed * self.cores)
        return Sample(at=time.monotonic() - self.started, fleet_cpu=fleet_cpu * share,
                      simulator_cpu=sim_cpu * share, services_cpu=svc_cpu * share,
                      fleet_rss_mb=fleet_rss, role_cpu_s=roles, depths=depths)

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
