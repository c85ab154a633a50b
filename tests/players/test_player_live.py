"""Player experience on the live broker: priorities across and inside queues, inheritance,
reprioritisation, ordered updates, exact deltas, bad input that spares the rest.

One worker with one slot runs in this process (`celery_worker`, consuming the queues of the
role named by ``worker_role``); two worker processes race for the ordered updates."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Iterator
from typing import Any

import msgpack
import pytest
import redis
from celery.worker import WorkController

from app.client.api import GameClient
from app.observe.recorder import Execution
from app.players import delta, sessions, wire
from app.players.models import GameSession
from app.priority import Route
from app.protocol.names import HANDOFF_HEADER
from app.protocol.vocab import Queue
from app.settings import Settings
from app.tasking.factory import GameschedCelery, create_app
from tests.subprocesses import StartWorker
from tests.waiting import wait_for

UPDATE = "gamesched.player.apply_updates"


@pytest.fixture
def app(live_settings: Settings) -> GameschedCelery:
    return create_app(live_settings)


@pytest.fixture
def client(app: GameschedCelery) -> Iterator[GameClient]:
    client = GameClient(app)
    yield client
    client.close()


class Blocker:
    """Holds a worker's only slot until released, so messages pile up behind it."""

    def __init__(self, app: GameschedCelery, r: redis.Redis, queue: str) -> None:
        run = uuid.uuid4().hex[:8]
        self.r, self.started, self.release = r, f"{run}:started", f"{run}:release"
        app.send_task("tests.block", args=[self.started, self.release], queue=queue,
                      priority=0)
        wait_for(lambda: r.llen(self.started), what=f"the {queue} worker to be busy")

    def open(self) -> None:
        self.r.rpush(self.release, b"go")


def _collect(app: GameschedCelery, count: int, timeout: float = 60) -> list[Execution]:
    got: list[Execution] = []

    def enough() -> bool:
        got.extend(app.runtime.recorder.drain())
        return len(got) >= count

    wait_for(enough, timeout=timeout, what=f"{count} executions")
    return sorted(got, key=lambda e: e.started)


@pytest.mark.worker_role("all")  # one slot for every queue
def test_player_batch_sent_after_a_background_flood_is_applied_before_it(
    app: GameschedCelery, client: GameClient, celery_worker: WorkController,
    redis_client: redis.Redis,
) -> None:
    client.open_session("flooded", session_type="casual")
    _collect(app, 1)
    blocker = Blocker(app, redis_client, "background")
    for i in range(100):
        client.submit_background("analytics", [{"kind": f"k{i}"}])
    client.submit_update("flooded", 1, {"hp": 99})
    client.flush()
    blocker.open()
    ran = [e for e in _collect(app, 101) if e.task != "tests.block"]
    assert ran[0].task == UPDATE, [e.task for e in ran[:5]]
    assert sessions.read_state(app.runtime.hot, "flooded") == sessions.HotState(1, {"hp": 99})


@pytest.mark.worker_role("ai")
def test_dependency_is_raised_to_its_dependents_step_and_its_stale_copy_skipped(
    app: GameschedCelery, client: GameClient, celery_worker: WorkController,
    redis_client: redis.Redis,
) -> None:
    blocker = Blocker(app, redis_client, "ai")
    queued = [client.submit_ai(f"npc-{i}", (10.0, 10.0)) for i in range(20)]
    dependency = queued[12]
    client.open_session("watcher", session_type="ranked", players=8, region="arena")
    # A player-facing physics step of an occupied region waits on NPC 12's decision.
    client.submit_physics("arena", frame=1, bodies=5, depends_on=[dependency])
    blocker.open()
    ai = _collect(app, 20)  # only an AI worker runs: the session and physics work waits
    assert ai[0].task_id == dependency.id, "the raised dependency did not run first"
    assert [e.task_id for e in ai].count(dependency.id) == 1, "the stale copy also ran"
    assert len(ai) == 20 and {e.queue for e in ai} == {"ai"}


