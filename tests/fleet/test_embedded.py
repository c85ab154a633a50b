"""The embedded default end to end in one process: in-memory broker, SQLite, every role."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.client.api import GameClient
from app.fleet.fleets import EmbeddedFleet
from app.observe.recorder import Execution
from app.players import sessions
from app.players.models import GameSession
from app.settings import Settings, load_settings
from app.tasking.factory import GameschedCelery, create_app
from tests.waiting import wait_for


@pytest.fixture(scope="module")
def fleet_settings(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Settings]:
    from kombu.transport.memory import Channel

    from app.db.migrate import upgrade

    Channel.queues.clear()  # no leftovers from other tests' in-memory brokers
    url = f"sqlite:///{tmp_path_factory.mktemp('embedded') / 'gs.db'}"
    upgrade(url)
    settings = load_settings(database_url=url, record_latency=True, instance_id="embedded")
    with EmbeddedFleet(settings):
        yield settings


@pytest.fixture
def app(fleet_settings: Settings) -> GameschedCelery:
    app = create_app(fleet_settings)
    app.runtime.recorder.drain()
    return app


def _collect(app: GameschedCelery, count: int) -> list[Execution]:
    got: list[Execution] = []

    def enough() -> bool:
        got.extend(app.runtime.recorder.drain())
        return len(got) >= count

    wait_for(enough, what=f"{count} executions")
    return got


def test_every_kind_of_work_reaches_its_queue_and_runs(app: GameschedCelery) -> None:
    client = GameClient(app)
    client.open_session("e1", session_type="ranked", players=2, region="r1")
    client.submit_update("e1", 1, {"hp": 5}, position=(10.0, 20.0))
    client.flush()
    client.submit_physics("r1", frame=1, bodies=10)
    client.submit_ai("npc-1", (1.0, 1.0), [(2.0, 2.0)])
    client.submit_background("analytics", [{"kind": "kill"}])
    client.close_session("e1")
    client.flush()  # the frames the first one sends every unit go by the client's thread
    done = _collect(app, client.tasks_sent)
    # physics goes to the unit owning r1, and the first frame of an owner map to every unit
    assert {e.queue for e in done} == {"player", "physics.0", "physics.1", "ai", "background"}
    assert all(e.ok for e in done)
    assert sessions.read_state(app.runtime.hot, "e1") == sessions.HotState(
        1, {"hp": 5, "pos": [1000, 2000]})
    with app.runtime.sessions() as db:
        row = db.scalar(select(GameSession).where(GameSession.id == "e1"))
        assert row is not None and row.status == "closed" and row.instance_id == "embedded"


def test_snapshot_persists_hot_state_to_sql(app: GameschedCelery) -> None:
    client = GameClient(app)
    client.open_session("e2")
    for seq in range(1, 4):
        client.submit_update("e2", seq, {"score": seq * 10})
    client.flush()
    _collect(app, client.tasks_sent)
    client.submit_background("snapshot", ["e2"])
    _collect(app, 1)
    with app.runtime.sessions() as db:
        row = db.get(GameSession, "e2")
        assert row is not None and row.snapshot_seq == 3
