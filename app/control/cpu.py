"""The server's CPU, as the controller reads it: what the server side spends of this
machine (gamesched's workers and controller, Redis and PostgreSQL), not the machine's
whole load.  A game server, a load generator or anything else sharing the machine is
left out: throttling the server's own work cannot make room for them, and they should not
make it throttle.
"""

from __future__ import annotations

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
    process first seen counts from its second call."""

    def __init__(self, matches: Callable[[str, Sequence[str]], bool] = is_server) -> None:
        self._matches = matches
        self._kept: dict[int, psutil.Process] = {}
        self._cores = psutil.cpu_count() or 1

    def measure(self) -> float:
        """The server processes' CPU since the last call, as a share of every core."""
        percent, kept = 0.0, {}
        for proc in psutil.process_iter(["name", "cmdline"]):
            if not self._matches(proc.info["name"] or "", proc.info["cmdline"] or ()):
                continue
            mine = self._kept.get(proc.pid, proc)
            try:
                percent += mine.cpu_percent(None)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            kept[proc.pid] = mine
        self._kept = kept
        return min(1.0, percent / 100.0 / self._cores)


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
