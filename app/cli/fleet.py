"""``gamesched fleet up|status|down``: a whole fleet under one supervisor process."""

from __future__ import annotations

import os
import signal
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path

from rich.console import Console
from rich.table import Table

from app.errors import InvalidRequest
from app.fleet.fleets import ProcessFleet
from app.fleet.roles import WORKER_ROLES
from app.fleet.supervisor import FleetState, Supervisor, pid_alive
from app.protocol.vocab import RoleName
from app.settings import Settings

DOWN_TIMEOUT_S = 60.0
ROLES = (*WORKER_ROLES, RoleName.CONTROL.value)
# Two player workers (without instances) and two transactions workers: the layout the
# simulator measures (a killed node's twin serves; two player processes get twice the CPU).
REPLICAS = {RoleName.PLAYER.value: 2, RoleName.TRANSACTIONS.value: 2}


def default_state_file(settings: Settings) -> Path:
    """Where this machine's fleet keeps its state: one file per `GAMESCHED_INSTANCE_ID`."""
    return Path(tempfile.gettempdir()) / f"gamesched-fleet-{settings.instance_id}.json"


def parse_roles(text: str | None) -> tuple[str, ...]:
    """The roles of a comma list (every role, the controller included, when None), or
    InvalidRequest naming the unknown one."""
    if not text:
        return ROLES
    names = tuple(dict.fromkeys(n.strip() for n in text.split(",") if n.strip()))
    for name in names:
        if name not in ROLES:
            raise InvalidRequest("roles", name, f"expected a comma list of {', '.join(ROLES)}")
    return names


def up(console: Console, settings: Settings, *, roles: Sequence[str],
       instances: Sequence[str], log_dir: Path, state_file: Path, loglevel: str) -> int:
    """Run the fleet in this process until SIGTERM or SIGINT; the exit code."""
    running = FleetState.read(state_file)
    if running is not None and pid_alive(running.supervisor):
        console.print(f"a fleet already runs here (supervisor pid {running.supervisor}, "
                      f"state {state_file}); `gamesched fleet down` stops it", markup=False)
        return 1
    log_dir.mkdir(parents=True, exist_ok=True)
    fleet = ProcessFleet(settings, roles=roles, log_dir=str(log_dir), loglevel=loglevel,
                         instances=instances, replicas=REPLICAS)
    supervisor = Supervisor(fleet, state_file, _stop_on_signals(),
                            on_up=lambda state: _announce(console, state))
    console.print(f"starting {len(fleet.nodes)} workers (supervisor pid {os.getpid()}); "
                  f"logs in {log_dir}", markup=False)
    state = supervisor.run()
    restarts = sum(node.restarts for node in state.nodes.values())
    console.print(f"fleet stopped ({restarts} worker restarts)", markup=False)
    return 0


def _stop_on_signals() -> threading.Event:
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    return stop


def _announce(console: Console, state: FleetState) -> None:
    """Print each node's pid and log (the fleet answers)."""
    for name, node in sorted(state.nodes.items()):
        console.print(f"  {name}: pid {node.pid}, log {node.log}", markup=False)
    console.print("fleet up; `gamesched fleet down` stops it", markup=False)


def _running(console: Console, state_file: Path) -> FleetState | None:
    """The state of the fleet whose supervisor runs, or None (said on the console)."""
    state = FleetState.read(state_file)
    if state is None or not pid_alive(state.supervisor):
        console.print(f"no fleet runs here (no live supervisor in {state_file})", markup=False)
        return None
    return state


def status(console: Console, state_file: Path) -> bool:
    """Print the fleet's nodes, pids, restarts and logs; False when no fleet runs."""
    state = _running(console, state_file)
    if state is None:
        return False
    up_s = time.time() - state.started
    console.print(f"fleet supervisor pid {state.supervisor}, up {up_s:.0f}s", markup=False)
    table = Table()
    for column in ("node", "pid", "running", "restarts", "log"):
        table.add_column(column)
    for name, node in sorted(state.nodes.items()):
        table.add_row(name, str(node.pid), "yes" if pid_alive(node.pid) else "no",
                      str(node.restarts), node.log or "-")
    console.print(table)
    return True


def down(console: Console, state_file: Path, timeout_s: float = DOWN_TIMEOUT_S) -> bool:
    """Stop the fleet's supervisor (SIGTERM: it stops every worker warm) and wait until it
    is gone; False when no fleet ran or it did not stop in time."""
    state = _running(console, state_file)
    if state is None:
        return False
    os.kill(state.supervisor, signal.SIGTERM)
    deadline = time.monotonic() + timeout_s
    while pid_alive(state.supervisor):
        if time.monotonic() > deadline:
            console.print(f"the supervisor (pid {state.supervisor}) is still stopping after "
                          f"{timeout_s:.0f}s", markup=False)
            return False
        time.sleep(0.1)
    console.print(f"fleet stopped (supervisor pid {state.supervisor})", markup=False)
    return True
