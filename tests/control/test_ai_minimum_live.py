"""The guaranteed minimum on a live AI worker: with the controller's tier cap at minimal,
a game server's AI loop still has every NPC decided at least once a second, by decisions
that ran on the worker."""

from __future__ import annotations

import time
from itertools import pairwise

import pytest
from celery.worker import WorkController

from app.client.api import GameClient
from app.client.npcs import AI_TICK_HZ
from app.control.controller import Decision, write_decision
from app.observe.recorder import Execution
from app.settings import Settings
from app.tasking.factory import create_app
from tests.waiting import wait_for

NPCS = [(f"npc-{i}", (100.0 + 50 * i, 100.0), [(110.0 + 50 * i, 100.0)]) for i in range(12)]
SECONDS = 3


@pytest.mark.worker_role("ai")
def test_at_the_minimal_tier_every_npc_is_still_decided_every_second(
        live_settings: Settings, celery_worker: WorkController) -> None:
    app = create_app(live_settings)
    write_decision(app.runtime.hot, Decision(at=time.time(), cpu=1.0, depths={}, ai_level=0.25,
                                             shed_background=True, ai_tier="minimal"))
    app.runtime.recorder.drain()
    client = GameClient(app)
    sent: dict[str, tuple[str, ...]] = {}
    client.ai_listener = lambda task_id, batch: sent.update({task_id: tuple(d[0] for d in batch)})
    start = time.time()
    for tick in range(round(AI_TICK_HZ * SECONDS)):  # the game server's AI loop, in real time
        client.ai_tick(tick, NPCS)
        time.sleep(max(0.0, start + (tick + 1) / AI_TICK_HZ - time.time()))
    end = time.time()
    client.close()
    assert client.ai_decided == {"minimal": sum(len(npcs) for npcs in sent.values())}
    runs: list[Execution] = []

    def all_ran() -> bool:
        runs.extend(e for e in app.runtime.recorder.drain() if e.task_id in sent)
        return len(runs) == len(sent)

    wait_for(all_ran, timeout=30, what=f"{len(sent)} AI batches")
    assert all(e.ok for e in runs)
    done = {e.task_id: e.done for e in runs}
    for npc, *_ in NPCS:
        decided = sorted(done[t] for t, npcs in sent.items() if npc in npcs)
        gaps = [b - a for a, b in pairwise([start, *decided])]
        assert len(decided) >= SECONDS and max(gaps) <= 1.0, (npc, gaps)
    assert max(done.values()) <= end + 1.0
