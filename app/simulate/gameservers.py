"""Game servers as processes of their own, as production runs them: each with its own
client and its own share of the sessions (`Share`), driving its part of the schedule in
real time beside the others, and reporting what it sent and how far behind it ran.

A game server is spawned (nothing inherited from the simulator's threads) with the
schedule as the simulator left it after the players joined, so every server plans the same
world.  It registers its share of the open sessions with its client, as a server taking
over sessions already open on the fleet does, reports ready, and plays from the start time
the simulator hands all of them at once.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import time
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from app.errors import GameschedError
from app.fleet.worker import SWITCH_INTERVAL_S
from app.settings import Settings
from app.simulate.driver import Client, DriveStats, LoadDriver
from app.simulate.modes import Mode
from app.simulate.population import Share
from app.simulate.schedule import Schedule
from app.simulate.spawned import frozen_heap, own_session
from app.tasking.factory import create_app

READY_TIMEOUT_S = 120.0  # spawning imports the client's stack
RESULT_GRACE_S = 120.0  # after the run's end: the last sends, then the stats on the pipe
MAX_DEFAULT = 8
INNER_FRAMES = 16  # of a game server's failure, sent to the simulator


def default_count() -> int:
    """Game servers to run on this machine by default: half its cores (the fleet and the
    stores take the rest), at least two so that the load is never one interpreter's."""
    return min(MAX_DEFAULT, max(2, (os.cpu_count() or 2) // 2))


@dataclass(frozen=True)
class ServerJob:
    """What one game server plays."""

    mode: Mode
    settings: Settings
    schedule: Schedule
    ids: list[str]
    share: Share
    duration_s: float


class GameServers:
    """`count` game-server processes over `schedule`, started at once; `start` sets them
    playing, `results` gathers what they sent."""

    def __init__(self, mode: Mode, settings: Settings, schedule: Schedule, ids: list[str], *,
                 count: int, duration_s: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._pipes: list[Connection] = []
        self._procs: list[BaseProcess] = []
        for index in range(count):
            job = ServerJob(mode, settings, schedule, ids, Share(index, count), duration_s)
            ours, theirs = context.Pipe()
            proc = context.Process(target=serve, args=(job, theirs), daemon=True,
                                   name=f"sim-game-server-{index}")
            proc.start()
            theirs.close()
            self._pipes.append(ours)
            self._procs.append(proc)

    @property
    def pids(self) -> list[int]:
        """The game servers' process ids."""
        return [p.pid for p in self._procs if p.pid is not None]

    def wait_ready(self) -> None:
        """Return once every game server is ready to play; raise if one failed."""
        for index in range(len(self._pipes)):
            self._receive(index, READY_TIMEOUT_S)

    def start(self, at: float) -> None:
        """Tell every game server to play from `at` (epoch seconds)."""
        for pipe in self._pipes:
            pipe.send(at)

    def results(self, duration_s: float) -> list[tuple[int, DriveStats]]:
        """Each game server's ``(pid, stats)`` once it played."""
        out = [self._receive(i, duration_s + RESULT_GRACE_S) for i in range(len(self._pipes))]
        for proc in self._procs:
            proc.join(timeout=10.0)
        return [(int(pid), stats) for pid, stats in out]

    def close(self) -> None:
        """Stop any game server still running."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
            proc.join(timeout=5.0)
        for pipe in self._pipes:
            pipe.close()

    def _receive(self, index: int, timeout: float) -> Any:
        pipe, proc = self._pipes[index], self._procs[index]
        deadline = time.monotonic() + timeout
        while not pipe.poll(0.2):
            if not proc.is_alive() or time.monotonic() > deadline:
                raise GameschedError(f"game server {index} (pid {proc.pid}) "
                                     f"{'stopped' if not proc.is_alive() else 'did not answer'}"
                                     f" (exit code {proc.exitcode})")
        kind, body = pipe.recv()
        if kind == "error":
            raise GameschedError(f"game server {index} failed: {body}")
        return body


def serve(job: ServerJob, pipe: Connection) -> None:
    """A game server: take over its share of the open sessions, say ready, play from the
    start time it is given, and send back its stats."""
    own_session()
    # The tick loop keeps this process busy; the client's coalescing thread must still get
    # the interpreter every tick to hand each batch over on time.
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    try:
        client, driver = _prepare(job)
        pipe.send(("ready", os.getpid()))
        start_at = pipe.recv()
        try:
            with frozen_heap():
                stats = driver.run(job.duration_s, lambda _s: None, start_at=start_at)
        finally:
            client.close()
        pipe.send(("done", (os.getpid(), stats)))
    except Exception:  # noqa: BLE001 - the simulator reports it; a game server has no console
        # the innermost frames: where it failed, not the game loop that called it
        pipe.send(("error", traceback.format_exc(limit=-INNER_FRAMES)))
    finally:
        pipe.close()


def _prepare(job: ServerJob) -> tuple[Client, LoadDriver]:
    client = job.mode.client(create_app(job.settings), job.settings)
    client.connect()  # at boot, as a game server does: its first tick does not pay it
    schedule = job.schedule
    schedule.share = job.share
    for spec in schedule.population.open_specs(job.share):
        client.adopt_session(job.ids[spec.index], session_type=spec.session_type,
                             players=spec.players, region=spec.region)
    return client, LoadDriver(client, schedule, job.ids)
