"""The supervisor's restarts on real processes (a stand-in fleet of tiny Python commands):
a worker that exits is started again at once; one that keeps exiting as it starts, after a
growing backoff."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from typing import cast

from app.fleet.fleets import ProcessFleet, stop_process_groups
from app.fleet.supervisor import FleetState, Supervisor

COMMANDS = {"steady": "import time; time.sleep(60)", "crashing": "raise SystemExit(3)"}


class CommandFleet:
    """What the supervisor uses of a ProcessFleet, with a Python command per node."""

    log_dir = None

    def __init__(self) -> None:
        self.procs = {name: self.spawn(name) for name in COMMANDS}

    def spawn(self, name: str) -> subprocess.Popen[bytes]:
        return subprocess.Popen([sys.executable, "-c", COMMANDS[name]])

    def stop(self) -> None:
        for proc in self.procs.values():
            proc.kill()
            proc.wait()


def test_a_worker_that_exits_starts_again_at_once_and_a_crashing_one_backs_off(
        tmp_path: Path) -> None:
    fleet = CommandFleet()
    supervisor = Supervisor(cast(ProcessFleet, fleet), tmp_path / "state.json")
    supervisor.watch()
    try:
        assert FleetState.read(tmp_path / "state.json") == supervisor.state
        steady = fleet.procs["steady"]
        steady.kill()
        steady.wait()
        started = supervisor.restart_exited()
        assert "steady" in started and fleet.procs["steady"].pid != steady.pid
        on_file = FleetState.read(tmp_path / "state.json")
        assert on_file is not None and on_file.nodes["steady"].pid == fleet.procs["steady"].pid

        deadline = time.monotonic() + 3.0
        while time.monotonic() < deadline:  # 0.1 s apart, as the supervisor looks
            supervisor.restart_exited()
            time.sleep(0.1)
        crashes = supervisor.state.nodes["crashing"].restarts
        assert 2 <= crashes <= 5, crashes  # 0.5, 1, 2 s apart: not 30 times in 3 s
        assert supervisor.state.nodes["steady"].restarts == 1
    finally:
        fleet.stop()


def test_stopping_processes_that_ignore_sigterm_kills_them_all_after_one_grace() -> None:
    ignoring = ("import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
                "print('ready', flush=True); time.sleep(60)")
    procs = [subprocess.Popen([sys.executable, "-c", ignoring], stdout=subprocess.PIPE,
                              start_new_session=True) for _ in range(3)]
    for proc in procs:  # SIGTERM is ignored from here on
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
    started = time.monotonic()
    stop_process_groups(procs, grace_s=2.0)
    took = time.monotonic() - started
    for proc in procs:
        assert proc.stdout is not None
        proc.stdout.close()
    assert [proc.returncode for proc in procs] == [-9, -9, -9]
    assert 2.0 <= took < 4.0, took  # one grace for all three, not one after another (6 s)
