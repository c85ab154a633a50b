"""Server instances each keeping session state on a Redis of its own (``GAMESCHED_HOT_URL``
per instance), on real worker processes: they share only the broker (with the registry)
and SQL.  A session that moves takes its state along, keeps every update and applies
none twice; a fenced instance's writes to its own store are refused; a restarted game
server reads where its sessions stand from the stores of the instances they run on."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path
from urllib.parse import urlparse

import redis

from app.client.api import GameClient
from app.control import dilation
from app.fleet.fleets import stop_process_groups
from app.players import sessions, wire
from app.players.hotstore import RedisHotStore
from app.players.storenames import recorded_store
from app.priority import Route
from app.protocol import keys
from app.protocol.names import HANDOFF_HEADER, UPDATE_TASK
from app.protocol.vocab import Queue
from app.settings import Settings, store_name
from app.tasking.broker import waiting
from app.tasking.factory import create_app
from tests.instances.live import (
    Feeder,
    applied,
    gamesched_drain,
    open_on,
    placed_on,
    start_instances,
)
from tests.proxy import Proxy
from tests.waiting import wait_for


def test_a_fenced_instance_write_to_its_own_hot_store_is_refused_and_counted(
        live_settings: Settings, hot_urls: dict[str, str], tmp_path: Path) -> None:
    # east beats rarely: it learns it was fenced from its refused write, not a heartbeat
    settings = live_settings.model_copy(update={
        "instance_heartbeat_s": 30.0, "instance_ttl_s": 60.0})
    procs = start_instances(settings, tmp_path, hot_urls=hot_urls)
    app = create_app(settings)
    registry = app.runtime.instances
    east_hot = RedisHotStore(redis.Redis.from_url(hot_urls["east"]))
    try:
        assert registry.hot_urls() == hot_urls
        # each recorded its store's name in SQL too, where it outlives the registry
        assert {i: recorded_store(app.runtime.sessions, i) for i in hot_urls} == {
            i: store_name(url) for i, url in hot_urls.items()} == registry.hot_names()
        session = placed_on(registry, "east", "fenced")
        sessions.ensure_state(east_hot, session)
        registry.fence("east")  # taken over, as if it had gone silent
        registry.drain("east")
        batch = wire.pack_batch([wire.entry(session, 1, {"hp": 1})])
        app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, 3, instance="east"), [batch],
                           {HANDOFF_HEADER: time.time()}, serializer="msgpack")
        wait_for(lambda: {s.name: s.refused for s in registry.instances()}["east"] == 1,
                 timeout=30, what="east's write refused")
        # east sends the batch on; west takes the state from east's store as it applies it
        west_hot = RedisHotStore(redis.Redis.from_url(hot_urls["west"]))
        wait_for(lambda: sessions.read_state(west_hot, session) == sessions.HotState(
            1, {"hp": 1}), timeout=30, what="west to apply it")
        assert sessions.read_state(east_hot, session) is None  # handed over, frozen there
        assert "is fenced: a state batch it took went to instance west" in (
            tmp_path / "east.log").read_text(errors="replace")
        wait_for(lambda: (tmp_path / "east.log").read_text(errors="replace").count(
            "player@east ready") == 2, timeout=60, what="east to start again")
    finally:
        stop_process_groups(procs)


SESSIONS = 16


def test_sessions_moved_between_hot_stores_keep_every_update_and_apply_none_twice(
        live_settings: Settings, hot_urls: dict[str, str],
        apart: list[subprocess.Popen[bytes]], tmp_path: Path) -> None:
    app = create_app(live_settings)
    client = GameClient(app)
    stores = {name: RedisHotStore(redis.Redis.from_url(url)) for name, url in hot_urls.items()}
    try:
        ids, on_east = open_on(client, SESSIONS, session_type="ranked", players=2)
        feeder = Feeder(client, ids).sending(10)
        # east falls behind: what it was sent waits in its queue while its sessions move
        os.killpg(apart[0].pid, signal.SIGSTOP)
        try:
            wait_for(lambda: waiting(app, "player.east").messages >= 3,
                     what="a backlog on east")
            moves = app.runtime.instances.drain("east")  # as `gamesched drain east` does
            assert sorted(m.session for m in moves) == on_east
            wait_for(lambda: all(client.instance_of(s) == "west" for s in ids), timeout=10,
                     what="the game server to follow the move")
            moved_at = feeder.seq
            # west took the state from east's store (east's process is stopped, its Redis
            # is not) and applies what was sent after the move, ahead of east's backlog
            wait_for(lambda: applied(client, on_east) > moved_at, timeout=10,
                     what="west to apply updates sent after the move")
        finally:
            os.killpg(apart[0].pid, signal.SIGCONT)
        sent_before = feeder.seq
        wait_for(lambda: feeder.seq >= sent_before + 5, what="more rounds after the move")
        feeder.stop.set()
        feeder.join(timeout=10)
        client.flush()
        # east's backlog is refused there (moved away) and sent on to west
        wait_for(lambda: not feeder.lost(), timeout=30, what="every update applied")
        assert {s: st.seq for s, st in client.states(ids).items()} == dict.fromkeys(
            ids, feeder.seq)
        assert sessions.read_states(stores["east"], on_east) == {}  # gone from east's store
        assert "took the state of" in (tmp_path / "west.log").read_text(errors="replace")
        assert "sessions that run on instance west now went there" in (
            tmp_path / "east.log").read_text(errors="replace")
        applied_once = sum(int(store.get(keys.NET_UPDATES) or 0) for store in stores.values())
        assert applied_once == len(ids) * feeder.seq  # each update changed state once

        # a game server started again reads where its sessions stand from their stores
        again = GameClient(create_app(live_settings))
        for session in ids:
            again.adopt_session(session, session_type="ranked", players=2)
        assert again.last_applied(ids) == dict.fromkeys(ids, feeder.seq)
        assert sessions.read_states(app.runtime.hot, ids) == {}  # not the broker's Redis
        again.close()
    finally:
        client.close()


def test_a_drain_carries_state_to_the_new_store_with_no_update_after_the_move(
        live_settings: Settings, hot_urls: dict[str, str],
        apart: list[subprocess.Popen[bytes]]) -> None:
    client = GameClient(create_app(live_settings))
    stores = {name: RedisHotStore(redis.Redis.from_url(url)) for name, url in hot_urls.items()}
    try:
        ids, on_east, feeder = _three_rounds(client)
        wait_for(lambda: applied(client, ids) == feeder.seq, timeout=30,
                 what="three rounds applied")
        drained = gamesched_drain(live_settings, "east")
        assert drained.returncode == 0, drained.stdout + drained.stderr
        # no update follows the move: west takes the state because the drain told it to
        wait_for(lambda: set(sessions.read_states(stores["west"], on_east)) == set(on_east),
                 timeout=30, what="west to take the drained sessions' state")
        assert sessions.read_states(stores["east"], on_east) == {}
        assert {s: st.seq for s, st in client.states(ids).items()} == dict.fromkeys(
            ids, feeder.seq)
        assert not feeder.lost()
    finally:
        client.close()


def test_an_instance_with_a_hot_store_of_its_own_notes_its_latency_where_the_controller_reads(
        live_settings: Settings, hot_urls: dict[str, str],
        apart: list[subprocess.Popen[bytes]]) -> None:
    app = create_app(live_settings)
    east_hot = RedisHotStore(redis.Redis.from_url(hot_urls["east"]))
    session = placed_on(app.runtime.instances, "east", "noted")
    sessions.ensure_state(east_hot, session)
    batch = wire.pack_batch([wire.entry(session, 1, {"hp": 1})])
    handed_off = time.time() - 10  # the player acted ten seconds ago: late for any bar
    app.publisher.send(Route(UPDATE_TASK, Queue.PLAYER, 3, instance="east"), [batch],
                       {HANDOFF_HEADER: handed_off}, serializer="msgpack")
    wait_for(lambda: dilation.slow_total(app.runtime.fleet, keys.CONTROL_PLAYER_LATE) == 1,
             timeout=30, what="the late batch noted on the broker's Redis")
    assert dilation.slow_total(app.runtime.fleet) == 1
    assert dilation.slow_total(east_hot) == 0  # not in east's own store
    assert sessions.read_state(east_hot, session) == sessions.HotState(1, {"hp": 1})


def test_copies_in_a_store_cut_off_during_a_move_are_frozen_when_it_answers_again(
        live_settings: Settings, hot_urls: dict[str, str], tmp_path: Path) -> None:
    """East reaches its Redis through a link that is cut while east runs on: east's
    sessions are drained to west, which starts them from SQL (east's snapshots and state
    log) and tells east its copies are void.  The link heals; east, never restarted,
    freezes those copies.  When every session is carried back to east, each has there the
    state it had on west: east's copy, which held an update never logged, adds nothing.
    West's notice reaches east while the link is still cut: east tries again until its
    store answers."""
    east_port = urlparse(hot_urls["east"]).port
    assert east_port is not None
    with Proxy(east_port) as link:
        procs = start_instances(live_settings, tmp_path,
                                hot_urls={**hot_urls, "east": link.url})
        client = GameClient(create_app(live_settings))
        east = redis.Redis.from_url(hot_urls["east"])  # the test's own way in
        try:
            ids, on_east, feeder = _three_rounds(client)
            wait_for(lambda: min(client.last_durable(ids).values()) == feeder.seq,
                     timeout=30, what="three rounds durable")
            unlogged = feeder.seq + 1  # applied on east, never logged nor snapshotted
            for session in on_east:
                east.hset(keys.state(session), mapping={
                    "seq": unlogged, f".f{unlogged}": wire.pack_value("never logged"),
                    f"^f{unlogged}": unlogged})

            link.cut()
            drained = gamesched_drain(live_settings, "east")
            assert drained.returncode == 0, drained.stdout + drained.stderr
            west = RedisHotStore(redis.Redis.from_url(hot_urls["west"]))
            wait_for(lambda: set(sessions.read_states(west, on_east)) == set(on_east),
                     timeout=30, what="west to start east's sessions from SQL")
            wait_for(lambda: all(client.instance_of(s) == "west" for s in ids), timeout=10,
                     what="the game server to follow the move")
            feeder.send_round()  # the game server carries on from what was durable
            client.flush()
            wait_for(lambda: applied(client, ids) == unlogged, timeout=30,
                     what="west to apply the next round")

            wait_for(lambda: _void_retried(tmp_path / "east.log"), timeout=30,
                     what="east to take west's notice and find its store cut off")
            link.heal()
            wait_for(lambda: not sessions.read_states(RedisHotStore(east), on_east),
                     timeout=60, what="east to freeze its copies")
            log = (tmp_path / "east.log").read_text(errors="replace")
            assert log.count("player@east ready") == 1  # east never restarted

            with redis.Redis.from_url(live_settings.broker_url) as registry_redis:
                registry_redis.srem(keys.INSTANCES_DRAINING, "east")  # maintenance over
            assert gamesched_drain(live_settings, "west").returncode == 0
            wait_for(lambda: all(client.instance_of(s) == "east" for s in ids), timeout=10,
                     what="every session back on east")
            states = wait_for(lambda: _all_at(client, ids, unlogged), timeout=30,
                              what="every session's state taken back to east")
            assert {s: st.fields[f"f{unlogged}"] for s, st in states.items()} == dict.fromkeys(
                ids, unlogged)
            assert not feeder.lost()
        finally:
            client.close()
            east.close()
            stop_process_groups(procs)


def _three_rounds(client: GameClient) -> tuple[list[str], list[str], Feeder]:
    """`SESSIONS` sessions opened on east and west, and three rounds of updates sent: the
    sessions, those on east, and the feeder that sent them."""
    ids, on_east = open_on(client, SESSIONS, session_type="ranked", players=2)
    feeder = Feeder(client, ids)
    for _ in range(3):
        feeder.send_round()
    client.flush()
    return ids, on_east, feeder


def _void_retried(log: Path) -> bool:
    """Whether the instance logging to `log` was told of void copies and will try again."""
    return any(line.startswith("Task gamesched.player.void[") and "retry: Retry in" in line
               for line in _messages(log))


def _messages(log: Path) -> list[str]:
    """A worker log's messages (what follows each line's ``[time: LEVEL/process]``)."""
    return [line.split("] ", 1)[-1] for line in log.read_text(errors="replace").splitlines()]


def _all_at(client: GameClient, ids: list[str], seq: int) -> dict[str, sessions.HotState] | None:
    """Each session's state in its instance's store, once every one is at `seq`."""
    states = client.states(ids)
    return states if len(states) == len(ids) and all(
        st.seq == seq for st in states.values()) else None
