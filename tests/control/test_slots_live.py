"""The controller's concurrency action on running workers: `gamesched_slots`, through
Celery's remote control, really limits the AI or background tasks a prefork worker runs at
once, and the controller's tick sets it."""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from celery import Celery

from app.settings import RoleBudget, Settings
from app.tasking.factory import create_app
from app.tasking.slots import set_slots, slots
from tests.instances.live import start_controller
from tests.subprocesses import StartWorker
from tests.waiting import wait_for
from workers.control import SlotKeeper


@pytest.mark.parametrize("role", ["ai", "background"])
def test_a_running_worker_runs_only_as_many_tasks_at_once_as_its_slots(
        role: str, live_settings: Settings, start_worker: StartWorker,
        redis_client: redis.Redis) -> None:
    node = start_worker(role, f"{role}-slots", concurrency=2)
    start_worker("player", "player-slots")  # consumes another queue: not asked, not counted
    app = create_app(live_settings)
    wait_for(lambda: slots(app, role) == {node: 2}, timeout=30, what="two slots")
    assert set_slots(app, role, 1) == {node: 2}
    wait_for(lambda: slots(app, role) == {node: 1}, timeout=30, what="one slot")
    started, release = f"started-{uuid.uuid4()}", f"release-{uuid.uuid4()}"
    for _ in range(2):  # acknowledged late, as AI and background tasks are
        app.send_task("tests.block", args=(started, release), queue=role)
    wait_for(lambda: redis_client.llen(started) == 1, timeout=30, what="the first task")
    deadline = time.monotonic() + 1.0  # a free process, and a second task waiting
    while time.monotonic() < deadline:
        assert redis_client.llen(started) == 1
        time.sleep(0.05)
    assert set_slots(app, role, 2) == {node: 1}
    wait_for(lambda: redis_client.llen(started) == 2, timeout=30,
             what="the second task, once a second slot opened")
    redis_client.rpush(release, b"1", b"1")
    assert set_slots(app, role, 2) == {node: 2}  # already there: nothing sent


def test_the_controller_gives_a_background_worker_one_slot_while_background_gives_way(
        live_settings: Settings, start_worker: StartWorker, tmp_path: Path) -> None:
    # A cap under any CPU the machine shows: background gives way from the first tick.
    settings = live_settings.model_copy(update={
        "cpu_cap": 0.01, "background": RoleBudget(concurrency=2, memory_mb=256, nice=10)})
    node = start_worker("background", "background-kept", concurrency=2)
    app = create_app(settings)
    wait_for(lambda: slots(app, "background") == {node: 2}, timeout=30, what="two slots")
    proc = start_controller(settings, tmp_path)
    try:
        wait_for(lambda: slots(app, "background") == {node: 1}, timeout=60,
                 what="the controller to give the background worker one slot")
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
    assert "background workers' slots set to 1" in (tmp_path / "controller.log").read_text()


def test_a_worker_consuming_ai_among_other_queues_keeps_its_slots(
        live_settings: Settings, start_worker: StartWorker) -> None:
    node = start_worker("all", "all-slots")  # its slots are every queue's
    app = create_app(live_settings)
    stats = app.control.inspect(destination=[node], timeout=5.0).stats() or {}
    assert stats[node]["prefetch_count"] == 6  # it answers, with a slot per queue
    assert slots(app, "ai") == {} and set_slots(app, "ai", 1) == {}
    stats = app.control.inspect(destination=[node], timeout=5.0).stats() or {}
    assert stats[node]["prefetch_count"] == 6


APP = Celery("slot-keeper")  # never asked: the change is recorded, not sent


def test_the_controller_asks_for_new_slots_at_once_and_again_every_ten_ticks() -> None:
    asked: list[int] = []
    keeper = SlotKeeper(lambda app, n: asked.append(n))

    def tick(n: int) -> None:
        keeper.keep(APP, n)
        if keeper._running is not None:
            keeper._running.join()

    for n in [2, 2, 1, 1, 1, 2] + [2] * 10:
        tick(n)
    assert asked == [2, 1, 2, 2]  # each change at once; the unchanged number rechecked
