"""The memory budget of thread-pool workers: checked in-process, and on a real worker that
starts again as a fresh process once past it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.fleet.fleets import stop_process_groups
from app.fleet.memoryguard import MemoryGuard, resident_mb
from tests.subprocesses import ROOT
from tests.waiting import wait_for


def test_the_guard_acts_once_past_the_budget_only() -> None:
    used = [100.0]
    stops: list[bool] = []
    guard = MemoryGuard(128, measure=lambda: used[0], over=lambda: stops.append(True))
    assert not guard.check() and not guard.tripped.is_set() and stops == []
    used[0] = 128.5
    assert guard.check() and guard.tripped.is_set() and stops == [True]


def test_the_guard_thread_checks_until_stopped() -> None:
    stops: list[bool] = []
    guard = MemoryGuard(10_000, every_s=0.01, over=lambda: stops.append(True))
    guard.start()
    guard.stop()
    assert stops == [] and 10 < resident_mb() < 10_000


def test_a_thread_pool_worker_past_its_budget_starts_again_as_the_same_process(
        tmp_path: Path) -> None:
    log = tmp_path / "player.log"
    # every worker process is past 32 MiB: it finishes, starts again, and so on
    env = {**os.environ, "GAMESCHED_PLAYER__MEMORY_MB": "32",
           "GAMESCHED_BROKER_URL": "memory://", "GAMESCHED_DATABASE_URL": "sqlite://"}
    with open(log, "ab") as out:
        worker = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--role", "player",
             "--hostname", "guarded@test"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: log.read_text(errors="replace").count("ready.") >= 2, timeout=90,
                 what="the worker to pass its budget and start again")
        text = log.read_text(errors="replace")
        assert "past its budget of 32 MiB" in text
        assert worker.poll() is None  # the same process id, running again
    finally:
        stop_process_groups([worker])
