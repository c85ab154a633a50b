"""A player worker with its own consumer (``GAMESCHED_PLAYER_CONSUMER=direct``) as
``gamesched worker --role player --instance east`` runs it: it answers as a Celery worker,
applies its instance's state batches, stops warm with nothing left behind, and a message
it held when killed outright comes back from Redis's unacknowledged set and runs again."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis

from app.client.api import GameClient
from app.fleet.fleets import stop_process_groups
from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import GameschedCelery, create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for

NODE = "player@east"


@pytest.fixture
def settings(live_settings: Settings) -> Settings:
    return live_settings.model_copy(update={"player_consumer": "direct"})


@pytest.fixture
def app(settings: Settings) -> GameschedCelery:
    return create_app(settings)


@pytest.fixture
def start(settings: Settings, app: GameschedCelery,
          tmp_path: Path) -> Iterator[Callable[[], subprocess.Popen[bytes]]]:
    """Starts the instance's player worker (with the test tasks), once it answers."""
    procs: list[subprocess.Popen[bytes]] = []

    def launch() -> subprocess.Popen[bytes]:
        with open(tmp_path / "east.log", "ab") as log:
            proc = subprocess.Popen(
                [sys.executable, "-m", "tests.launch", "worker", "--role", "player",
                 "--instance", "east", "--loglevel", "INFO"],
                cwd=ROOT, env={**os.environ, **settings.to_env()}, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        procs.append(proc)
        wait_for(lambda: NODE in live_workers(app, timeout=0.5), timeout=60, what=NODE)
        return proc

    yield launch
    stop_process_groups(procs)


def test_it_answers_as_a_worker_and_applies_its_instances_batches(
        app: GameschedCelery, start: Callable[[], subprocess.Popen[bytes]],
        redis_client: redis.Redis) -> None:
    proc = start()
    assert live_workers(app)[NODE] == ["player.east:direct"]
    client = GameClient(app)
    try:
        ids = [f"d-{n}" for n in range(20)]
        for sid in ids:
            client.open_session(sid, session_type="casual", players=1)
        assert {client.instance_of(sid) for sid in ids} == {"east"}
        for seq in range(1, 6):
            for sid in ids:
                client.submit_update(sid, seq, {"hp": seq})
        client.flush()
        wait_for(lambda: set(client.last_applied(ids).values()) == {5},
                 what="every update applied")
    finally:
        client.close()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    waiting = [k for k in redis_client.keys("player*") if redis_client.llen(k)]
    assert waiting == [] and redis_client.zcard("unacked_index") == 0


def test_a_message_held_at_a_kill_comes_back_and_runs_again(
        app: GameschedCelery, start: Callable[[], subprocess.Popen[bytes]],
        redis_client: redis.Redis) -> None:
    proc = start()
    run = uuid.uuid4().hex[:6]
    started, release = f"{run}:started", f"{run}:release"
    app.send_task("tests.block", args=[started, release], queue="player.east", priority=0)
    wait_for(lambda: redis_client.llen(started) == 1, what="the block to start")
    wait_for(lambda: redis_client.zcard("unacked_index") == 1, what="it to be recorded")
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    # What Redis's visibility timeout leads to, without waiting for it (10 s at least): a
    # kombu consumer puts the recorded message back in its queue (test_direct.py shows the
    # record is one kombu restores as it wrote it)
    [tag] = redis_client.zrange("unacked_index", 0, -1)
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        with channel.conn_or_acquire() as client:
            channel.qos.restore_by_tag(tag, client)
    assert redis_client.llen("player.east") == 1
    start()
    wait_for(lambda: redis_client.llen(started) == 2, timeout=30,
             what="the held message to run again")
    redis_client.rpush(release, b"go")
    wait_for(lambda: redis_client.zcard("unacked_index") == 0, what="its record removed")
