"""The controller's AI concurrency action on a running worker: Celery's pool_shrink and
pool_grow, through remote control, really change an AI worker's prefork pool."""

from __future__ import annotations

from celery import Celery

from app.settings import Settings
from app.tasking.broker import pool_sizes, resize_pools
from app.tasking.factory import GameschedCelery, create_app
from tests.subprocesses import StartWorker
from tests.waiting import wait_for
from workers.control import PoolKeeper


def resize(app: GameschedCelery, target: int) -> dict[str, int]:
    """`resize_pools` until a worker answers (an unanswered ask sends nothing)."""
    before: dict[str, int] = {}

    def answered() -> bool:
        before.update(resize_pools(app, "ai", target))
        return bool(before)

    wait_for(answered, timeout=30, what="the AI worker to answer")
    return before


def test_a_running_ai_workers_pool_shrinks_and_grows_to_the_size_asked(
        live_settings: Settings, start_worker: StartWorker) -> None:
    node = start_worker("ai", "ai-pool", concurrency=2)
    start_worker("player", "player-pool")  # a thread-pool worker: not resized, not counted
    app = create_app(live_settings)
    wait_for(lambda: pool_sizes(app, "ai") == {node: 2}, timeout=30, what="two AI processes")
    assert resize(app, 1) == {node: 2}
    wait_for(lambda: pool_sizes(app, "ai") == {node: 1}, timeout=30, what="one AI process")
    assert resize(app, 3) == {node: 1}
    wait_for(lambda: pool_sizes(app, "ai") == {node: 3}, timeout=30, what="three AI processes")
    assert resize(app, 3) == {node: 3}  # already there: nothing sent


APP = Celery("pool-keeper")  # never asked: the resize is recorded, not sent


def test_the_controller_asks_for_a_new_size_at_once_and_again_every_ten_ticks() -> None:
    asked: list[int] = []
    keeper = PoolKeeper(lambda app, processes: asked.append(processes))

    def tick(processes: int) -> None:
        keeper.keep(APP, processes)
        if keeper._running is not None:
            keeper._running.join()

    for processes in [2, 2, 1, 1, 1, 2] + [2] * 10:
        tick(processes)
    assert asked == [2, 1, 2, 2]  # each change at once; the unchanged size rechecked
