"""The textbook client on the in-memory broker: a task per update, region and decision, each
on Celery's default queue as JSON without a priority, timed by the hand-off header; bad
input named and nothing sent."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.message import Message
from kombu.transport.memory import Channel

from app.client.textbook import TextbookClient
from app.errors import InvalidRequest
from app.players import sessions
from app.protocol.names import HANDOFF_HEADER, SENT_HEADER
from app.settings import Settings
from app.tasking.factory import GameschedCelery, create_app


@pytest.fixture
def app(eager_settings: Settings) -> Iterator[GameschedCelery]:
    """A textbook app on the in-memory broker; nothing consumes, so sent work stays."""
    Channel.queues.clear()
    yield create_app(eager_settings.model_copy(update={"naive": True, "textbook": True}))
    Channel.queues.clear()


@pytest.fixture
def client(app: GameschedCelery) -> TextbookClient:
    return TextbookClient(app)


def _sent(app: GameschedCelery) -> list[Message]:
    """Every message waiting in the broker, emptying it; fails on any queue but
    ``celery``."""
    assert set(Channel.queues) <= {"celery"}, sorted(Channel.queues)
    messages: list[Message] = []
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while (message := channel.basic_get("celery", no_ack=True)) is not None:
            messages.append(message)
    return messages


def test_every_update_region_and_decision_is_a_json_task_of_its_own_on_the_default_queue(
        app: GameschedCelery, client: TextbookClient) -> None:
    heard: list[tuple[str, list[Any]]] = []
    client.batch_listener = lambda task_id, entries: heard.append((task_id, entries))
    client.open_session("s1", session_type="ranked", players=2)
    updates = [client.submit_update("s1", seq, {"hp": 100 - seq}, (1.0, 2.0))
               for seq in (1, 2, 3)]
    frame = client.submit_physics_frame(7, {"r1": 3, "r2": 0, "r3": 9}, dt_ms=20.0)
    decided = client.submit_ai_batch([(f"npc-{i}", (5.0, 5.0), [(6.0, 6.0)]) for i in range(4)])
    client.submit_background("analytics", [{"kind": "kill"}])
    client.change_bodies("w0", [{"id": "crate", "x": 10.0, "y": 20.0, "vx": 4000.0}], ["old"])
    client.move_session("s1", "w2")
    assert client.flush() == 0
    messages = _sent(app)
    assert client.tasks_sent == len(messages) == 1 + 3 + 3 + 4 + 1 + 1 + 1
    assert client.move_tasks_sent == 1
    tasks = [m.headers["task"] for m in messages]
    assert tasks == ["gamesched.player.session_op", *["gamesched.textbook.apply_state"] * 3,
                     *["gamesched.physics.step_region"] * 3, *["gamesched.ai.decide"] * 4,
                     "gamesched.background.analytics", "gamesched.physics.change_bodies",
                     "gamesched.player.session_op"]
    for m in messages:
        assert m.content_type == "application/json"
        assert m.delivery_info["routing_key"] == "celery"
        assert m.properties["priority"] == 0  # none given: the broker's default
        assert m.headers[SENT_HEADER] >= m.headers[HANDOFF_HEADER] > 0
        assert "gs_claim" not in m.headers
    ids = [m.headers["id"] for m in messages]
    assert [u.id for u in updates] == ids[1:4]
    assert heard == [(ids[1 + i], [["s1", seq]]) for i, seq in enumerate((1, 2, 3))]
    assert [r.id for r in frame] == ids[4:7] and [r.id for r in decided] == ids[7:11]
    assert messages[1].decode()[0] == ["s1", 1, {"hp": 99}, [1.0, 2.0]]
    assert [m.decode()[0] for m in messages[4:7]] == [
        ["r1", 7, 20.0, 3], ["r2", 7, 20.0, 0], ["r3", 7, 20.0, 9]]
    assert messages[7].decode()[0] == ["npc-0", [5.0, 5.0], [[6.0, 6.0]]]
    assert len({m.headers[HANDOFF_HEADER] for m in messages[4:7]}) == 1  # one frame's
    assert messages[12].decode()[0] == ["w0", [["crate", 10.0, 20.0, 4000.0, 0.0, 10.0, 1.0]],
                                        ["old"]]
    assert messages[13].decode()[0] == ["update", "s1", {"region": "w2"}]


def test_opening_a_session_readies_its_hot_state_for_updates(
        app: GameschedCelery, client: TextbookClient) -> None:
    client.open_session("s-hot")
    assert sessions.read_state(app.runtime.hot, "s-hot") is not None
    assert _sent(app)[0].decode()[0][:2] == ["open", "s-hot"]
    client.update_session("s-hot", players=3)
    client.close_session("s-hot")
    assert [m.decode()[0] for m in _sent(app)] == [
        ["update", "s-hot", {"players": 3}], ["close", "s-hot", {}]]


Call = Callable[[TextbookClient], Any]

CASES: list[tuple[str, Call, str]] = [
    ("open: bad id", lambda c: c.open_session("has space"), "session_id"),
    ("open: players range", lambda c: c.open_session("s2", players=0), "players"),
    ("adopt: players range", lambda c: c.adopt_session("s2", players=0), "players"),
    ("update_session: players", lambda c: c.update_session("s1", players=-1), "players"),
    ("close: wrong type", lambda c: c.close_session(None), "session_id"),
    ("update: bad id", lambda c: c.submit_update("a b", 1, {}), "session_id"),
    ("update: seq type", lambda c: c.submit_update("s1", "1", {}), "seq"),
    ("update: seq range", lambda c: c.submit_update("s1", 0, {}), "seq"),
    ("update: state type", lambda c: c.submit_update("s1", 1, ["hp", 3]), "state"),
    ("update: state nan", lambda c: c.submit_update("s1", 1, {"hp": float("nan")}), "state.hp"),
    ("update: not json", lambda c: c.submit_update("s1", 1, {"hp": {1, 2}}), "state"),
    ("update: position out", lambda c: c.submit_update("s1", 1, {}, (5.0, -1.0)), "position"),
    ("frame: regions type", lambda c: c.submit_physics_frame(1, [("r1", 1)]), "regions"),
    ("frame: bodies range", lambda c: c.submit_physics_frame(1, {"r1": 1, "r2": -3}),
     "regions.r2"),
    ("ai batch: empty", lambda c: c.submit_ai_batch([]), "decisions"),
    ("ai batch: player", lambda c: c.submit_ai_batch([("n1", (1.0, 1.0), []),
                                                      ("n2", (1.0, 1.0), [(1.0, 1e9)])]),
     "decisions.1.players.0"),
    ("bodies: outside", lambda c: c.change_bodies("w0", [{"id": "b", "x": 9000.0, "y": 1.0}]),
     "spawn.0.x"),
    ("bodies: nothing", lambda c: c.change_bodies("w0"), "spawn"),
    ("move: no region", lambda c: c.move_session("s1", None), "region"),
    ("background: kind", lambda c: c.submit_background("mining", []), "kind"),
    ("background: not json", lambda c: c.submit_background("analytics", [{1, 2}]), "payload"),
]


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_sends_nothing(
        app: GameschedCelery, client: TextbookClient, name: str, call: Call,
        field: str) -> None:
    heard: list[object] = []
    client.batch_listener = lambda *args: heard.append(args)
    with pytest.raises(InvalidRequest) as caught:
        call(client)
    assert caught.value.field == field, caught.value
    assert client.tasks_sent == 0 and heard == []
    assert _sent(app) == []
