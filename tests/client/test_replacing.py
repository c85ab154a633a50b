"""A registry that started again empty: the client places its sessions again (all of them,
over as many rounds as it takes) and restores their state from SQL (in process memory and
SQLite; the real restart is tests/instances/test_restart_live.py)."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest
from kombu.serialization import loads
from sqlalchemy import create_engine
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import sessionmaker

from app.client.api import GameClient
from app.db import transaction
from app.errors import InvalidRequest
from app.instances.memory import MemoryRegistry
from app.players import sessions
from app.players.durable import write_behind
from app.players.hotstore import MemoryHotStore
from app.players.models import GameSession
from app.players.sessions import read_states
from app.protocol.vocab import SessionStatus
from app.tasking.factory import GameschedCelery
from app.tasking.runtime import Runtime


def _registry(*instances: tuple[str, int]) -> MemoryRegistry:
    registry = MemoryRegistry()
    for name, capacity in instances:
        registry.join(name, capacity)
    return registry


def _lose_the_registry(eager_app: GameschedCelery, client: GameClient) -> None:
    """Hot state and the registry start again empty, no instance back yet; the client
    notices."""
    eager_app.runtime.__dict__["hot"] = MemoryHotStore()
    client.instances = _registry()
    assert client.follow_moves() == 0


def _open_apart(eager_app: GameschedCelery, client: GameClient, count: int) -> list[str]:
    """`count` sessions opened on east and west (as placed), in this test's own hot state
    (nothing to replay: snapshot rounds may run); the client knows the registry's
    generation."""
    runtime = eager_app.runtime
    runtime.__dict__["hot"] = MemoryHotStore()
    runtime.hot.states.set_recovered()
    client.instances = _registry(("east", 100), ("west", 100))
    tag = uuid.uuid4().hex[:6]
    ids = [f"{tag}-{n}" for n in range(count)]
    with transaction(runtime.sessions) as db:  # as the fleet's session tasks record them
        for session_id in ids:
            sessions.open_session(db, session_id, instance_id="x", session_type="casual",
                                  players=1, region=None)
    for session_id in ids:
        sessions.ensure_state(runtime.hot, session_id)
        client.adopt_session(session_id, session_type="casual", players=1)
    client._follower.stop()  # this test calls follow_moves itself, round by round
    client.follow_moves()  # the client learns the registry's generation
    return ids


def _durable_at_one(runtime: Runtime, ids: list[str]) -> None:
    """Each of `ids` at seq 1 (hp 7) in hot state, and that state written to SQL."""
    sessions.apply_updates(runtime.hot, [{"session": s, "seq": 1, "state": {"hp": 7}}
                                         for s in ids])
    write_behind(runtime.hot, runtime.sessions, runtime.settings.hot_store_name, "test")


def _states(runtime: Runtime, ids: list[str]) -> dict[str, tuple[int, dict[str, object]]]:
    return {s: (st.seq, st.fields) for s, st in read_states(runtime.hot, ids).items()}


def test_a_client_places_its_sessions_again_in_a_registry_that_lost_them(
        eager_app: GameschedCelery) -> None:
    runtime = eager_app.runtime
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 6)
        _durable_at_one(runtime, ids)
        assert client.last_durable(ids) == dict.fromkeys(ids, 1)

        client.return_grace_s = 0.0  # no session waits for the instance it ran on
        _lose_the_registry(eager_app, client)
        assert client.instances.owners(ids) == [None] * 6

        client.instances.join("east", 4)  # back, with room for four
        client.follow_moves()
        assert sum(o is not None for o in client.instances.owners(ids)) == 4
        client.instances.join("west", 100)
        client.follow_moves()  # the rest, though no session moved since
        owners = client.instances.owners(ids)
        assert None not in owners
        assert [client.instance_of(s) for s in ids] == owners
        assert _states(runtime, ids) == dict.fromkeys(ids, (1, {"hp": 7}))
    finally:
        client.close()


def test_a_session_placed_again_waits_for_the_instance_it_ran_on(
        eager_app: GameschedCelery) -> None:
    """Its state and its last logged updates are in that instance's hot store: east back
    first takes only its own sessions, west's wait for west and go back to it."""
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 12)
        before = {s: client.instance_of(s) for s in ids}
        assert set(before.values()) == {"east", "west"}
        _lose_the_registry(eager_app, client)
        client.instances.join("east", 100)
        client.follow_moves()
        owners = dict(zip(ids, client.instances.owners(ids), strict=True))
        assert owners == {s: ("east" if i == "east" else None) for s, i in before.items()}
        assert {s: client.instance_of(s) for s in ids} == before  # west's still go to west
        client.instances.join("west", 100)
        client.follow_moves()
        assert dict(zip(ids, client.instances.owners(ids), strict=True)) == before
    finally:
        client.close()


def test_a_closed_client_restores_no_more(eager_app: GameschedCelery) -> None:
    """A client closing while its follower restores the sessions it placed again (the game
    server stopping): the round stops at its next chunk, and sends nothing more."""
    runtime = eager_app.runtime
    client = GameClient(eager_app)
    ids = _open_apart(eager_app, client, 6)
    _durable_at_one(runtime, ids)
    client.return_grace_s = 0.0
    _lose_the_registry(eager_app, client)
    client.instances.join("east", 100)
    client.close()

    client.follow_moves()

    assert None not in client.instances.owners(ids)  # placed: that sends nothing
    assert _states(runtime, ids) == {}


