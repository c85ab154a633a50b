"""The textbook baseline's worker on the live broker, started as the simulator starts it
(`ProcessFleet`, role ``all``): Celery's defaults, and the textbook client's work applied
and timed in its prefork children."""

from __future__ import annotations

import os
from pathlib import Path

from app.client.textbook import TextbookClient
from app.fleet.fleets import ProcessFleet
from app.observe.recorder import Execution
from app.players import sessions
from app.protocol.names import AI_TASK, PHYSICS_REGION_TASK, SESSION_TASK, STATE_TASK
from app.protocol.vocab import RoleName
from app.settings import Settings
from app.tasking.factory import create_app
from tests.waiting import wait_for


def test_a_textbook_worker_runs_celerys_defaults_and_applies_each_update(
        live_settings: Settings, tmp_path: Path) -> None:
    settings = live_settings.model_copy(update={"naive": True, "textbook": True})
    app = create_app(settings)
    with ProcessFleet(settings, roles=(RoleName.ALL,), log_dir=str(tmp_path)):
        node = f"all@{settings.instance_id}-{os.getpid()}"
        inspect = app.control.inspect(destination=[node], timeout=2)
        stats, queues = inspect.stats()[node], inspect.active_queues()[node]
        cores = os.cpu_count() or 1
        assert [q["name"] for q in queues] == ["celery"]
        assert stats["pool"]["implementation"].endswith("prefork:TaskPool")
        assert stats["pool"]["max-concurrency"] == cores
        assert stats["prefetch_count"] == 4 * cores  # Celery's default multiplier
        client = TextbookClient(app)
        client.open_session("tb-1")
        client.open_session("tb-2")
        for seq in range(1, 6):
            for s in ("tb-1", "tb-2"):
                client.submit_update(s, seq, {"hp": 100 - seq, "who": s}, (seq * 1.0, 2.0))
        client.submit_physics_frame(1, {"r1": 4, "r2": 0})
        client.submit_ai_batch([("npc-1", (5.0, 5.0), []), ("npc-2", (6.0, 6.0), [])])
        ran: list[Execution] = []

        def all_ran() -> bool:
            ran.extend(app.runtime.recorder.drain())
            return len(ran) >= 16

        wait_for(all_ran, timeout=30, what="the textbook worker to run 16 tasks")
    assert sorted(e.task for e in ran) == sorted(
        [SESSION_TASK] * 2 + [STATE_TASK] * 10 + [PHYSICS_REGION_TASK] * 2 + [AI_TASK] * 2)
    assert {(e.queue, e.hostname, e.ok) for e in ran} == {("celery", node, True)}
    assert all(e.done >= e.started >= e.handoff > 0 and e.sent for e in ran)
    hot = app.runtime.hot
    for s in ("tb-1", "tb-2"):
        assert sessions.read_state(hot, s) == sessions.HotState(
            5, {"hp": 95, "who": s, "pos": [500, 200]})
    # Two children apply at once: an update that lands after a newer one is stale.
    assert 2 <= sessions.network_totals(hot).updates <= 10
