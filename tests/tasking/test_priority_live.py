"""Priority inside one queue on the live broker, with a busy prefetch-1 worker."""

from __future__ import annotations

import uuid

import pytest
import redis
from celery.worker import WorkController

from app.settings import Settings
from app.tasking.factory import create_app
from tests.waiting import wait_for


@pytest.mark.worker_role("player")
def test_priority_zero_sent_after_fifty_low_ones_runs_before_them(
    live_settings: Settings, celery_worker: WorkController, redis_client: redis.Redis
) -> None:
    app = create_app(live_settings)
    run = uuid.uuid4().hex[:8]
    started, release, order = f"{run}:started", f"{run}:release", f"{run}:order"
    app.send_task("tests.block", args=[started, release], queue="player", priority=5)
    wait_for(lambda: redis_client.llen(started), what="the blocking task to start")
    for i in range(50):
        app.send_task("tests.mark", args=[order, f"low-{i}"], queue="player", priority=9)
    app.send_task("tests.mark", args=[order, "urgent"], queue="player", priority=0)
    assert redis_client.llen(order) == 0, "the busy worker ran something it should not have"
    redis_client.rpush(release, b"go")
    wait_for(lambda: redis_client.llen(order) == 51, timeout=60, what="all 51 marks")
    ran = [label.decode() for label in redis_client.lrange(order, 0, -1)]
    assert ran[0] == "urgent"
    assert ran[1:] == [f"low-{i}" for i in range(50)]
