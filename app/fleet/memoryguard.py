"""The memory budget of a thread-pool worker.

A prefork worker keeps its budget with Celery's ``--max-memory-per-child``: a child past it
is replaced after its task.  A thread-pool worker is one process, so it keeps its budget
itself: `MemoryGuard` reads the process's resident memory every few seconds and, once past
the budget, asks Celery for a warm shutdown (no new work; what runs finishes and is
acknowledged).  ``gamesched worker`` then starts again as a fresh process, with the same
command line and process id, so a supervisor sees one worker that never stopped.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable

import psutil

log = logging.getLogger(__name__)

CHECK_EVERY_S = 5.0


def resident_mb() -> float:
    """This process's resident memory in MiB."""
    return float(psutil.Process().memory_info().rss) / (1024 * 1024)


def warm_shutdown() -> None:
    """Ask the Celery worker in this process to stop taking work and finish what runs."""
    os.kill(os.getpid(), signal.SIGTERM)


class MemoryGuard:
    """Stop this worker (warm shutdown) once its resident memory passes `budget_mb`."""

    def __init__(self, budget_mb: int, every_s: float = CHECK_EVERY_S,
                 measure: Callable[[], float] = resident_mb,
                 over: Callable[[], None] | None = None) -> None:
        self.budget_mb = budget_mb
        self.every_s = every_s
        self.measure = measure
        self.over = over or warm_shutdown
        self.tripped = threading.Event()
        self._stop = threading.Event()

    def start(self, **_: object) -> None:
        """Check in a daemon thread until the budget is passed or `stop` is called (a
        Celery ``worker_ready`` receiver)."""
        threading.Thread(target=self._run, name="memory-guard", daemon=True).start()

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()

    def check(self) -> bool:
        """True, and the warm shutdown asked for, when the process is past its budget."""
        used = self.measure()
        if used <= self.budget_mb:
            return False
        log.warning("worker at %.0f MiB, past its budget of %d MiB: finishing its tasks "
                    "and starting again", used, self.budget_mb)
        self.tripped.set()
        self.over()
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.check():
                return
