"""What live tests need to run gamesched in subprocesses: the project's folder, and the
module of test-only tasks that worker subprocesses load by name."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# Loaded into workers with Celery's ``-I`` (subprocesses) or `celery_includes` (in-process).
TEST_TASKS = "tests.tasks"

# `start_worker(role, name, concurrency=None)`: start a role's worker subprocess and return
# its node name once it answers (the fixture in tests/conftest.py).
StartWorker = Callable[..., str]