@pytest.mark.worker_role("player")
def test_a_session_that_becomes_ranked_is_served_first_at_once(
    app: GameschedCelery, client: GameClient, celery_worker: WorkController,
    redis_client: redis.Redis,
) -> None:
    client.open_session("idler", session_type="lobby")
    client.open_session("riser", session_type="lobby")
    _collect(app, 2)
    before = client.priority_of_update("riser")
    blocker = Blocker(app, redis_client, "player")
    client.submit_update("idler", 1, {"ready": False})
    client.flush()
    client.update_session("riser", session_type="ranked", players=10)  # the match starts
    assert client.priority_of_update("riser") < before
    client.submit_update("riser", 1, {"ready": True})
    client.flush()
    blocker.open()
    ran = [e for e in _collect(app, 3) if e.task == UPDATE]
    updates = [sessions.read_state(app.runtime.hot, s) for s in ("idler", "riser")]
    assert all(u is not None and u.seq == 1 for u in updates)
    first, second = ran
    assert first.handoff > second.handoff, "the later, higher-priority batch ran first"


@pytest.mark.worker_role("player")
def test_a_crowds_moves_reach_sql_in_one_task_each_session_at_its_latest_region(
    app: GameschedCelery, client: GameClient, celery_worker: WorkController,
) -> None:
    names = [f"mover-{i}" for i in range(50)]
    for name in names:
        client.open_session(name, region="w00")
    _collect(app, len(names))
    for name in names:
        client.move_session(name, "w01")
        client.move_session(name, "w03")
    client.flush()
    moved = [e for e in _collect(app, 1) if e.task == "gamesched.player.session_moves"]
    assert len(moved) == 1 and moved[0].ok
    with app.runtime.sessions() as db:
        assert {db.get(GameSession, n).region for n in names} == {"w03"}


def test_concurrent_workers_never_let_an_older_update_overwrite_a_newer_one(
    app: GameschedCelery, start_worker: StartWorker, redis_client: redis.Redis,
) -> None:
    start_worker("player", "p1", concurrency=4)
    start_worker("player", "p2", concurrency=4)
    ids = [f"order-{i}" for i in range(10)]
    for s in ids:
        sessions.ensure_state(app.runtime.hot, s)
    pubsub = redis_client.pubsub()
    pubsub.subscribe(sessions.DELTA_CHANNEL)
    wait_for(lambda: pubsub.get_message(timeout=0.1), what="the delta subscription")
    batches = [[{"session": s, "seq": seq, "state": _state(s, seq)} for s in ids]
               for seq in range(1, 41)]
    random.Random(5).shuffle(batches)  # later sequences often arrive first
    for batch in batches:
        app.send_task(UPDATE, args=[batch], queue="player", priority=1)
    _collect(app, len(batches))
    for s in ids:
        assert sessions.read_state(app.runtime.hot, s) == sessions.HotState(40, _state(s, 40))
    _check_deltas_rebuild_state(app, pubsub, ids)


def _state(session: str, seq: int) -> dict[str, Any]:
    return {"hp": 100 - seq, "pos": delta.quantise((seq * 1.5, 7.25)), "tag": session}


def _check_deltas_rebuild_state(app: GameschedCelery, pubsub: Any, ids: list[str]) -> None:
    per_session: dict[str, list[bytes]] = {s: [] for s in ids}
    while (message := pubsub.get_message(timeout=1.0)) is not None:
        if message["type"] == "message":
            # One message per batch: {session: [seq, changes]}, the deltas inline.
            for s, (seq, changes) in msgpack.unpackb(message["data"], raw=False).items():
                per_session[s].append(delta.encode(seq, changes))
    for s in ids:
        view: dict[str, Any] = {}
        for raw in sorted(per_session[s], key=lambda r: delta.decode(r)[0]):
            view = delta.apply(view, raw)
        assert view == sessions.read_state(app.runtime.hot, s).fields  # type: ignore[union-attr]


