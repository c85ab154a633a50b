"""Background dilation on a live worker: a background task pauses after it runs for as long
as the controller's background level asks, so the next one starts that much later."""

from __future__ import annotations

import itertools
import time

import pytest
from celery.worker import WorkController

from app.client.api import GameClient
from app.control import dilation
from app.control.controller import Decision, write_decision
from app.observe.recorder import Execution
from app.players import sessions
from app.settings import Settings
from app.tasking.factory import create_app
from tests.waiting import wait_for

LEVEL = dilation.BACKGROUND_FLOOR


@pytest.mark.worker_role("background")
def test_background_work_pauses_at_the_controllers_level(live_settings: Settings,
                                                         celery_worker: WorkController) -> None:
    app = create_app(live_settings)
    write_decision(app.runtime.hot, Decision(at=time.time(), cpu=0.5, depths={}, ai_level=1.0,
                                             shed_background=False, background_level=LEVEL))
    app.runtime.recorder.drain()
    ids = [f"dilated-{i}" for i in range(200)]
    for session_id in ids:  # hot states to read: each snapshot costs a round trip and SQL
        sessions.ensure_state(app.runtime.hot, session_id)
    client = GameClient(app)
    for _ in range(3):
        client.submit_background("snapshot", ids)
    client.close()
    runs: list[Execution] = []

    def three() -> bool:
        runs.extend(app.runtime.recorder.drain())
        return len(runs) >= 3

    wait_for(three, timeout=60, what="three background runs")
    runs.sort(key=lambda e: e.started)
    for ran, following in itertools.pairwise(runs):
        pause = dilation.pause_after(ran.done - ran.started, LEVEL)
        assert pause > 0
        assert following.started - ran.done >= pause - 0.001, (ran, following)