def test_past_the_grace_a_session_goes_to_an_instance_that_is_back(
        eager_app: GameschedCelery) -> None:
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 6)
        before = [client.instance_of(s) for s in ids]
        assert set(before) == {"east", "west"}
        client.return_grace_s = 0.0  # west is given up on at once
        _lose_the_registry(eager_app, client)
        client.instances.join("east", 100)
        client.follow_moves()
        assert client.instances.owners(ids) == ["east"] * 6
        assert [client.instance_of(s) for s in ids] == ["east"] * 6
        # west's came from west: east takes their state from west's store, as after a move
        assert client.instances.came_from(ids) == [None if i == "east" else "west"
                                                   for i in before]
    finally:
        client.close()


def test_a_round_that_fails_part_way_leaves_its_restores_to_the_next(
        eager_app: GameschedCelery, tmp_path: Path) -> None:
    """SQL not answering while the client restores the sessions it placed again: the next
    round restores them, though the registry has them placed already."""
    runtime = eager_app.runtime
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 6)
        _durable_at_one(runtime, ids)
        client.return_grace_s = 0.0
        _lose_the_registry(eager_app, client)
        client.instances.join("east", 100)
        client.instances.join("west", 100)
        sql = runtime.sessions
        runtime.__dict__["sessions"] = sessionmaker(  # a database without the tables
            create_engine(f"sqlite:///{tmp_path / 'empty.db'}"))
        with pytest.raises(OperationalError):
            client.follow_moves()
        assert None not in client.instances.owners(ids)  # placed before SQL failed them
        assert read_states(runtime.hot, ids) == {}
        runtime.__dict__["sessions"] = sql
        client.follow_moves()
        assert [client.instance_of(s) for s in ids] == client.instances.owners(ids)
        assert _states(runtime, ids) == dict.fromkeys(ids, (1, {"hp": 7}))
    finally:
        client.close()


def test_sessions_handed_to_another_game_server_are_left_to_it(
        eager_app: GameschedCelery) -> None:
    """A front that opened sessions and handed them over (`release_sessions`) neither
    places them again nor restores them after the registry lost them: the game server that
    adopted them does, once."""
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 6)
        handed, kept = ids[:4], ids[4:]
        assert client.release_sessions([*handed, handed[0], "never-held"]) == 4
        assert client.sessions.ids() == kept
        with pytest.raises(InvalidRequest) as refused:
            client.submit_update(handed[1], 9, {"hp": 2})
        assert refused.value.field == "session_id"
        client.return_grace_s = 0.0
        _lose_the_registry(eager_app, client)
        client.instances.join("east", 100)
        client.follow_moves()
        owners = dict(zip(ids, client.instances.owners(ids), strict=True))
        assert owners == {s: ("east" if s in kept else None) for s in ids}
    finally:
        client.close()


@pytest.mark.filterwarnings("ignore::celery.exceptions.AlwaysEagerIgnored")  # sent, then run
def test_a_session_whose_open_the_fleet_lost_is_opened_again_as_it_was(
        eager_app: GameschedCelery) -> None:
    """A session opened just before a full restart, its open still in the broker when the
    fleet died: SQL has no record of it, so the client that placed it again sends its open
    again (as it was opened), and its updates apply; a session SQL knows is not opened
    again, closed or not."""
    runtime = eager_app.runtime
    client = GameClient(eager_app)
    try:
        ids = _open_apart(eager_app, client, 3)
        _durable_at_one(runtime, ids)
        lost = f"{ids[0]}-lost"  # held here, but its open never committed
        client.adopt_session(lost, session_type="ranked", players=3, region="r1")
        with transaction(runtime.sessions) as db:
            sessions.close_session(db, ids[2])  # closed elsewhere, still held here
        client.return_grace_s = 0.0
        _lose_the_registry(eager_app, client)
        client.instances.join("east", 100)

        client.follow_moves()
        client.flush()  # the open goes from the outbox's thread
        assert _run_sent(eager_app, "player.east") == 1  # as east's worker would

        with runtime.sessions() as db:
            row = db.get(GameSession, lost)
            assert row is not None
            assert (row.session_type, row.players, row.region, row.status) == (
                "ranked", 3, "r1", SessionStatus.OPEN)
            closed = db.get(GameSession, ids[2])
            assert closed is not None and closed.status == SessionStatus.CLOSED
        client.submit_update(lost, 1, {"hp": 5})
        client.flush()
        assert _run_sent(eager_app, "player.east") == 1
        assert _states(runtime, [lost]) == {lost: (1, {"hp": 5})}
    finally:
        client.close()


def _run_sent(app: GameschedCelery, queue: str) -> int:
    """Run in this process, as a worker would, each task sent to `queue` (the embedded
    broker's, which nothing consumes here); how many ran."""
    app.loader.import_default_modules()  # the workers' tasks, as a worker imports them
    ran = 0
    with app.connection_for_read() as conn:
        channel = conn.default_channel
        while (message := channel.basic_get(queue, no_ack=True)) is not None:
            args, kwargs, _ = loads(message.body, message.content_type,
                                    message.content_encoding,
                                    accept={"application/json", "application/x-msgpack"})
            app.tasks[message.headers["task"]].apply(args=args, kwargs=kwargs).get()
            ran += 1
    return ran
