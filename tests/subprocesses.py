"""What live tests need to run gamesched in subprocesses: the project's folder, the module of
test-only tasks that worker subprocesses load by name, and a free port and a metrics scrape."""

from __future__ import annotations

import socket
import urllib.request
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded into workers with Celery's ``-I`` (subprocesses) or `celery_includes` (in-process).
TEST_TASKS = "tests.tasks"

# `start_worker(role, name, concurrency=None)`: start a role's worker subprocess and return
# its node name once it answers (the fixture in tests/conftest.py).
StartWorker = Callable[..., str]


def free_port() -> int:
    """A TCP port nobody listens on now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> str | None:
    """The metrics text (empty before the first task), or None while nothing answers."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
            return str(r.read().decode())
    except OSError:
        return None
