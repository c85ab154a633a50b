"""Memory budgets: the guard stops the longest-running job once past the budget, acts once
per crossing, and has a one-process worker started again as the same process; the
embedded fleet stops the job and carries on."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import MemoryBudgetExceeded
from app.fleet.fleets import EmbeddedFleet, stop_process_groups
from app.fleet.jobs import RunningJobs
from app.fleet.memoryguard import MemoryGuard, resident_mb
from app.settings import Settings, load_settings
from app.tasking.factory import create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for


class Busy:
    """A thread that runs a job (Python instructions until told to end), as a pool thread
    runs a task: its begin and end told to `jobs`."""

    def __init__(self, jobs: RunningJobs, task_id: str) -> None:
        self.jobs = jobs
        self.task_id = task_id
        self.begun = threading.Event()
        self.end = threading.Event()
        self.raised: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()
        self.begun.wait(5)

    def _run(self) -> None:
        self.jobs.began(task_id=self.task_id, task="tests.busy")
        try:
            self.begun.set()
            while not self.end.is_set():
                time.sleep(0.001)
        except MemoryBudgetExceeded as exc:
            self.raised = exc
        finally:
            self.jobs.ended()


@pytest.fixture
def jobs() -> Iterator[RunningJobs]:
    running = RunningJobs()
    yield running
    assert not running.running()


def test_the_guard_stops_the_longest_running_job_once_past_the_budget(
        jobs: RunningJobs) -> None:
    used = [100.0]
    replaced: list[bool] = []
    guard = MemoryGuard(128, jobs, measure=lambda: used[0], over=lambda: replaced.append(True))
    first = Busy(jobs, "first")
    second = Busy(jobs, "second")
    assert not guard.check() and not guard.tripped.is_set()
    used[0] = 128.5
    assert guard.check() and guard.tripped.is_set() and replaced == [True]
    first.thread.join(5)
    assert isinstance(first.raised, MemoryBudgetExceeded)
    assert second.thread.is_alive() and second.raised is None  # only the longest
    second.end.set()
    second.thread.join(5)


def test_the_guard_acts_once_per_crossing_of_the_budget(jobs: RunningJobs) -> None:
    used = [300.0]
    acted: list[bool] = []
    guard = MemoryGuard(256, jobs, measure=lambda: used[0], over=lambda: acted.append(True))
    assert guard.check() and guard.check()  # still past it: no second action
    assert acted == [True]
    used[0] = 200.0
    assert not guard.check()
    used[0] = 257.0
    assert guard.check() and acted == [True, True]  # past it again


def test_a_guard_past_its_budget_with_no_job_running_only_has_the_process_replaced(
        jobs: RunningJobs) -> None:
    replaced: list[bool] = []
    guard = MemoryGuard(64, jobs, measure=lambda: 65.0, over=lambda: replaced.append(True))
    assert guard.check() and replaced == [True]


def test_the_guard_thread_checks_until_stopped() -> None:
    stops: list[bool] = []
    guard = MemoryGuard(10_000, every_s=0.01, over=lambda: stops.append(True))
    guard.start()
    guard.stop()
    assert stops == [] and 10 < resident_mb() < 10_000


def test_a_thread_pool_worker_past_its_budget_starts_again_as_the_same_process(
        live_settings: Settings, tmp_path: Path) -> None:
    log = tmp_path / "player.log"
    # every worker process is past 32 MiB: it finishes, starts again, and so on
    env = {**os.environ, **live_settings.to_env(), "GAMESCHED_PLAYER__MEMORY_MB": "32"}
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--role", "player",
             "--hostname", "guarded@test"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: log.read_text(errors="replace").count("ready.") >= 2, timeout=90,
                 what="the worker to pass its budget and start again")
        text = log.read_text(errors="replace")
        assert "past its budget of 32 MiB: no job was running; replacing the worker" in text
        assert worker.poll() is None  # the same process id, running again
        # asked to stop, even while it stops on its own to be replaced, it stays stopped
        os.killpg(worker.pid, signal.SIGTERM)
        worker.wait(timeout=30)
    finally:
        stop_process_groups([worker])


def test_the_embedded_fleet_stops_a_job_past_its_budget_and_runs_the_rest(
        tmp_path: Path) -> None:
    from kombu.transport.memory import Channel

    import tests.tasks  # noqa: F401  (the hog task, registered with the apps made below)

    Channel.queues.clear()
    budget = int(resident_mb()) + 200  # this process runs the fleet: what it holds, and more
    settings = load_settings(database_url=f"sqlite:///{tmp_path / 'gs.db'}",
                             all={"concurrency": 6, "memory_mb": budget})
    app = create_app(settings)

    def send(name: str, mb: int, hold_s: float) -> Path:
        marker = tmp_path / name
        app.send_task("tests.hog", args=(mb, hold_s, str(marker)), queue="background")
        return marker

    with EmbeddedFleet(settings, roles=("background",)) as fleet:
        big = send("big", 600, 30.0)
        wait_for(fleet.memory_guard.tripped.is_set, timeout=30, what="the guard to act")
        small = [send(f"small-{n}", 1, 0.0) for n in range(3)]
        wait_for(lambda: all(Path(f"{m}.done").exists() for m in small), timeout=30,
                 what="the jobs after it")
        assert Path(f"{big}.started").exists() and not Path(f"{big}.done").exists()
