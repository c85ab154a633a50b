"""The server's CPU, as the controller reads it: what the server side spends of this
machine (gamesched's workers and controller, Redis and PostgreSQL), not the machine's
whole load.  A game server, a load generator or anything else sharing the machine is
left out: throttling the server's own work cannot make room for them, and they should not
make it throttle.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import Protocol

import psutil

SERVICES = ("redis-server", "postgres")  # process names of the server's services
ROLES = ("worker", "controller")  # gamesched commands that run server work
LAUNCHERS = ("gamesched", "app.cli", "celery")  # how a gamesched command is started


def is_server(name: str, cmdline: Sequence[str]) -> bool:
    """Whether a process of this name and command line is part of the server side."""
    if name in SERVICES:
        return True
    launched = any(part.endswith(LAUNCHERS) for part in cmdline)
    return launched and any(part in ROLES for part in cmdline)


class ServerCpu:
    """The server's share of the machine's CPU (0..1) between two calls of `measure`; a
    process first seen counts from its second call.

    A process is told apart by its name and command line once, not every call: a server
    process is kept, another one remembered as not the server's once it is `SETTLED_S`
    old (a child just forked still carries its parent's command line until it execs)."""

    SETTLED_S = 2.0

    def __init__(self, matches: Callable[[str, Sequence[str]], bool] = is_server) -> None:
        self._matches = matches
        self._kept: dict[int, psutil.Process] = {}
        self._others: set[int] = set()
        self._cores = psutil.cpu_count() or 1

    def measure(self) -> float:
        """The server processes' CPU since the last call, as a share of every core."""
        percent, kept, others = 0.0, {}, set()
        settled = time.time() - self.SETTLED_S
        for pid in psutil.pids():
            if pid in self._others:
                others.add(pid)
                continue
            proc = self._kept.get(pid) or self._server_process(pid, settled, others)
            if proc is None:
                continue
            try:
                percent += proc.cpu_percent(None)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            kept[pid] = proc
        self._kept, self._others = kept, others
        return min(1.0, percent / 100.0 / self._cores)

    def _server_process(self, pid: int, settled: float, others: set[int]) -> psutil.Process | None:
        """The process `pid` when it is the server's; else None (and, once it is settled,
        `pid` goes into `others`)."""
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                if self._matches(proc.name(), proc.cmdline()):
                    return proc
                if proc.create_time() < settled:
                    others.add(pid)
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            others.add(pid)  # gone (its pid is not listed again) or never readable
        return None


class MachineCpu:
    """The whole machine's CPU (0..1) between two calls of `measure`."""

    def measure(self) -> float:
        """Every process's CPU since the last call, as a share of every core."""
        return float(psutil.cpu_percent(interval=None)) / 100.0


class CpuMeter(Protocol):
    """What the controller reads CPU with."""

    def measure(self) -> float:
        """CPU since the last call, as a share of every core."""


def meter(kind: str) -> CpuMeter:
    """The meter of `GAMESCHED_CONTROLLER_CPU`: ``server`` or ``machine``."""
    return MachineCpu() if kind == "machine" else ServerCpu()
