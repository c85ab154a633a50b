"""Worker command lines per role: queues, pool, prefetch, memory budget."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from app.errors import InvalidRequest
from app.fleet.worker import (
    consumes_directly,
    consumption,
    controller_argv,
    host_argv,
    memory_budget,
    worker_argv,
)
from app.settings import load_settings

REDIS = "redis://127.0.0.1:6379/9"


def _opt(argv: list[str], flag: str) -> str:
    return argv[argv.index(flag) + 1]


@pytest.mark.parametrize(
    ("role", "queues", "pool"),
    [
        ("player", "player", "threads"),
        ("physics", "physics,physics.0,physics.1", "threads"),  # every unit in one
        ("ai", "ai", "prefork"),
        ("transactions", "transactions", "threads"),
        ("background", "background", "prefork"),
        ("all", "player,physics,physics.0,physics.1,ai,transactions,background,control",
         "threads"),
    ],
)
def test_role_consumes_its_queues_with_its_pool(role: str, queues: str, pool: str) -> None:
    argv = worker_argv(load_settings(broker_url=REDIS), role, None, None, "INFO")
    assert _opt(argv, "-Q") == queues
    assert _opt(argv, "-P") == pool
    assert _opt(argv, "--prefetch-multiplier") == "1"


def test_no_role_uses_disable_prefetch() -> None:
    # worker_disable_prefetch stalled a saturated worker for about a second per task on
    # Redis (measured); latency-bound roles use acks_late with prefetch 1 instead.
    redis = load_settings(broker_url=REDIS)
    for role in ("player", "physics", "ai", "transactions", "background", "all"):
        assert "--disable-prefetch" not in worker_argv(redis, role, None, None, "INFO")


def test_concurrency_and_memory_budget_come_from_settings() -> None:
    settings = load_settings(background={"concurrency": 3, "memory_mb": 300})
    argv = worker_argv(settings, "background", None, "b@h", "INFO")
    assert _opt(argv, "-c") == "3"
    assert _opt(argv, "--max-memory-per-child") == str(300 * 1024)
    assert _opt(argv, "-n") == "b@h"
    assert _opt(worker_argv(settings, "background", 7, None, "INFO"), "-c") == "7"


def test_every_role_keeps_its_own_memory_budget() -> None:
    settings = load_settings(broker_url=REDIS, player={"concurrency": 4, "memory_mb": 200},
                             control={"concurrency": 1, "memory_mb": 150})
    assert memory_budget(settings, "player") == 200
    assert memory_budget(settings, "transactions") == settings.transactions.memory_mb
    assert "--max-memory-per-child" not in worker_argv(settings, "player", None, None, "INFO")
    # prefork: each child guards itself, and Celery replaces a child that peaked past it
    assert memory_budget(settings, "background") == settings.background.memory_mb
    assert memory_budget(settings, "control") == 150
    assert memory_budget(settings, "all") == settings.all.memory_mb == 1024


def test_a_physics_unit_consumes_its_own_queue_alone() -> None:
    settings = load_settings(broker_url=REDIS, physics_units=3)
    argv = worker_argv(settings, "physics", None, None, "INFO", unit=2)
    assert (_opt(argv, "-Q"), _opt(argv, "-c")) == ("physics.2", "1")
    assert _opt(argv, "-n") == f"physics-u2@{settings.instance_id}"
    # unit 0 also takes what a plain Celery client sends to "physics" by name
    assert _opt(worker_argv(settings, "physics", None, None, "INFO", unit=0), "-Q") == (
        "physics,physics.0")


@pytest.mark.parametrize(("role", "unit", "why"), [
    ("physics", 3, "expected 0 to 2"), ("physics", -1, "expected 0 to 2"),
    ("player", 0, "only the physics role has units")])
def test_a_unit_the_fleet_does_not_have_is_refused_naming_it(role: str, unit: int,
                                                             why: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        worker_argv(load_settings(physics_units=3), role, None, None, "INFO", unit=unit)
    assert (caught.value.field, caught.value.value) == ("unit", unit)
    assert why in str(caught.value)


def test_an_instance_worker_serves_its_sessions_queue_first() -> None:
    settings = load_settings(broker_url=REDIS)
    argv = worker_argv(settings, "player", None, None, "INFO", instance="east-1")
    assert _opt(argv, "-Q") == "player.east-1,player"
    assert _opt(argv, "-n") == "player@east-1"
    every = worker_argv(settings, "all", None, None, "INFO", instance="east-1")
    assert _opt(every, "-Q").startswith("player.east-1,player,")


@pytest.mark.parametrize(("role", "instance", "why"), [
    ("player", "east:1", "expected letters, digits"), ("player", "-east", "starting with"),
    ("player", "x" * 65, "at most 64"), ("ai", "east", "only the player and all roles")])
def test_an_instance_no_queue_can_carry_is_refused_naming_it(role: str, instance: str,
                                                             why: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        worker_argv(load_settings(), role, None, None, "INFO", instance=instance)
    assert (caught.value.field, caught.value.value) == ("instance", instance)
    assert why in str(caught.value)


def test_unknown_role_names_the_field() -> None:
    with pytest.raises(InvalidRequest) as caught:
        worker_argv(load_settings(), "graphics", None, None, "INFO")
    assert caught.value.field == "role" and caught.value.value == "graphics"


def test_naive_baseline_workers_share_one_queue() -> None:
    argv = worker_argv(load_settings(broker_url=REDIS, naive=True), "player", None, None, "INFO")
    assert _opt(argv, "-Q") == "celery"
    assert "--prefetch-multiplier" not in argv and "--disable-prefetch" not in argv


def test_the_textbook_baseline_runs_celerys_default_worker() -> None:
    """Prefork with a child per core, the default queue, Celery's default prefetch (no
    option: the configuration's 4), no memory budget of gamesched's, OS scheduling."""
    textbook = load_settings(broker_url=REDIS, naive=True, textbook=True)
    argv = worker_argv(textbook, "all", None, "all@h", "INFO")
    assert (_opt(argv, "-P"), _opt(argv, "-c"), _opt(argv, "-Q")) == (
        "prefork", str(os.cpu_count()), "celery")
    assert "--prefetch-multiplier" not in argv and "--max-memory-per-child" not in argv
    assert _opt(worker_argv(textbook, "all", 3, None, "INFO"), "-c") == "3"
    assert _opt(worker_argv(textbook, "player", None, None, "INFO"), "-P") == "prefork"
    assert memory_budget(textbook, "player") is None
    assert consumption(textbook, "background").lowers_cpu is False
    unscheduled = worker_argv(load_settings(broker_url=REDIS, naive=True), "all", None, None,
                              "INFO")
    assert _opt(unscheduled, "-P") == "threads"  # without `naive`, `textbook` is ignored
    ignored = load_settings(broker_url=REDIS, textbook=True)
    assert _opt(worker_argv(ignored, "all", None, None, "INFO"), "-Q") != "celery"


def test_controller_embeds_beat_in_a_solo_control_worker() -> None:
    argv = controller_argv(load_settings(), "/tmp/schedule", "INFO")
    assert "-B" in argv
    assert _opt(argv, "-Q") == "control"
    assert _opt(argv, "-P") == "solo"


@pytest.mark.parametrize(("role", "naive", "expected", "policy"), [
    ("background", False, 10, "SCHED_IDLE"), ("ai", False, 0, "SCHED_OTHER"),
    ("player", False, 0, "SCHED_OTHER"), ("all", False, 0, "SCHED_OTHER"),
    ("background", True, 0, "SCHED_OTHER"),
])
def test_background_roles_run_at_a_lower_cpu_priority(role: str, naive: bool, expected: int,
                                                      policy: str) -> None:
    """Measured in a child process leading its own session, as fleets start workers: the
    niceness and scheduling policy the kernel reports after the call, and its autogroup's
    niceness where Linux has them."""
    code = ("import os; from app.settings import load_settings; "
            "from app.fleet.worker import AUTOGROUP, lower_cpu_priority; "
            f"before = os.nice(0); settings = load_settings(naive={naive}); "
            f"lower_cpu_priority(settings, {role!r}); "
            f"assert lower_cpu_priority(settings, {role!r}) == 0; "
            "group = open(AUTOGROUP).read().split()[-1] if os.path.exists(AUTOGROUP) else '-';"
            "print(os.nice(0) - before, group, os.sched_getscheduler(0))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, start_new_session=True)
    nice, group, got = out.stdout.split()
    assert int(nice) == expected
    assert group in ("-", str(expected))
    assert int(got) == getattr(os, policy)


def test_a_cpu_policy_the_process_already_has_is_left_alone() -> None:
    code = ("import os; from app.fleet.worker import set_cpu_policy; "
            "print(set_cpu_policy('batch'), set_cpu_policy('batch'), set_cpu_policy('idle'), "
            "os.sched_getscheduler(0) == os.SCHED_IDLE)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.split() == ["True", "False", "True", "True"]


def test_start_up_objects_are_frozen_out_of_the_collector() -> None:
    import gc

    from app.fleet.worker import freeze_startup_objects

    try:
        assert freeze_startup_objects() > 0
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_cpu_policy_the_kernel_refuses_is_logged_and_the_worker_goes_on(
        monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    from app.fleet import worker as workercmd

    def refuse(pid: int, policy: int, param: object) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(workercmd.os, "sched_getscheduler", lambda pid: os.SCHED_IDLE)
    monkeypatch.setattr(workercmd.os, "sched_setscheduler", refuse)
    with caplog.at_level("WARNING", logger="app.fleet.worker"):
        assert workercmd.set_cpu_policy("normal") is False
    assert "CPU policy normal not set" in caplog.text


@pytest.mark.parametrize(("role", "broker", "naive", "direct"), [
    ("player", REDIS, False, True),
    ("all", REDIS, False, False),  # every queue in one process: Celery's consumer
    ("physics", REDIS, False, False),
    ("player", "memory://", False, False),  # the embedded broker has no lists to pop
    ("player", REDIS, True, False),  # the baselines are Celery as it comes
])
def test_only_a_player_worker_on_redis_takes_its_queues_directly(
        role: str, broker: str, naive: bool, direct: bool) -> None:
    settings = load_settings(broker_url=broker, naive=naive, player_consumer="direct")
    assert consumes_directly(settings, role) is direct
    assert not consumes_directly(load_settings(broker_url=REDIS), "player")  # the default


def test_a_direct_workers_celery_side_consumes_a_queue_nobody_sends_to() -> None:
    argv = worker_argv(load_settings(broker_url=REDIS), "player", None, None, "INFO",
                       instance="east")
    assert _opt(argv, "-Q") == "player.east,player" and _opt(argv, "-c") == "4"
    hosted = host_argv(argv)
    assert _opt(hosted, "-Q") == "player.east:direct" and _opt(hosted, "-c") == "1"
    assert _opt(hosted, "-n") == _opt(argv, "-n")
    assert _opt(argv, "-Q") == "player.east,player"  # the worker's own arguments unchanged
