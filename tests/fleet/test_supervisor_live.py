"""``gamesched fleet up|status|down`` on real processes: the supervisor starts the fleet,
starts again at once a worker killed with SIGKILL, says so in ``fleet status``, and
``fleet down`` stops every worker and itself."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from app.fleet.supervisor import FleetState, pid_alive
from app.players.durable import last_round
from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for


def _gamesched(settings: Settings, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "app.cli", *args], cwd=ROOT, text=True,
                          env={**os.environ, **settings.to_env(), "COLUMNS": "120"},
                          capture_output=True,
                          timeout=120, check=False)


def _state(state: FleetState | None) -> FleetState:
    assert state is not None
    return state


def _tails(folder: Path, lines: int = 15) -> str:
    """The last lines of every log under `folder`, for a failure's message."""
    return "".join(
        f"\n--- {path.name}\n" + "\n".join(
            path.read_text(errors="replace").splitlines()[-lines:])
        for path in sorted(folder.rglob("*.log")))


def _restarted(state_file: Path, node: str) -> FleetState | None:
    state = FleetState.read(state_file)
    return state if state is not None and state.nodes[node].restarts == 1 else None


def test_fleet_up_restarts_a_killed_worker_and_fleet_down_stops_it_all(
        live_settings: Settings, tmp_path: Path) -> None:
    live_settings = live_settings.model_copy(update={"snapshot_ms": 200})  # a round soon
    state_file = tmp_path / "fleet.json"
    logs = tmp_path / "logs"
    with open(tmp_path / "supervisor.log", "wb") as out:
        supervisor = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "fleet", "up", "--roles", "player,background",
             "--instance", "east", "--log-dir", str(logs), "--state-file", str(state_file)],
            cwd=ROOT, env={**os.environ, **live_settings.to_env()}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    try:
        state = _state(wait_for(lambda: FleetState.read(state_file), timeout=90,
                                what="the fleet to start"))
        assert state.supervisor == supervisor.pid
        assert sorted(state.nodes) == ["background", "player-east"]
        assert all(Path(node.log or "").exists() for node in state.nodes.values())

        victim = state.nodes["player-east"].pid
        os.killpg(victim, signal.SIGKILL)
        again = _state(wait_for(lambda: _restarted(state_file, "player-east"), timeout=10,
                                what="the supervisor to start the killed worker again"))
        assert again.nodes["player-east"].pid != victim
        app = create_app(live_settings)
        wait_for(lambda: any(n.startswith("player-east@") for n in live_workers(app, 0.5)),
                 timeout=60, what="the restarted worker to answer")

        wait_for(lambda: last_round(app.runtime.hot), timeout=30,
                 what="the player worker's first snapshot round")
        fleet = _gamesched(live_settings, "status")
        # (the database holds other tests' sessions and log: the counts are theirs too)
        assert re.search(r"^write-behind: snapshots of \d+ sessions in \d+ ms, \d+\.\ds ago; "
                         r"\d+ changed since; \d+ batches in the state log$",
                         fleet.stdout, re.MULTILINE), fleet.stdout

        shown = _gamesched(live_settings, "fleet", "status", "--state-file", str(state_file))
        assert shown.returncode == 0, shown.stdout + shown.stderr
        assert "player-east" in shown.stdout and str(again.nodes["player-east"].pid) in (
            shown.stdout)

        stopped = _gamesched(live_settings, "fleet", "down", "--state-file", str(state_file))
        assert stopped.returncode == 0, stopped.stdout + stopped.stderr + _tails(tmp_path)
        assert supervisor.wait(timeout=10) == 0
        assert not any(pid_alive(node.pid) for node in again.nodes.values())
        assert not state_file.exists()
        gone = _gamesched(live_settings, "fleet", "status", "--state-file", str(state_file))
        assert gone.returncode == 1 and "no fleet runs here" in gone.stdout
    finally:
        if supervisor.poll() is None:  # never leave a fleet behind a failed test
            left = FleetState.read(state_file)
            os.killpg(supervisor.pid, signal.SIGKILL)
            supervisor.wait()
            for node in (left.nodes.values() if left else ()):
                if pid_alive(node.pid):
                    os.killpg(node.pid, signal.SIGKILL)


def test_fleet_up_names_an_unknown_role(live_settings: Settings) -> None:
    done = _gamesched(live_settings, "fleet", "up", "--roles", "player,wizards")
    assert done.returncode == 2
    assert "roles" in done.stdout and "wizards" in done.stdout
