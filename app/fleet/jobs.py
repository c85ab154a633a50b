"""The jobs this process is running, by thread, so that another thread can stop one.

`RunningJobs` follows Celery's ``task_prerun`` and ``task_postrun`` signals, which a worker
sends from the thread that runs the task (a pool thread, or the main thread of a prefork
child or a solo worker).  `RunningJobs.stop_longest` raises an exception in the thread of
the job that has run longest: the job stops at its next Python instruction and fails as
any task that raised (a job blocked in one long C call stops when the call returns).
"""

from __future__ import annotations

import ctypes
import threading
import time
from dataclasses import dataclass
from typing import Any

from celery.signals import task_postrun, task_prerun


@dataclass(frozen=True)
class Job:
    """A task run in progress: its thread, name, id and when it began (monotonic)."""

    thread: int
    task: str
    task_id: str
    began: float


class RunningJobs:
    """The jobs running in this process, one per thread."""

    def __init__(self) -> None:
        self._jobs: dict[int, Job] = {}
        self._lock = threading.Lock()

    def connect(self) -> RunningJobs:
        """Follow the tasks this process runs from now on; returns self."""
        task_prerun.connect(self.began, weak=False)
        task_postrun.connect(self.ended, weak=False)
        return self

    def began(self, task_id: str = "", task: Any = None, **_: Any) -> None:
        """A task began in the calling thread (a ``task_prerun`` receiver)."""
        name = str(getattr(task, "name", task))
        self._jobs[threading.get_ident()] = Job(threading.get_ident(), name, str(task_id),
                                                time.monotonic())

    def ended(self, **_: Any) -> None:
        """The calling thread's task ended (a ``task_postrun`` receiver).  It waits out a
        `stop_longest` in progress, and forgets the job even if that stop's exception lands
        here, after the job's own code (Celery logs a receiver's exception and goes on)."""
        ident = threading.get_ident()
        try:
            with self._lock:  # once out, no stop can pick this job
                self._jobs.pop(ident, None)
        finally:  # a stop's exception landed first: forget the job all the same
            self._jobs.pop(ident, None)

    def running(self) -> list[Job]:
        """The jobs running now, longest first."""
        return sorted(list(self._jobs.values()), key=lambda job: job.began)

    def stop_longest(self, error: type[Exception]) -> Job | None:
        """Raise `error` (instantiated without arguments) in the thread of the job that has
        run longest; returns that job, or None when no job runs."""
        with self._lock:
            jobs = self.running()
            if not jobs:
                return None
            raise_in_thread(jobs[0].thread, error)
            return jobs[0]


_THIS_PROCESS: list[RunningJobs] = []


def this_process() -> RunningJobs:
    """The jobs running in this process (following Celery's signals from the first call)."""
    if not _THIS_PROCESS:
        _THIS_PROCESS.append(RunningJobs().connect())
    return _THIS_PROCESS[0]


def raise_in_thread(thread: int, error: type[Exception]) -> bool:
    """Raise `error` in the Python thread `thread` at its next instruction; False if no
    such thread runs."""
    found = ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(thread),
                                                       ctypes.py_object(error))
    return bool(found == 1)
