"""Test-only tasks, loaded into worker subprocesses with Celery's ``-I tests.tasks`` and into
the in-process `celery_worker` through `celery_includes`."""

from __future__ import annotations

import os
import time
from pathlib import Path

import redis
from celery import Task, shared_task

from tests.services import REDIS_URL


def _redis() -> redis.Redis:
    # no read timeout: redis-py's default (5 s) would end `block`'s wait early
    return redis.Redis.from_url(os.environ.get("GAMESCHED_BROKER_URL", REDIS_URL),
                                socket_timeout=None)


@shared_task(name="tests.block", acks_late=True)  # as player tasks are
def block(started_key: str, release_key: str) -> None:
    """Say it started, then hold the worker until the test releases it (or 60 s pass)."""
    client = _redis()
    client.rpush(started_key, b"1")
    client.blpop([release_key], timeout=60)


@shared_task(name="tests.mark", acks_late=True)
def mark(order_key: str, label: str) -> None:
    """Append `label` to the list at `order_key`: the order tasks ran in."""
    _redis().rpush(order_key, label.encode())


@shared_task(name="tests.hold", acks_late=True)
def hold(started_path: str, release_path: str) -> None:
    """Create `started_path`, then hold the worker until `release_path` exists (or 60 s
    pass), with no broker connection of its own: it outlives the broker going away."""
    Path(started_path).touch()
    deadline = time.monotonic() + 60
    while not Path(release_path).exists() and time.monotonic() < deadline:
        time.sleep(0.05)


@shared_task(name="tests.hog")  # acknowledged on receipt, as AI and background tasks are
def hog(mb: int, hold_s: float, marker: str) -> None:
    """Take `mb` MiB, a MiB at a time, and hold it `hold_s`; ``<marker>.started`` and
    ``<marker>.done`` are created as it begins and ends (a job stopped ends without)."""
    Path(f"{marker}.started").touch()
    held = [b"\x01" * (1 << 20) for _ in range(mb)]  # written: resident, not only mapped
    deadline = time.monotonic() + hold_s
    while time.monotonic() < deadline:
        time.sleep(0.01)
    Path(f"{marker}.done").write_text(str(len(held)))


@shared_task(name="tests.retry_once", bind=True, acks_late=True)
def retry_once(self: Task, order_key: str, countdown: float) -> None:
    """Ask to be run again `countdown` seconds later the first time; the second time,
    append how many retries it took to the list at `order_key`."""
    if self.request.retries == 0:
        raise self.retry(countdown=countdown)
    _redis().rpush(order_key, str(self.request.retries).encode())
