"""Memory budgets: a job that takes its worker past the budget is stopped and reported, and
the worker replaced; nothing else is lost.

Every process that runs jobs keeps a `MemoryGuard`: a thread that reads the process's
resident memory every `CHECK_EVERY_S`.  Once it is past the budget, the guard stops the job
that has run longest (`app.fleet.jobs`: it fails with ``MemoryBudgetExceeded``, as any task
that raised), logs the job, the memory and the budget, counts it in
``gamesched_memory_stops_total``, and has the worker replaced:

- a thread-pool or solo worker (player, physics, transactions, ``all``, the controller)
  asks Celery for a warm shutdown: no new work, the jobs still running finish and are
  acknowledged, the messages it prefetched go back to their queue; ``gamesched worker``
  (or ``controller``) then starts again as a fresh process with the same command line and
  process id, so a supervisor sees one worker that never stopped;
- a prefork child (AI, background) ends after the stopped job: Celery's
  ``--max-memory-per-child``, the same budget, replaces a child whose memory peaked past
  it, and the worker's other children carry on;
- the embedded fleet runs in the process of the command that started it, which is not
  replaced: the job is stopped, and the guard acts again once memory fell back under the
  budget and passes it again.

A job blocked in one long C call (a big read, a sleep) stops when the call returns; its
worker is replaced all the same.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable

import psutil
from celery.platforms import EX_OK
from celery.worker import state as worker_state

from app.errors import MemoryBudgetExceeded
from app.fleet.jobs import RunningJobs

log = logging.getLogger(__name__)

CHECK_EVERY_S = 0.1
_PROCESS: dict[int, psutil.Process] = {}  # this process's, by pid (a forked child has its own)


def resident_mb() -> float:
    """This process's resident memory in MiB."""
    pid = os.getpid()
    process = _PROCESS.get(pid) or _PROCESS.setdefault(pid, psutil.Process(pid))
    return float(process.memory_info().rss) / (1024 * 1024)


def warm_shutdown() -> None:
    """Ask the Celery worker in this process to stop taking work and finish what runs: what
    its SIGTERM handler does, without the signal, so that a SIGTERM the worker gets is
    always someone asking it to stop (`app.fleet.worker` does not start it again then).
    Its consumer loop sees the request within a second."""
    worker_state.should_stop = EX_OK


class MemoryGuard:
    """Stop the longest-running job of `jobs` once this process passes `budget_mb`, and
    call `over` (a warm shutdown by default; None: the process is not replaced)."""

    def __init__(self, budget_mb: int, jobs: RunningJobs | None = None, *, label: str = "",
                 every_s: float = CHECK_EVERY_S,
                 measure: Callable[[], float] = resident_mb,
                 over: Callable[[], None] | None = warm_shutdown,
                 then: str = "replacing the worker") -> None:
        self.budget_mb = budget_mb
        self.jobs = jobs or RunningJobs()
        self.label = label  # the role, for the log and the metric
        self.then = then  # what happens to the process next, for the log
        self.every_s = every_s
        self.measure = measure
        self.over = over
        self.tripped = threading.Event()
        self._armed = True
        self._stop = threading.Event()

    def start(self, **_: object) -> MemoryGuard:
        """Check in a daemon thread until `stop` is called, or until the process is to be
        replaced (a Celery ``worker_ready`` or ``worker_process_init`` receiver)."""
        threading.Thread(target=self._run, name="memory-guard", daemon=True).start()
        return self

    def stop(self) -> None:
        """Stop checking."""
        self._stop.set()

    def check(self) -> bool:
        """True when the process is past its budget; the first check past it stops a job
        and has the process replaced (once under the budget again, the guard re-arms)."""
        used = self.measure()
        if used <= self.budget_mb:
            self._armed = True
            return False
        if self._armed:
            self._armed = False
            self._act(used)
        return True

    def _act(self, used: float) -> None:
        job = self.jobs.stop_longest(MemoryBudgetExceeded)
        what = f"stopped job {job.task}[{job.task_id}]" if job else "no job was running"
        log.warning("%s worker at %.0f MiB, past its budget of %d MiB: %s; %s", self.label,
                    used, self.budget_mb, what, self.then)
        # (imported here: prometheus-client goes after the CLI set up its multiprocess mode)
        from app.observe.metrics import metrics

        metrics().memory_stops.labels(self.label or "worker").inc()
        self.tripped.set()
        if self.over is not None:
            self.over()

    def _run(self) -> None:
        while not self._stop.wait(self.every_s):
            if self.check() and self.over is not None:
                return
