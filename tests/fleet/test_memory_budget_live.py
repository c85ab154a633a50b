"""Memory budgets on real workers: a job that really allocates past its worker's budget is
stopped and reported, the worker replaced, and the jobs around it all done; for a
thread-pool worker, a prefork worker and the controller, each at its role's default
budget."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from celery import Celery

from app.fleet.fleets import stop_process_groups
from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for

HOG_MB = 600  # past every role's default budget
SMALL = 6


def start(settings: Settings, command: list[str], node: str,
          log: Path) -> subprocess.Popen[bytes]:
    """``gamesched <command>`` with the test tasks loaded, once it answers as `node`."""
    env = {**os.environ, **settings.to_env()}
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.launch", *command, "--hostname", node,
             "--loglevel", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    app = create_app(settings)
    wait_for(lambda: node in live_workers(app, timeout=0.5), timeout=60,
             what=f"{node} to answer")
    return proc


def children(app: Celery, node: str) -> set[int]:
    """The process ids of `node`'s prefork children (none for a thread pool or solo)."""
    stats = app.control.inspect(destination=[node], timeout=2.0).stats() or {}
    processes = stats.get(node, {}).get("pool", {}).get("processes", [])
    return {int(pid) for pid in processes if isinstance(pid, int)}


@pytest.mark.parametrize(("command", "queue", "role"), [
    (["worker", "--role", "player"], "player", "player"),  # a thread pool
    (["worker", "--role", "ai", "--concurrency", "2"], "ai", "ai"),  # prefork
    (["controller", "--schedule", "{tmp}/beat"], "control", "control"),  # solo, with beat
])
def test_a_job_past_the_budget_is_stopped_and_its_worker_replaced_losing_nothing_else(
        live_settings: Settings, tmp_path: Path, command: list[str], queue: str,
        role: str) -> None:
    log = tmp_path / "worker.log"
    command = [part.replace("{tmp}", str(tmp_path)) for part in command]
    node = f"{role}-budget@live"
    proc = start(live_settings, command, node, log)
    app = create_app(live_settings)
    before = children(app, node)

    def send(name: str, mb: int, hold_s: float) -> Path:
        marker = tmp_path / name
        app.send_task("tests.hog", args=(mb, hold_s, str(marker)), queue=queue)
        return marker

    try:
        big = send("big", HOG_MB, 30.0)
        wait_for(lambda: Path(f"{big}.started").exists(), timeout=30, what="the big job")
        small = [send(f"small-{n}", 1, 0.2) for n in range(SMALL)]
        wait_for(lambda: "stopped job tests.hog" in log.read_text(errors="replace"),
                 timeout=30, what="the guard to stop the big job")
        wait_for(lambda: all(Path(f"{m}.done").exists() for m in small), timeout=60,
                 what="every small job sent beside it")
        text = log.read_text(errors="replace")
        budget = live_settings.budget(role).memory_mb
        assert f"past its budget of {budget} MiB" in text
        assert "MemoryBudgetExceeded" in text  # the job failed, as a task that raised
        assert not Path(f"{big}.done").exists()
        assert proc.poll() is None
        if role == "ai":  # Celery replaced the child; the other child carried on
            wait_for(lambda: len(children(app, node) & before) == 1
                     and len(children(app, node)) == 2, timeout=30,
                     what="the child to be replaced")
        else:  # the same process, started again
            wait_for(lambda: log.read_text(errors="replace").count(" ready.") >= 2,
                     timeout=60, what="the worker to start again")
        after = send("after", 1, 0.0)
        wait_for(lambda: Path(f"{after}.done").exists(), timeout=60,
                 what="the replaced worker to run a job")
    finally:
        stop_process_groups([proc])
