"""Server instances on real workers: ``gamesched worker --instance`` registers its instance,
the client places each session on one and sends all its work to that instance's queue, a
second game server finds the same instance, and an instance that stops gets no new
session."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import uuid
from collections.abc import Iterable
from pathlib import Path

import redis
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.client.api import GameClient
from app.fleet.fleets import stop_process_groups
from app.instances.registry import RedisRegistry
from app.players.models import GameSession
from app.players.sessions import read_states
from app.protocol.names import SESSION_TASK, UPDATE_TASK
from app.settings import Settings
from app.tasking.factory import create_app
from tests.instances.live import start_instance
from tests.subprocesses import ROOT
from tests.waiting import wait_for

SESSIONS = 24


def test_each_session_runs_on_one_instance_and_all_its_work_goes_there(
        live_settings: Settings, redis_client: redis.Redis, tmp_path: Path) -> None:
    settings = live_settings.model_copy(update={"record_latency": True})
    procs = {name: start_instance(settings, name, tmp_path / f"{name}.log")
             for name in ("east", "west")}
    registry = RedisRegistry(redis_client)
    try:
        assert {s.name for s in registry.instances() if s.live} == {"east", "west"}
        app = create_app(settings)
        client = GameClient(app)
        try:
            tag = uuid.uuid4().hex[:6]  # the database keeps other tests' sessions
            placed = {}
            for n in range(SESSIONS):
                client.open_session(f"{tag}-{n}", session_type="casual", players=1 + n % 4)
                placed[f"{tag}-{n}"] = client.instance_of(f"{tag}-{n}")
            assert set(placed.values()) == {"east", "west"}
            for seq in (1, 2, 3):
                for session in placed:
                    client.submit_update(session, seq, {"hp": seq})
            client.flush()
            hot = app.runtime.hot
            wait_for(lambda: {s: st.seq for s, st in read_states(hot, list(placed)).items()}
                     == dict.fromkeys(placed, 3), timeout=30, what="every update applied")
            wait_for(lambda: _instances_in_sql(app.runtime.sessions, placed) == placed,
                     timeout=30, what="every session recorded on its instance")

            ran = [e for e in app.runtime.recorder.drain()
                   if e.task in {UPDATE_TASK, SESSION_TASK}]
            assert ran
            for execution in ran:  # each batch went to one instance's queue, and ran there
                instance = execution.queue.removeprefix("player.")
                assert execution.hostname == f"player@{instance}"
            assert {e.queue for e in ran} == {"player.east", "player.west"}

            status = subprocess.run(
                [sys.executable, "-m", "app.cli", "status"], cwd=ROOT, capture_output=True,
                env={**os.environ, **settings.to_env(), "COLUMNS": "160"}, text=True,
                timeout=60, check=True).stdout
            for name in ("east", "west"):
                row = re.search(rf"^\W*{name}\W+yes\W+(\d+)\W+5000\W", status, re.MULTILINE)
                assert row is not None, status
                assert int(row[1]) == sum(1 for i in placed.values() if i == name)
                assert f"player.{name}" in status

            other = GameClient(create_app(settings))  # a second game server process
            try:
                other.adopt_session(f"{tag}-0", session_type="casual", players=1)
                assert other.instance_of(f"{tag}-0") == placed[f"{tag}-0"]
            finally:
                other.close()

            os.killpg(procs["west"].pid, signal.SIGTERM)  # a warm shutdown: it leaves
            procs["west"].wait(timeout=30)
            assert [(s.name, s.live) for s in registry.instances()] == [
                ("east", True), ("west", False)]
            for n in range(SESSIONS, SESSIONS + 10):
                client.open_session(f"{tag}-{n}", session_type="casual", players=1)
                assert client.instance_of(f"{tag}-{n}") == "east"
            east = [s for s, i in placed.items() if i == "east"]
            client.close_session(east[0])
            states = {s.name: s for s in registry.instances()}
            assert states["east"].sessions == len(east) - 1 + 10
        finally:
            client.close()
    finally:
        stop_process_groups(procs.values())


def _instances_in_sql(sessions: sessionmaker[Session], ids: Iterable[str]) -> dict[str, str]:
    with sessions() as db:
        rows = db.scalars(select(GameSession).where(GameSession.id.in_(list(ids))))
        return {row.id: row.instance_id for row in rows}
