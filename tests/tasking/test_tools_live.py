"""Celery's own tools on the fleet, through `app.tasking.tools` or given only the broker URL:
Flower lists the workers and a queue's length (summed over every priority step with the
tools app); ``celery inspect``, ``control`` and ``ping`` reach the workers, with no
control-command error on any of them."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from app.protocol.queues import Queue
from app.settings import Settings, load_settings
from app.tasking.broker import queue_depths, step_key
from app.tasking.factory import create_app
from app.tasking.tools import tools_app
from app.tasking.transport import kombu_redis
from tests.subprocesses import ROOT, StartWorker, free_port
from tests.waiting import wait_for

STEPS = (3, 5, 8)  # the priority steps the waiting messages are spread over (3: kombu's too)


def _get(port: int, path: str) -> Any:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
            return json.loads(reply.read())
    except OSError:
        return None


def _celery(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "celery", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60, check=False)


def _background_length(port: int) -> int | None:
    reply = _get(port, "/api/queues/length") or {}
    lengths = {q["name"]: q["messages"] for q in reply.get("active_queues", [])}
    return lengths.get(Queue.BACKGROUND.value)


@pytest.mark.parametrize("form", ["tools app", "broker url"])
def test_flower_and_inspect_reach_the_fleet_through_the_tools_app_or_the_broker_url(
        form: str, live_settings: Settings, start_worker: StartWorker, redis_client: Any,
        tmp_path: Path) -> None:
    """Both ways list the worker and the tasks it ran; the tools app knows the ten
    priority steps, so a queue's length sums them all; Flower given only the URL reads
    kombu's four (0, 3, 6, 9)."""
    node = start_worker("background", "bg", concurrency=1)
    app = create_app(live_settings)
    started, release = f"started-{uuid.uuid4().hex}", f"release-{uuid.uuid4().hex}"
    app.send_task("tests.block", args=[started, release], queue=Queue.BACKGROUND.value)
    env = {**os.environ, **live_settings.to_env(), "FLOWER_UNAUTHENTICATED_API": "true"}
    target = (["-A", "app.tasking.tools"] if form == "tools app"
              else [f"--broker={live_settings.broker_url}"])
    port = free_port()
    with open(tmp_path / "flower.log", "wb") as log:
        flower = subprocess.Popen(
            [sys.executable, "-m", "celery", *target, "flower", f"--port={port}"], cwd=ROOT,
            env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: redis_client.llen(started), timeout=30, what="the worker to be busy")
        for step in STEPS:  # they wait: the worker's one slot is taken
            for _ in range(2):
                app.send_task("tests.mark", args=["order", str(step)],
                              queue=Queue.BACKGROUND.value, priority=step)
        waiting = queue_depths(app)[Queue.BACKGROUND.value]
        assert waiting >= len(STEPS)  # at most one taken ahead by the worker
        keys = {k.decode() for k in redis_client.keys(f"{Queue.BACKGROUND.value}*")}
        assert len(keys) >= 2, keys  # spread over priority steps: lists of their own

        kombus = sum(redis_client.llen(step_key(Queue.BACKGROUND.value, step))
                     for step in (0, 3, 6, 9))
        shown = wait_for(lambda: _background_length(port), timeout=60,
                         what="Flower to report the background queue's length")
        assert shown == (waiting if form == "tools app" else kombus), (waiting, kombus)
        workers = wait_for(lambda: _get(port, "/api/workers?refresh=1"), timeout=30,
                           what="Flower's workers")
        assert node in workers

        ping = _celery(env, *target, "inspect", "ping", "--timeout", "5")
        assert ping.returncode == 0 and node in ping.stdout, ping.stdout + ping.stderr

        # Flower turns the workers' task events on: the tasks run from then on are listed
        wait_for(lambda: "Events of group {task} enabled" in (tmp_path / "bg.log").read_text(
            errors="replace"), timeout=30, what="Flower to turn the worker's events on")
        redis_client.rpush(release, b"1")
        tasks = wait_for(lambda: [t for t in (_get(port, "/api/tasks") or {}).values()
                                  if t.get("name") == "tests.mark"
                                  and t.get("state") == "SUCCESS"] or None,
                         timeout=60, what="Flower to list the tasks that ran")
        assert tasks and all(t.get("worker") == node for t in tasks)
    finally:
        redis_client.rpush(release, b"1")
        flower.terminate()
        flower.wait(timeout=30)
    assert "Control command error" not in (tmp_path / "bg.log").read_text(errors="replace")


def test_the_tools_app_runs_on_kombus_own_redis_transport() -> None:
    app = tools_app(load_settings(broker_url="redis://127.0.0.1:6379/0"))
    uri = app.connection().as_uri()
    assert uri.startswith("redis://"), uri  # the only scheme Flower reads lengths for
    assert type(app.connection().transport) is kombu_redis.Transport
    options = app.conf.broker_transport_options
    assert "sep" not in options and list(options["priority_steps"]) == list(range(10))


def test_a_client_given_only_the_broker_url_pings_inspects_and_controls_the_fleet(
        live_settings: Settings, start_worker: StartWorker, tmp_path: Path) -> None:
    node = start_worker("ai", "ai", concurrency=1)
    plain = {k: v for k, v in os.environ.items() if not k.startswith("GAMESCHED_")}
    ours = {**os.environ, **live_settings.to_env()}
    broker = f"--broker={live_settings.broker_url}"
    to = ("--destination", node, "--timeout", "10")  # done once the node answers
    for env, target in ((ours, "-A app.tasking.tools"), (plain, broker)):  # in turn
        ping = _celery(env, *target.split(), "inspect", "ping", *to)
        assert ping.returncode == 0 and node in ping.stdout, ping.stdout + ping.stderr
    queues = _celery(plain, broker, "inspect", "active_queues", *to)
    assert queues.returncode == 0 and f"'name': '{Queue.AI.value}'" in queues.stdout, (
        queues.stdout + queues.stderr)
    control = _celery(plain, broker, "control", "enable_events", *to)
    assert control.returncode == 0 and node in control.stdout, control.stdout + control.stderr
    log = (tmp_path / "ai.log").read_text(errors="replace")
    assert "Control command error" not in log and "Traceback" not in log, log[-2000:]
