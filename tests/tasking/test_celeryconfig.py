"""The Celery configuration built from settings: queues, routes, priorities, delivery."""

from __future__ import annotations

import celeryconfig
from app.protocol.queues import TASK_QUEUES, Queue, task_module, task_modules
from app.settings import load_settings
from app.tasking.factory import create_app

REDIS = "redis://127.0.0.1:6379/9"


def test_every_queue_is_declared_and_every_task_routed() -> None:
    config = celeryconfig.build(load_settings(broker_url=REDIS))
    assert {q.name for q in config["task_queues"]} == {q.value for q in Queue}
    assert config["task_routes"] == {t: {"queue": q.value} for t, q in TASK_QUEUES.items()}


def test_redis_priority_steps_are_emulated_with_a_middle_default() -> None:
    config = celeryconfig.build(load_settings(broker_url=REDIS, visibility_timeout_s=300))
    options = config["broker_transport_options"]
    assert options["priority_steps"] == list(range(10))
    assert "sep" not in options  # kombu's own, as a client with only the broker URL has
    assert options["queue_order_strategy"] == "priority"
    assert options["visibility_timeout"] == 300
    assert config["task_default_priority"] == 5
    assert config["worker_prefetch_multiplier"] == 1


def test_latency_bound_ai_and_background_tasks_ack_late_so_a_worker_holds_its_slots() -> None:
    app = create_app(load_settings(broker_url=REDIS))
    app.loader.import_default_modules()
    for name, queue in TASK_QUEUES.items():
        late = queue in (Queue.PLAYER, Queue.PHYSICS, Queue.TRANSACTIONS, Queue.AI,
                         Queue.BACKGROUND)
        assert app.tasks[name].acks_late is late, name


def test_never_pickle() -> None:
    config = celeryconfig.build(load_settings(broker_url=REDIS))
    assert config["task_serializer"] == "json"
    assert "pickle" not in config["accept_content"]


def test_transactions_ack_late_and_reject_on_worker_lost() -> None:
    app = create_app(load_settings())
    app.loader.import_default_modules()
    task = app.tasks["gamesched.transactions.apply"]
    assert task.acks_late and task.reject_on_worker_lost


def test_every_routed_task_exists_in_a_worker_module() -> None:
    app = create_app(load_settings())
    app.loader.import_default_modules()
    assert set(TASK_QUEUES) <= set(app.tasks)


def test_naive_baseline_is_one_queue_default_prefetch_no_priorities() -> None:
    config = celeryconfig.build(load_settings(broker_url=REDIS, naive=True))
    assert [q.name for q in config["task_queues"]] == ["celery"]
    assert config["task_routes"] == {}
    assert config["worker_prefetch_multiplier"] == 4
    assert "priority_steps" not in config["broker_transport_options"]
    assert config["task_annotations"] is None


def test_textbook_baseline_sends_json_with_default_prefetch_and_early_acks() -> None:
    settings = load_settings(broker_url=REDIS, naive=True, textbook=True)
    config = celeryconfig.build(settings)
    assert [q.name for q in config["task_queues"]] == ["celery"]
    assert config["task_default_queue"] == "celery" and config["task_routes"] == {}
    assert config["task_serializer"] == "json"
    assert config["worker_prefetch_multiplier"] == 4
    assert config["task_acks_late"] is False and config["task_annotations"] is None
    app = create_app(settings)
    app.loader.import_default_modules()
    sent = ["gamesched.textbook.apply_state", "gamesched.player.session_op",
            "gamesched.physics.step_region", "gamesched.ai.decide",
            "gamesched.background.snapshot", "gamesched.background.analytics"]
    assert [app.tasks[name].acks_late for name in sent] == [False] * len(sent)


def test_controller_tick_is_scheduled_about_once_a_second() -> None:
    config = celeryconfig.build(load_settings())
    tick = config["beat_schedule"]["controller-tick"]
    assert tick["task"] == "gamesched.control.tick"
    assert tick["schedule"] == 1.0
    assert tick["options"]["queue"] == "control"


def test_factory_has_no_global_side_effects() -> None:
    from celery import current_app

    app = create_app(load_settings())
    assert current_app._get_current_object() is not app


def test_each_task_is_defined_in_the_module_its_name_names() -> None:
    app = create_app(load_settings(broker_url=REDIS))
    app.loader.import_default_modules()  # every task module: celeryconfig.WORKER_MODULES
    assert sorted({task_module(t) for t in TASK_QUEUES}) == celeryconfig.WORKER_MODULES
    for task in TASK_QUEUES:
        assert type(app.tasks[task]).__module__ == task_module(task), task


def test_a_worker_imports_the_modules_of_the_queues_it_consumes() -> None:
    assert task_modules(["player.i0", "player"]) == ["workers.player", "workers.textbook"]
    assert task_modules(["physics.1"]) == ["workers.physics"]
    assert task_modules(["control"]) == ["workers.control", "workers.transactions"]  # sweeps
    assert task_modules(["celery"]) == celeryconfig.WORKER_MODULES  # the baselines' queue
    assert task_modules([]) == []
