"""A worker started by ``gamesched worker`` imports the task modules of its own queues only,
and still answers the controller's commands for its role."""

from __future__ import annotations

from pathlib import Path

from app.fleet.fleets import ProcessFleet
from app.protocol.names import ANALYTICS_TASK, SNAPSHOT_TASK, UPDATE_TASK
from app.settings import Settings
from app.tasking.factory import create_app
from app.tasking.slots import set_slots, slots
from tests.waiting import wait_for


def test_a_background_worker_registers_its_tasks_and_takes_slots(
        live_settings: Settings, tmp_path: Path) -> None:
    settings = live_settings.model_copy(update={"instance_id": "modules-live"})
    app = create_app(settings)
    with ProcessFleet(settings, roles=("background",), env=settings.to_env(),
                      log_dir=str(tmp_path)) as fleet:
        node = fleet.hostname("background")
        registered = app.control.inspect(destination=[node], timeout=2.0).registered() or {}
        tasks = set(registered[node])
        assert {SNAPSHOT_TASK, ANALYTICS_TASK} <= tasks
        assert UPDATE_TASK not in tasks  # the player role's module was not imported
        before = slots(app, "background")
        assert set(before) == {node}
        assert set_slots(app, "background", before[node] + 1) == before
        wait_for(lambda: slots(app, "background") == {node: before[node] + 1}, timeout=30,
                 what="the slot set by the controller's command")
