"""One process that runs a whole fleet and keeps it running (``gamesched fleet up``).

The supervisor starts every worker node of a `ProcessFleet` (each role, the player role as
one worker per server instance, the controller with beat and the ledger's sweeper), waits
until they answer, and from then on starts again at once any worker that exits, whatever
killed it.  It keeps a state file (its own pid, each node's pid, log file and restarts) so
that ``fleet status`` and ``fleet down`` find it.  SIGTERM or SIGINT stop it: each worker
gets SIGTERM (a warm shutdown: tasks in progress finish), and SIGKILL after the grace.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from app.fleet.fleets import ProcessFleet, stop_process_groups

log = logging.getLogger(__name__)

WATCH_S = 0.1  # how often the supervisor looks for a worker that exited
STOP_GRACE_S = 30.0  # a warm shutdown's time before SIGKILL
QUICK_EXIT_S = 5.0  # a worker that exits sooner after its start is crashing as it starts:
BACKOFF_S, BACKOFF_MAX_S = 0.5, 30.0  # its next start waits 0.5 s, 1 s, 2 s ... up to 30 s


@dataclass
class NodeState:
    """One worker node as the supervisor runs it."""

    pid: int
    log: str | None
    restarts: int = 0


@dataclass
class FleetState:
    """What the state file holds."""

    supervisor: int
    started: float
    nodes: dict[str, NodeState] = field(default_factory=dict)

    @classmethod
    def read(cls, path: Path) -> FleetState | None:
        """The state at `path`, or None when no fleet wrote one (or it was removed)."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None
        nodes = {name: NodeState(**node) for name, node in raw.get("nodes", {}).items()}
        return cls(int(raw["supervisor"]), float(raw["started"]), nodes)

    def write(self, path: Path) -> None:
        """Replace the file at `path` with this state, atomically."""
        partial = path.with_suffix(".tmp")
        partial.write_text(json.dumps(asdict(self), indent=1), encoding="utf-8")
        os.replace(partial, path)


class Supervisor:
    """Runs `fleet` until `stop` is set, restarting any worker that exits; the state goes
    to `state_file` (removed when the fleet stops)."""

    def __init__(self, fleet: ProcessFleet, state_file: Path,
                 stop: threading.Event | None = None,
                 on_up: Callable[[FleetState], None] | None = None) -> None:
        self.fleet, self.state_file = fleet, state_file
        self.stop = stop or threading.Event()
        self.on_up = on_up  # told the state once every worker answers
        self.state = FleetState(os.getpid(), time.time())
        self._started: dict[str, float] = {}  # node -> monotonic time of its last start
        self._quick: dict[str, int] = {}  # node -> exits in a row soon after starting

    def run(self) -> FleetState:
        """Start the fleet, watch it until `stop`, stop it; the last state."""
        try:
            with self.fleet:
                self.watch()
                if self.on_up is not None:
                    self.on_up(self.state)
                while not self.stop.wait(WATCH_S):
                    self.restart_exited()
                stop_process_groups(self.fleet.procs.values(), grace_s=STOP_GRACE_S)
        finally:
            self.state_file.unlink(missing_ok=True)
        return self.state

    def watch(self) -> None:
        """Take the fleet's workers, started now, into the state (and its file)."""
        self.state.nodes = {name: NodeState(proc.pid, self._log(name))
                            for name, proc in self.fleet.procs.items()}
        self._started = dict.fromkeys(self.fleet.procs, time.monotonic())
        self.state.write(self.state_file)

    def restart_exited(self) -> list[str]:
        """Start again every worker that exited (at once, unless it keeps exiting soon
        after its start: then after a backoff); returns the nodes started."""
        now = time.monotonic()
        exited = [name for name, proc in self.fleet.procs.items()
                  if proc.poll() is not None and now >= self._due(name)]
        for name in exited:
            code = self.fleet.procs[name].returncode
            self._quick[name] = (self._quick.get(name, 0) + 1
                                 if now - self._started.get(name, now) < QUICK_EXIT_S else 0)
            self.fleet.procs[name] = self.fleet.spawn(name)
            self._started[name] = now
            node = self.state.nodes[name]
            node.pid, node.restarts = self.fleet.procs[name].pid, node.restarts + 1
            log.warning("worker %s exited (code %s): started again (pid %d, restart %d)",
                        name, code, node.pid, node.restarts)
        if exited:
            self.state.write(self.state_file)
        return exited

    def _due(self, name: str) -> float:
        """When the exited worker `name` may start again: at once, or after a backoff when
        its last starts ended soon after they began."""
        quick = self._quick.get(name, 0)
        if not quick:
            return 0.0
        return self._started.get(name, 0.0) + min(BACKOFF_S * 2.0 ** (quick - 1), BACKOFF_MAX_S)

    def _log(self, name: str) -> str | None:
        folder = self.fleet.log_dir
        return os.path.join(folder, f"{name}.log") if folder else None


def pid_alive(pid: int) -> bool:
    """Whether a process `pid` runs (and is not a zombie this process could reap)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's: it runs
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().split(") ", 1)[1][:1] != "Z"
    except (FileNotFoundError, IndexError):
        return True
