"""``gamesched drain`` on real workers while a game server keeps sending: every session of
the drained instance moves, the game server sends its work to the new instance without a
restart, and no update is lost on the way, though updates sent after the move are applied
before those the drained instance had not yet run."""

from __future__ import annotations

import os
import signal
import time
from pathlib import Path

from app.client.api import GameClient
from app.fleet.fleets import stop_process_groups
from app.observe.recorder import Execution
from app.players.sessions import read_states
from app.protocol.names import UPDATE_TASK
from app.settings import Settings
from app.tasking.broker import waiting
from app.tasking.factory import create_app
from tests.instances.live import Feeder, applied, gamesched_drain, open_on, start_instances
from tests.waiting import wait_for

SESSIONS = 16


def test_a_drain_moves_every_session_and_loses_no_update_on_the_way(
        live_settings: Settings, tmp_path: Path) -> None:
    settings = live_settings.model_copy(update={"record_latency": True})
    procs = start_instances(settings, tmp_path)
    app = create_app(settings)
    client = GameClient(app)
    try:
        sessions, on_east = open_on(client, SESSIONS, session_type="ranked", players=2)
        feeder = Feeder(client, sessions).sending(10)
        # east falls behind: what it was sent waits in its queue while the sessions move,
        # and the updates sent to west after the move overtake it
        os.killpg(procs[0].pid, signal.SIGSTOP)
        try:
            wait_for(lambda: waiting(app, "player.east").messages >= 3,
                     what="a backlog on east")
            drained = gamesched_drain(settings, "east")
            # the game server learns the move by itself, while it keeps sending
            wait_for(lambda: all(client.instance_of(s) == "west" for s in sessions),
                     timeout=10, what="the game server to follow the move")
            moved_at = feeder.seq
            wait_for(lambda: applied(client, on_east) > moved_at, timeout=10,
                     what="west to apply updates sent after the move, ahead of east's")
        finally:
            os.killpg(procs[0].pid, signal.SIGCONT)
        assert drained.returncode == 0, drained.stdout + drained.stderr
        assert f"east: draining; {len(on_east)} sessions moved: {len(on_east)} to west" in (
            drained.stdout)
        assert "east holds no session" in drained.stdout
        sent_before = feeder.seq
        wait_for(lambda: feeder.seq >= sent_before + 10, what="more rounds after the move")
        feeder.stop.set()
        feeder.join(timeout=10)
        client.flush()
        app.runtime.recorder.drain()

        hot = app.runtime.hot
        # east's backlog runs once it is back (or goes on to west if east was fenced)
        wait_for(lambda: not feeder.lost(), timeout=30, what="every update applied")

        last_round_at = time.time()
        feeder.send_round()  # after the move, every session's work runs on west
        client.flush()
        wait_for(lambda: all(st.seq == feeder.seq for st in read_states(hot, sessions).values()),
                 timeout=30, what="the last round applied")
        ran: list[Execution] = []
        wait_for(lambda: ran.extend(e for e in app.runtime.recorder.drain()
                                    if e.task == UPDATE_TASK and e.handoff >= last_round_at)
                 or ran, what="its records")
        assert {e.queue for e in ran} == {"player.west"}
    finally:
        client.close()
        stop_process_groups(procs)