@pytest.mark.worker_role("player")
def test_bad_updates_in_a_batch_are_refused_and_the_rest_applied(
    app: GameschedCelery, celery_worker: WorkController,
) -> None:
    sessions.ensure_state(app.runtime.hot, "good")
    sessions.reset_network_totals(app.runtime.hot)
    batch = [
        {"session": "good", "seq": 1, "state": {"hp": 1}},
        {"session": "nobody", "seq": 1, "state": {"hp": 1}},
        {"session": "good", "seq": -4, "state": {}},
        {"session": "good", "seq": 2, "state": "oops"},
        {"session": "good", "seq": 3, "state": {"hp": 3}},
    ]
    result = app.send_task(UPDATE, args=[batch], queue="player", priority=1)
    (execution,) = _collect(app, 1)
    assert execution.ok and execution.task_id == result.id
    assert sessions.read_state(app.runtime.hot, "good") == sessions.HotState(3, {"hp": 3})
    totals = sessions.network_totals(app.runtime.hot)  # every update counted once
    assert (totals.updates, totals.stale, totals.rejected) == (2, 0, 3)


@pytest.fixture
def gathering(celery_app: GameschedCelery) -> None:
    """The in-process worker gathers up to four state batches a task."""
    runtime = celery_app.runtime
    runtime.settings = runtime.settings.model_copy(update={"state_batches_per_task": 4})


@pytest.mark.usefixtures("gathering")
@pytest.mark.worker_role("player")
def test_state_batches_waiting_behind_a_task_are_applied_in_it_each_recorded_as_its_own(
    app: GameschedCelery, celery_worker: WorkController, redis_client: redis.Redis,
) -> None:
    ids = [f"crowd-{i}" for i in range(8)]
    for s in ids:
        sessions.ensure_state(app.runtime.hot, s)
    blocker = Blocker(app, redis_client, "player")
    sent = {s: app.publisher.send(Route(UPDATE, Queue.PLAYER, 5), [_wire(s)],
                                  {HANDOFF_HEADER: time.time()}, serializer="msgpack").id
            for s in ids}
    blocker.open()
    ran = _collect(app, len(ids))
    assert sorted(e.task_id for e in ran) == sorted(sent.values())  # each once
    assert all(e.ok for e in ran)
    tasks = [e for e in ran if not e.gathered]
    assert len(tasks) < len(ran), "every batch ran as a task of its own"
    assert {e.done for e in ran} == {e.done for e in tasks}  # each gathered one with a task
    for s in ids:
        assert sessions.read_state(app.runtime.hot, s) == sessions.HotState(1, {"hp": 7})


def _wire(session: str) -> bytes:
    return wire.pack_batch([wire.entry(session, 1, {"hp": 7})])


@pytest.mark.usefixtures("gathering")
@pytest.mark.worker_role("player")
def test_a_gathered_batch_not_in_wire_form_fails_alone(
    app: GameschedCelery, celery_worker: WorkController, redis_client: redis.Redis,
) -> None:
    for s in ("first", "last"):
        sessions.ensure_state(app.runtime.hot, s)
    blocker = Blocker(app, redis_client, "player")
    route = Route(UPDATE, Queue.PLAYER, 5)
    ids = [app.publisher.send(route, [blob], {HANDOFF_HEADER: time.time()},
                              serializer="msgpack").id
           for blob in (_wire("first"), b"\x93\xa1x", _wire("last"))]  # an array cut short
    blocker.open()
    ran = {e.task_id: e for e in _collect(app, 3)}
    assert [(ran[i].gathered, ran[i].ok) for i in ids] == [(False, True), (True, False),
                                                          (True, True)]
    for s in ("first", "last"):
        assert sessions.read_state(app.runtime.hot, s) == sessions.HotState(1, {"hp": 7})
