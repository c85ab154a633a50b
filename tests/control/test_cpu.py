"""The controller reads the server's CPU: gamesched's workers and controller, Redis and
PostgreSQL; a busy process of anything else on the machine is left out."""

from __future__ import annotations

import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

import psutil
import pytest

from app.control.cpu import MachineCpu, ServerCpu, is_server, meter
from app.errors import ConfigError
from app.settings import load_settings
from tests.waiting import wait_for

SPIN = "import time\nend = time.time() + 30\nwhile time.time() < end:\n    pass\n"


def test_server_processes_are_known_by_name_or_by_the_gamesched_command_they_run() -> None:
    assert is_server("redis-server", ["/usr/bin/redis-server", "*:6379"])
    assert is_server("postgres", ["postgres: 15/main: checkpointer"])
    assert is_server("python", ["/x/.venv/bin/python", "-m", "app.cli", "worker", "--role", "ai"])
    assert is_server("gamesched", ["/x/.venv/bin/gamesched", "controller"])
    assert is_server("celery", ["/x/bin/celery", "-A", "app.tasking.entry", "worker"])
    assert not is_server("python", ["/x/.venv/bin/gamesched", "simulate", "--players", "10"])
    assert not is_server("python", ["python", "-c", "spin", "worker"])  # not gamesched's
    assert not is_server("pytest", ["/x/bin/pytest", "tests/fleet/test_worker.py"])


@contextmanager
def spinning(*argv: str) -> Iterator[None]:
    """A process busy on one core, whose command line ends with `argv`."""
    proc = subprocess.Popen([sys.executable, "-c", SPIN, *argv])  # (exec'd on return)
    try:
        yield
    finally:
        proc.kill()
        proc.wait()


def busy_share(meter: ServerCpu) -> float:
    meter.measure()
    time.sleep(1.0)
    return meter.measure()


def test_a_busy_server_process_is_counted_and_a_busy_other_one_is_not() -> None:
    one_core = 1.0 / (psutil.cpu_count() or 1)
    token = f"spin-{uuid.uuid4()}"  # only this test's processes: the machine's own server
    # processes (Redis, PostgreSQL, workers left by other tests) vary from run to run

    def ours(name: str, cmdline: Sequence[str]) -> bool:
        return token in cmdline and is_server(name, cmdline)

    with spinning("app.cli", "worker", token):  # looks like a gamesched worker
        assert busy_share(ServerCpu(ours)) > 0.6 * one_core
    with spinning("something", "else", token):
        assert busy_share(ServerCpu(ours)) == 0.0


def test_the_machines_cpu_counts_any_busy_process_and_the_setting_picks_the_meter() -> None:
    one_core = 1.0 / (psutil.cpu_count() or 1)
    with spinning("something", "else"):
        machine = MachineCpu()
        machine.measure()
        time.sleep(1.0)
        assert machine.measure() > 0.6 * one_core
    assert isinstance(meter("machine"), MachineCpu) and isinstance(meter("server"), ServerCpu)
    assert load_settings(controller_cpu="machine").controller_cpu == "machine"
    with pytest.raises(ConfigError, match="GAMESCHED_CONTROLLER_CPU='cluster'"):
        load_settings(controller_cpu="cluster")


def test_a_young_process_is_told_apart_again_after_it_execs_into_a_worker() -> None:
    one_core = 1.0 / (psutil.cpu_count() or 1)
    token = f"exec-{uuid.uuid4()}"

    def ours(name: str, cmdline: Sequence[str]) -> bool:
        return token in cmdline and is_server(name, cmdline)

    execs = (f"import os, sys\nsys.stdin.readline()\n"  # until the test has looked at it
             f"os.execv(sys.executable, [sys.executable, '-c', {SPIN!r}, 'app.cli', 'worker', "
             f"{token!r}])\n")
    proc = subprocess.Popen([sys.executable, "-c", execs, "not", "yet", token],
                            stdin=subprocess.PIPE)
    try:
        server = ServerCpu(ours)
        assert server.measure() == 0.0  # a fresh process, not the server's (yet)
        assert proc.stdin is not None
        proc.stdin.write(b"go\n")
        proc.stdin.close()
        wait_for(lambda: "worker" in psutil.Process(proc.pid).cmdline(), timeout=30,
                 what="the process to exec into a worker")
        assert busy_share(server) > 0.6 * one_core
    finally:
        proc.kill()
        proc.wait()
