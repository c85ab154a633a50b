"""Starting server instances for the live tests."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import uuid
from collections.abc import Mapping
from pathlib import Path

from kombu.exceptions import OperationalError
from redis import RedisError

from app.client.api import GameClient
from app.instances.base import Registry
from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import GameschedCelery, create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for


def start_instance(settings: Settings, instance: str, log: Path) -> subprocess.Popen[bytes]:
    """``gamesched worker --role player --instance <instance>``, once it consumes."""
    node = f"player@{instance}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--role", "player", "--instance",
             instance, "--loglevel", "INFO"],
            cwd=ROOT, env={**os.environ, **settings.to_env()}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    app = create_app(settings)
    wait_for(lambda: _answers(app, node), timeout=60, what=f"{node}")
    return proc


def _answers(app: GameschedCelery, node: str) -> bool:
    """Whether `node` answers (False while the broker does not: it may be starting again)."""
    try:
        return node in live_workers(app, timeout=0.5)
    except (OperationalError, RedisError, OSError):
        return False


PAIR = ("east", "west")  # the instances most tests run


def start_instances(settings: Settings, tmp_path: Path, names: tuple[str, ...] = PAIR,
                    hot_urls: Mapping[str, str] | None = None) -> list[subprocess.Popen[bytes]]:
    """`start_instance` for each of `names`, logging to ``<name>.log`` in `tmp_path`; with
    `hot_urls`, each keeps its sessions' state on the Redis named there for it."""
    return [start_instance(settings.model_copy(update={"hot_url": hot_urls[name]})
                           if hot_urls else settings, name, tmp_path / f"{name}.log")
            for name in names]


def gamesched_drain(settings: Settings, instance: str) -> subprocess.CompletedProcess[str]:
    """``gamesched drain <instance>``, as an operator runs it; its output captured."""
    return subprocess.run([sys.executable, "-m", "app.cli", "drain", instance], cwd=ROOT,
                          text=True, env={**os.environ, **settings.to_env()},
                          capture_output=True, timeout=60, check=False)


def start_controller(settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``gamesched controller`` (beat and its tick), logging to controller.log."""
    with open(tmp_path / "controller.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "controller", "--schedule",
             str(tmp_path / "beat"), "--loglevel", "INFO"], cwd=ROOT,
            env={**os.environ, **settings.to_env()}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)


ROUND_S = 0.02  # a feeding game server sends every session an update this often


class Feeder(threading.Thread):
    """A game server's loop: every round, one update per session, each setting a field of
    its own (``f<seq>``), so that a lost update leaves its field missing (`lost`)."""

    def __init__(self, client: GameClient, sessions: list[str]) -> None:
        super().__init__(daemon=True)
        self.client, self.sessions = client, sessions
        self.seq = 0
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.wait(ROUND_S):
            self.send_round()

    def sending(self, rounds: int) -> Feeder:
        """Start, and return once `rounds` rounds have been sent."""
        first = self.seq
        self.start()
        wait_for(lambda: self.seq >= first + rounds, what="the game server to be sending")
        return self

    def send_round(self) -> None:
        self.seq += 1
        for session in self.sessions:
            self.client.submit_update(session, self.seq, {f"f{self.seq}": self.seq})

    def lost(self) -> dict[str, list[int]]:
        """The updates each session lacks in the hot store of the instance it runs on (none
        when every one was applied)."""
        states = self.client.states(self.sessions)
        return {s: missing for s, st in states.items()
                if (missing := [n for n in range(1, self.seq + 1) if f"f{n}" not in st.fields])}


def placed_on(registry: Registry, instance: str, prefix: str) -> str:
    """A new session ``<prefix>-<n>`` the registry places on `instance`."""
    return next(s for s in (f"{prefix}-{n}" for n in range(100))
                if registry.place(s, 1.0) == instance)


def open_on(client: GameClient, count: int, **spec: object) -> tuple[list[str], list[str]]:
    """Open `count` sessions of unique ids; returns them, and those placed on ``east``
    (some, not all)."""
    tag = uuid.uuid4().hex[:6]  # the database keeps other tests' sessions
    sessions = [f"{tag}-{n}" for n in range(count)]
    for session in sessions:
        client.open_session(session, **spec)
    on_east = sorted(s for s in sessions if client.instance_of(s) == "east")
    assert on_east and len(on_east) < count
    return sessions, on_east


def applied(client: GameClient, sessions: list[str]) -> int:
    """The lowest sequence number applied among `sessions`, each read in the hot store of
    the instance it runs on."""
    states = client.states(sessions)
    return min((states[s].seq if s in states else 0) for s in sessions)
