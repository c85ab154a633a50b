"""Live-broker fixtures: real Redis, real PostgreSQL, real worker subprocesses."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from app.fleet.fleets import stop_process_groups
from app.fleet.worker import worker_argv
from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import create_app
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[2]
StartWorker = Callable[..., str]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Everything under tests/live is a live test."""
    for item in items:
        if "tests/live/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.live)


@pytest.fixture
def start_worker(live_settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    """Start role workers as subprocesses through Celery's own CLI (with the role's argv
    from gamesched), loading the test tasks too; returns the node name once it answers."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, **live_settings.to_env()}

    def start(role: str, name: str, concurrency: int | None = None) -> str:
        node = f"{name}@live"
        argv = worker_argv(live_settings, role, concurrency, node, "INFO")
        cmd = [sys.executable, "-m", "celery", "-A", "app.tasking.entry", *argv,
               "-I", "tests.live.tasks"]
        with open(tmp_path / f"{name}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        app = create_app(live_settings)
        wait_for(lambda: node in live_workers(app, timeout=0.5), timeout=60,
                 what=f"worker {node} to answer")
        return node

    yield start
    stop_process_groups(procs)
