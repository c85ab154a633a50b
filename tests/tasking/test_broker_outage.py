"""A worker outlives its broker going away: a private redis-server is stopped under a worker
that holds an unacknowledged message while its consumer waits on BRPOP for the next one."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from kombu.exceptions import OperationalError

from app.fleet.fleets import stop_process_groups
from app.fleet.worker import worker_argv
from app.settings import Settings, load_settings
from app.simulate.redisserver import PrivateRedis
from app.tasking.broker import live_workers
from app.tasking.factory import create_app
from tests.subprocesses import ROOT, TEST_TASKS
from tests.waiting import wait_for

OUTAGES = 3
LOST = "Connection to broker lost"


@pytest.fixture
def broker(redis_server_binary: str) -> Iterator[PrivateRedis]:
    with PrivateRedis(redis_server_binary) as server:
        yield server


def _start(settings: Settings, log: Path) -> subprocess.Popen[bytes]:
    argv = worker_argv(settings, "background", 2, "outage@live", "INFO")
    cmd = [sys.executable, "-m", "celery", "-A", "app.tasking.entry", *argv,
           "-I", TEST_TASKS]
    with open(log, "ab") as out:
        return subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **settings.to_env()},
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _answers(settings: Settings, worker: subprocess.Popen[bytes]) -> bool:
    assert worker.poll() is None, "the worker stopped"
    try:
        return "outage@live" in live_workers(create_app(settings), timeout=0.5)
    except (redis.ConnectionError, OperationalError):  # the broker is still coming back
        return False


def test_a_worker_holding_an_unacknowledged_message_outlives_broker_restarts(
        broker: PrivateRedis, postgres_url: str, tmp_path: Path) -> None:
    settings = load_settings(broker_url=broker.url, database_url=postgres_url,
                             instance_id="outage-test")
    log = tmp_path / "worker.log"
    worker = _start(settings, log)
    try:
        wait_for(lambda: _answers(settings, worker), timeout=60, what="the worker to answer")
        for outage in range(1, OUTAGES + 1):
            held = tmp_path / f"release-{outage}"
            started = tmp_path / f"started-{outage}"
            create_app(settings).send_task("tests.hold", args=[str(started), str(held)],
                                           queue="background")
            # one slot holds the unacknowledged message, the other waits on BRPOP
            wait_for(started.exists, timeout=30, what="the held task to start")
            broker.stop()
            wait_for(lambda seen=outage: log.read_text(errors="replace").count(LOST) >= seen,
                     timeout=30, what="the worker to notice the broker is gone")
            broker.start()
            held.touch()
            wait_for(lambda: _answers(settings, worker), timeout=60,
                     what=f"the worker to answer after outage {outage}")
            assert worker.poll() is None, log.read_text(errors="replace")[-4000:]
        assert "Unrecoverable error" not in log.read_text(errors="replace")
    finally:
        stop_process_groups([worker])
