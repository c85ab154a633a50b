"""Routing on the live broker: each queue's work reaches only its role's workers."""

from __future__ import annotations

from app.client.api import GameClient
from app.observe.recorder import Execution
from app.settings import Settings
from app.tasking.factory import create_app
from tests.subprocesses import StartWorker
from tests.waiting import wait_for


def test_player_work_is_consumed_by_player_workers_never_by_ai_only_workers(
    live_settings: Settings, start_worker: StartWorker
) -> None:
    ai_node = start_worker("ai", "ai-only")
    player_node = start_worker("player", "player")
    app = create_app(live_settings)
    client = GameClient(app)
    for i in range(20):
        client.open_session(f"route-{i}", session_type="casual")
    for seq in range(1, 6):
        for i in range(20):
            client.submit_update(f"route-{i}", seq, {"hp": 100 - seq})
        client.flush()
        client.submit_ai(f"npc-{seq}", (5.0, 5.0), [(6.0, 6.0)])
    client.close()
    seen: list[Execution] = []

    def all_ran() -> bool:
        seen.extend(app.runtime.recorder.drain())
        return len(seen) >= client.tasks_sent

    wait_for(all_ran, timeout=60, what=f"{client.tasks_sent} tasks")
    player = [e for e in seen if e.queue == "player"]
    ai = [e for e in seen if e.queue == "ai"]
    assert len(player) >= 25 and len(ai) == 5
    assert {e.hostname for e in player} == {player_node}
    assert {e.hostname for e in ai} == {ai_node}
    assert all(e.ok for e in seen)
