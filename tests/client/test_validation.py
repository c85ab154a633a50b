"""Bad input to every client call: InvalidRequest naming the field, and nothing enqueued."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kombu.transport.memory import Channel

from app.client.api import GameClient
from app.client.requests import check_decisions
from app.errors import InvalidRequest
from app.settings import Settings
from app.tasking.broker import queue_depths
from app.tasking.factory import GameschedCelery, create_app


@pytest.fixture
def app(eager_settings: Settings) -> GameschedCelery:
    """An app on the in-memory broker; nothing consumes, so queued work stays visible."""
    return create_app(eager_settings)


@pytest.fixture
def client(app: GameschedCelery) -> Iterator[GameClient]:
    client = GameClient(app)
    client.open_session("s1", session_type="ranked", players=4, region="r1")
    yield client
    client.close()
    Channel.queues.clear()  # nothing consumed these; leave the in-memory broker empty


Call = Callable[[GameClient], Any]
NAN = float("nan")

CASES: list[tuple[str, Call, str]] = [
    ("open: wrong type", lambda c: c.open_session(42), "session_id"),
    ("open: bad id", lambda c: c.open_session("has space"), "session_id"),
    ("open: players type", lambda c: c.open_session("s2", players="3"), "players"),
    ("open: players range", lambda c: c.open_session("s2", players=0), "players"),
    ("open: session type", lambda c: c.open_session("s2", session_type="raid"), "session_type"),
    ("open: unknown field", lambda c: c.open_session("s2", colour="red"), "colour"),
    ("adopt: players", lambda c: c.adopt_session("s2", players=0), "players"),
    ("adopt: session type", lambda c: c.adopt_session("s2", session_type="raid"),
     "session_type"),
    ("update_session: players", lambda c: c.update_session("s1", players=-1), "players"),
    ("update_session: unknown", lambda c: c.update_session("nope", players=2), "session_id"),
    ("move: unknown session", lambda c: c.move_session("nope", "r2"), "session_id"),
    ("move: no region", lambda c: c.move_session("s1", None), "region"),
    ("move: region type", lambda c: c.move_session("s1", 7), "region"),
    ("close: wrong type", lambda c: c.close_session(None), "session_id"),
    ("close: unknown", lambda c: c.close_session("nope"), "session_id"),
    ("update: unknown session", lambda c: c.submit_update("nope", 1, {}), "session_id"),
    ("update: seq type", lambda c: c.submit_update("s1", "1", {}), "seq"),
    ("update: seq range", lambda c: c.submit_update("s1", 0, {}), "seq"),
    ("update: state type", lambda c: c.submit_update("s1", 1, ["hp", 3]), "state"),
    ("update: state nan", lambda c: c.submit_update("s1", 1, {"hp": float("nan")}), "state.hp"),
    ("update: position out", lambda c: c.submit_update("s1", 1, {}, (5.0, -1.0)), "position"),
    ("update: position shape", lambda c: c.submit_update("s1", 1, {}, (5.0,)), "position"),
    ("physics: region type", lambda c: c.submit_physics(7, 1), "region"),
    ("physics: missing frame", lambda c: c.submit_physics("r1", None), "frame"),
    ("physics: frame range", lambda c: c.submit_physics("r1", -1), "frame"),
    ("physics: frame too large", lambda c: c.submit_physics("r1", 2**64), "frame"),
    ("physics: dt range", lambda c: c.submit_physics("r1", 1, dt_ms=0), "dt_ms"),
    ("physics: bodies range", lambda c: c.submit_physics("r1", 1, bodies=10**6), "bodies"),
    ("frame: regions type", lambda c: c.submit_physics_frame(1, [("r1", 1)]), "regions"),
    ("frame: no regions", lambda c: c.submit_physics_frame(1, {}), "regions"),
    ("frame: frame range", lambda c: c.submit_physics_frame(-1, {"r1": 1}), "frame"),
    ("frame: frame too large", lambda c: c.submit_physics_frame(2**64, {"r1": 1}), "frame"),
    ("frame: dt range", lambda c: c.submit_physics_frame(1, {"r1": 1}, dt_ms=500), "dt_ms"),
    ("frame: bodies range", lambda c: c.submit_physics_frame(1, {"r1": 1, "r2": -3}),
     "regions.r2"),
    ("frame: bodies type", lambda c: c.submit_physics_frame(1, {"r1": "9"}), "regions.r1"),
    ("frame: region name", lambda c: c.submit_physics_frame(1, {"r 1": 1}), "regions.r 1.[key]"),
    ("bodies: nothing", lambda c: c.change_bodies("r1"), "spawn"),
    ("bodies: region", lambda c: c.change_bodies("r 1", remove=["b1"]), "region"),
    ("bodies: not a map", lambda c: c.change_bodies("r1", spawn=[("b1", 1, 2)]), "spawn.0"),
    ("bodies: no id", lambda c: c.change_bodies("r1", spawn=[{"x": 1, "y": 2}]), "spawn.0.id"),
    ("bodies: outside", lambda c: c.change_bodies("r1", spawn=[{"id": "b", "x": 1001, "y": 2}]),
     "spawn.0.x"),
    ("bodies: outside its region", lambda c: c.change_bodies(
        "w1", spawn=[{"id": "b", "x": 100, "y": 2}]), "spawn.0.x"),  # w1 is x 5000 to 10000
    ("bodies: too big", lambda c: c.change_bodies(
        "w1", spawn=[{"id": "b", "x": 5100, "y": 2, "radius": 25}]), "spawn.0.radius"),
    ("bodies: NaN", lambda c: c.change_bodies("r1", spawn=[{"id": "b", "x": 1, "y": NAN}]),
     "spawn.0.y"),
    ("bodies: too fast", lambda c: c.change_bodies(
        "r1", spawn=[{"id": "b", "x": 1, "y": 2, "vx": 9e9}]), "spawn.0.vx"),
    ("bodies: no mass", lambda c: c.change_bodies(
        "r1", spawn=[{"id": "b", "x": 1, "y": 2, "mass": 0}]), "spawn.0.mass"),
    ("bodies: twice", lambda c: c.change_bodies(
        "r1", spawn=[{"id": "b", "x": 1, "y": 2}, {"id": "b", "x": 3, "y": 4}]), "spawn.1.id"),
    ("bodies: unknown field", lambda c: c.change_bodies(
        "r1", spawn=[{"id": "b", "x": 1, "y": 2, "colour": "red"}]), "spawn.0.colour"),
    ("bodies: removal id", lambda c: c.change_bodies("r1", remove=[""]), "remove.0"),
    ("ai: npc type", lambda c: c.submit_ai(3, (1.0, 1.0)), "npc_id"),
    ("ai: missing position", lambda c: c.submit_ai("n1", None), "position"),
    ("ai: position out", lambda c: c.submit_ai("n1", (1e9, 1.0)), "position"),
    ("ai: player out", lambda c: c.submit_ai("n1", (1.0, 1.0), [(1.0, 1e9)]), "players.0"),
    ("ai batch: type", lambda c: c.submit_ai_batch("n1"), "decisions"),
    ("ai batch: empty", lambda c: c.submit_ai_batch([]), "decisions"),
    ("ai: tier", lambda c: c.submit_ai("n1", (1.0, 1.0), tier="heroic"), "tier"),
    ("ai batch: shape", lambda c: c.submit_ai_batch([("n1", (1.0, 1.0))]), "decisions.0"),
    ("ai batch: tier", lambda c: c.submit_ai_batch([("n1", (1.0, 1.0), [], "full"),
                                                    ("n2", (1.0, 1.0), [], 3)]),
     "decisions.1.tier"),
    ("ai batch: npc", lambda c: c.submit_ai_batch([("n1", (1.0, 1.0), []), ("", (1.0, 1.0), [])]),
     "decisions.1.npc_id"),
    ("ai batch: position", lambda c: c.submit_ai_batch([("n1", (-5.0, 1.0), [])]),
     "decisions.0.position"),
    ("ai batch: player", lambda c: c.submit_ai_batch([("n1", (1.0, 1.0), [(1.0, 1e9)])]),
     "decisions.0.players.0"),
    ("background: kind", lambda c: c.submit_background("mining", []), "kind"),
    ("background: payload", lambda c: c.submit_background("snapshot", "s1"), "payload"),
    ("background: not plain data", lambda c: c.submit_background("analytics", [{1, 2}]),
     "payload"),
]


@pytest.mark.parametrize(("name", "call", "field"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_names_the_field_and_enqueues_nothing(
    client: GameClient, app: GameschedCelery, name: str, call: Call, field: str
) -> None:
    depths, sent = queue_depths(app), client.tasks_sent
    with pytest.raises(InvalidRequest) as caught:
        call(client)
    assert caught.value.field == field, caught.value
    assert field in str(caught.value)
    assert client.flush() == 0
    assert client.tasks_sent == sent
    assert queue_depths(app) == depths


def test_sequence_going_backwards_is_refused_and_later_updates_still_go(
    client: GameClient,
) -> None:
    client.submit_update("s1", 5, {"hp": 90})
    with pytest.raises(InvalidRequest) as caught:
        client.submit_update("s1", 4, {"hp": 95})
    assert caught.value.field == "seq" and caught.value.value == 4
    client.submit_update("s1", 6, {"hp": 80})
    assert client.flush() == 2


def test_an_adopted_session_takes_updates_here_without_a_message_of_its_own(
    client: GameClient, app: GameschedCelery,
) -> None:
    depths, sent = queue_depths(app), client.tasks_sent
    client.adopt_session("s9", session_type="coop", players=3, region="r2")
    assert client.tasks_sent == sent and queue_depths(app) == depths  # adopting sends nothing
    assert client.sessions.region_players("r2") == 3  # its players count where it plays
    client.submit_update("s9", 41, {"hp": 70})  # where another process left its sequence
    assert client.flush() == 1


def test_a_released_session_leaves_what_was_buffered_of_it_and_then_takes_no_update(
        client: GameClient) -> None:
    client.submit_update("s1", 1, {"hp": 100})
    sent = client.tasks_sent
    assert client.release_sessions(["s1"]) == 1  # handed to another game server
    assert client.tasks_sent == sent + 1 and client.flush() == 0  # its update went first
    assert client.sessions.region_players("r1") == 0  # its players play elsewhere now
    with pytest.raises(InvalidRequest) as caught:
        client.submit_update("s1", 2, {"hp": 90})
    assert caught.value.field == "session_id"


def test_session_moves_count_at_once_and_leave_together_in_one_task(
        app: GameschedCelery, client: GameClient) -> None:
    client.open_session("s2", session_type="lobby", players=1, region="r1")
    for region in ("r2", "r3"):
        client.move_session("s1", region)
    client.move_session("s2", "r3")
    assert client.sessions.players_by_region() == {"r3": 5}  # at once, before any send
    sent = client.tasks_sent
    assert client.flush() == 3
    assert (client.tasks_sent - sent, client.move_tasks_sent) == (1, 1)
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        messages = iter(lambda: channel.basic_get("player", no_ack=True), None)
        moves = [m for m in messages if m.headers["task"] == "gamesched.player.session_moves"]
    assert [m.decode()[0][0] for m in moves] == [[["s1", "r2"], ["s1", "r3"], ["s2", "r3"]]]


def test_a_decisions_tier_travels_with_it_and_is_left_out_when_not_given() -> None:
    batch = check_decisions([("n1", (1.0, 2.0), [(3.0, 4.0)], "reduced"),
                             ("n2", (5.0, 6.0), [])], 100.0)
    assert batch == [["n1", [1.0, 2.0], [[3.0, 4.0]], "reduced"], ["n2", [5.0, 6.0], []]]


def test_frames_and_ai_batches_return_at_once_and_leave_by_flush_under_their_ids(
        app: GameschedCelery, client: GameClient) -> None:
    sent = client.tasks_sent
    handles = [*client.submit_physics_frame(1, {"r1": 3}),
               *client.ai_tick(0, [("npc-1", (1.0, 1.0), [(2.0, 2.0)])])]
    client.flush()  # waits for the client's sending thread
    assert client.tasks_sent - sent == len(handles) and client.send_failures == 0
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        ids = {m.headers["id"] for queue in ("physics.0", "physics.1", "ai")
               for m in iter(lambda q=queue: channel.basic_get(q, no_ack=True), None)}
    assert {str(h.id) for h in handles} <= ids
