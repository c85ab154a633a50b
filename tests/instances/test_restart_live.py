"""A full restart on real processes: every instance's worker and both Redis servers (the
broker and hot state) are killed with SIGKILL, and start again empty.  The game server's
client places its sessions again and every session comes back from SQL at least at the
state the game server was told was durable; the game server learns each session's last
applied sequence number and carries on, and its updates apply again."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis

from app.client.api import GameClient
from app.fleet.fleets import stop_process_groups
from app.players import wire
from app.players.hotstore import RedisHotStore
from app.players.sessions import HotState, read_states
from app.players.statestore import Emit
from app.settings import Settings
from app.simulate.redisserver import PrivateRedis
from app.tasking.factory import create_app
from tests.instances.live import (
    PAIR,
    Feeder,
    applied,
    gamesched_drain,
    open_on,
    start_instances,
)
from tests.waiting import wait_for

SESSIONS = 12
EMIT = Emit(None, "test:updates", "test:bytes", "test:stale")


@pytest.fixture
def servers(redis_server_binary: str) -> Iterator[tuple[PrivateRedis, PrivateRedis]]:
    """A broker Redis and a hot-state Redis of this test's own (it kills them)."""
    with PrivateRedis(redis_server_binary) as broker, PrivateRedis(redis_server_binary) as hot:
        yield broker, hot


@pytest.fixture
def settings(live_settings: Settings, servers: tuple[PrivateRedis, PrivateRedis]) -> Settings:
    """The live settings on those servers, with quick heartbeats and write-behind."""
    broker, hot = servers
    return live_settings.model_copy(update={
        "broker_url": broker.url, "hot_url": hot.url, "instance_heartbeat_s": 0.2,
        "instance_ttl_s": 1.0, "write_behind_ms": 100})


def test_every_session_comes_back_from_sql_after_the_fleet_and_both_redis_die(
        settings: Settings, servers: tuple[PrivateRedis, PrivateRedis],
        tmp_path: Path) -> None:
    broker, hot = servers
    procs = start_instances(settings, tmp_path)
    client = GameClient(create_app(settings))
    feeder: Feeder | None = None
    try:
        sessions, _ = open_on(client, SESSIONS, session_type="casual", players=1)
        feeder = _feed_until_durable(client, sessions)
        acked = client.last_durable(sessions)  # what the game server was told is durable
        procs = _kill_and_start_again(procs, broker, hot, settings, tmp_path)

        # the client finds its sessions unplaced, places them again and restores their state
        wait_for(lambda: None not in client.instances.owners(sessions), timeout=20,
                 what="the game server to place its sessions again")
        owners = client.instances.owners(sessions)
        assert set(owners) <= set(PAIR)
        assert all(client.instance_of(s) == o for s, o in zip(sessions, owners, strict=True))
        states = wait_for(lambda: _all_states(client, sessions), timeout=10,
                          what="every session's state back in hot state")
        assert all(states[s].seq >= acked[s] for s in sessions), (states, acked)
        lost = {s: [n for n in range(1, acked[s] + 1) if f"f{n}" not in states[s].fields]
                for s in sessions}
        assert not any(lost.values()), lost  # no acknowledged update is missing

        # the game server asks where each session stands, and carries on after it
        resumed = client.last_applied(sessions)
        assert resumed == {s: states[s].seq for s in sessions}
        sent_before = feeder.seq
        feeder = Feeder(client, sessions)
        feeder.seq = sent_before
        feeder.start()
        wait_for(lambda: applied(client, sessions) > sent_before, timeout=30,
                 what="the sessions' updates to apply again")
    finally:
        if feeder is not None:
            feeder.stop.set()
            feeder.join(timeout=5)
        client.close()
        stop_process_groups(procs)


def test_a_restarted_game_server_learns_where_its_sessions_stand_and_carries_on(
        settings: Settings, servers: tuple[PrivateRedis, PrivateRedis],
        tmp_path: Path) -> None:
    broker, hot = servers
    procs = start_instances(settings, tmp_path)
    before = GameClient(create_app(settings))
    after: GameClient | None = None
    feeder: Feeder | None = None
    try:
        sessions, _ = open_on(before, SESSIONS, session_type="casual", players=1)
        _feed_until_durable(before, sessions)
        acked = before.last_durable(sessions)
        before.close()  # the game server dies with the fleet
        procs = _kill_and_start_again(procs, broker, hot, settings, tmp_path)

        after = GameClient(create_app(settings))  # the game server, started again
        for session in sessions:
            after.adopt_session(session, session_type="casual", players=1)
        resumed = after.last_applied(sessions)
        assert sorted(resumed) == sorted(sessions)
        assert all(resumed[s] >= acked[s] for s in sessions), (resumed, acked)
        states = read_states(after.app.runtime.hot, sessions)
        assert not any(n for s in sessions for n in range(1, acked[s] + 1)
                       if f"f{n}" not in states[s].fields)
        feeder = Feeder(after, sessions)
        feeder.seq = max(resumed.values())  # it carries on after the last applied
        feeder.start()
        wait_for(lambda: applied(after, sessions) > max(resumed.values()), timeout=30,
                 what="the restarted game server's updates to apply")
        assert None not in after.instances.owners(sessions)
    finally:
        if feeder is not None:
            feeder.stop.set()
            feeder.join(timeout=5)
        before.close()
        if after is not None:
            after.close()
        stop_process_groups(procs)


@dataclass
class Apart:
    """East and west, each keeping its sessions' state on a Redis of its own (`urls`), their
    sessions fed until SQL holds some of each, then every worker killed: the sessions,
    those on east, and each one's last durable sequence."""

    east: PrivateRedis
    west: PrivateRedis
    urls: dict[str, str]
    procs: list[subprocess.Popen[bytes]]
    client: GameClient
    sessions: list[str]
    on_east: list[str]
    acked: dict[str, int]


@pytest.fixture
def apart(settings: Settings, redis_server_binary: str, tmp_path: Path) -> Iterator[Apart]:
    with PrivateRedis(redis_server_binary) as east, PrivateRedis(redis_server_binary) as west:
        urls = {"east": east.url, "west": west.url}
        procs = start_instances(settings, tmp_path, hot_urls=urls)
        client = GameClient(create_app(settings))
        try:
            yield Apart(east, west, urls, procs, client, *_durable_then_killed(client, procs))
        finally:
            client.close()
            stop_process_groups(procs)


def test_with_stores_apart_each_session_goes_back_to_its_own_instance_and_state(
        settings: Settings, servers: tuple[PrivateRedis, PrivateRedis], apart: Apart,
        tmp_path: Path) -> None:
    """East and west each keep their sessions' state on a Redis of their own; everything
    dies; east comes back first. East's sessions go back to east at once; west's wait for
    west (not to the first instance back, where their logged updates are not), then go
    back to it; every acknowledged update is in each session's store."""
    broker, _ = servers
    client, on_east = apart.client, apart.on_east
    for server in (broker, apart.east, apart.west):
        server.kill()
        server.start()  # empty: they persist nothing
    apart.procs += start_instances(settings, tmp_path, ("east",), hot_urls=apart.urls)
    on_west = [s for s in apart.sessions if s not in on_east]
    wait_for(lambda: client.instances.owners(on_east) == ["east"] * len(on_east),
             timeout=20, what="east's sessions placed back on east")
    assert client.instances.owners(on_west) == [None] * len(on_west)  # waiting
    apart.procs += start_instances(settings, tmp_path, ("west",), hot_urls=apart.urls)
    wait_for(lambda: client.instances.owners(on_west) == ["west"] * len(on_west),
             timeout=20, what="west's sessions placed back on west")
    assert _lost(client, apart.sessions, apart.acked) == {}


def test_a_session_whose_instance_never_comes_back_gets_what_its_store_logged(
        settings: Settings, servers: tuple[PrivateRedis, PrivateRedis], apart: Apart,
        tmp_path: Path) -> None:
    """Everything dies, and west's machine with its Redis never comes back: the registry
    starts again empty, and only east joins it.  West's sessions are placed on east once
    the client stops waiting for west, and east takes from SQL every update west's store
    logged of them (the store's name read from SQL: the registry no longer knows west)."""
    broker, _ = servers
    client, sessions = apart.client, apart.sessions
    client.return_grace_s = 0.0  # west is given up on at once
    apart.west.kill()  # gone for good
    for server in (broker, apart.east):
        server.kill()
        server.start()  # empty: they persist nothing
    apart.procs += start_instances(settings, tmp_path, ("east",), hot_urls=apart.urls)
    assert [s for s in sessions if s not in apart.on_east]  # west had sessions
    wait_for(lambda: client.instances.owners(sessions) == ["east"] * len(sessions),
             timeout=20, what="every session placed on east")
    assert _lost(client, sessions, apart.acked) == {}  # all on east


def test_a_store_back_with_copies_of_sessions_placed_away_serves_none_of_them(
        settings: Settings, servers: tuple[PrivateRedis, PrivateRedis], apart: Apart,
        tmp_path: Path) -> None:
    """Everything dies but west's Redis, which keeps its data (as an append-only one would
    bring it back); only east comes back at first, and west's sessions start on east from
    what west's store logged, then carry on there.  West's copies are out of date: one
    even holds an update west applied and never logged.  When west joins again and east
    is drained onto it, every session has on west the state it had on east: no update
    lands on an old copy, and the one never logged is gone."""
    broker, _ = servers
    client, sessions = apart.client, apart.sessions
    on_west = [s for s in sessions if s not in apart.on_east]
    client.return_grace_s = 0.0  # west is given up on at once
    for server in (broker, apart.east):
        server.kill()
        server.start()  # empty: they persist nothing
    apart.procs += start_instances(settings, tmp_path, ("east",), hot_urls=apart.urls)
    wait_for(lambda: client.instances.owners(sessions) == ["east"] * len(sessions),
             timeout=20, what="every session placed on east")
    client.release_sessions(sessions)  # the game server started again too
    for session in sessions:
        client.adopt_session(session, session_type="casual", players=1)
    resumed = client.last_applied(sessions)
    unlogged = max(resumed.values()) + 1  # applied on west after its last log row
    with redis.Redis.from_url(apart.west.url) as west_redis:
        RedisHotStore(west_redis).states.apply(wire.pack_batch(
            wire.entry(s, unlogged, {f"f{unlogged}": "never logged"}) for s in on_west), EMIT)
    feeder = Feeder(client, sessions)
    feeder.seq = unlogged - 1  # the game server carries on from what east applied
    feeder.sending(3)
    feeder.stop.set()
    feeder.join(timeout=5)
    wait_for(lambda: applied(client, sessions) >= feeder.seq, timeout=20,
             what="east to apply every update sent")
    apart.procs += start_instances(settings, tmp_path, ("west",), hot_urls=apart.urls)
    assert gamesched_drain(settings, "east").returncode == 0
    wait_for(lambda: client.instances.owners(sessions) == ["west"] * len(sessions),
             timeout=20, what="every session moved to west")
    states = wait_for(lambda: _all_back(client, sessions, dict.fromkeys(sessions, feeder.seq)),
                      timeout=20, what="every session's state taken to west")
    assert {s: st.fields[f"f{unlogged}"] for s, st in states.items()} == dict.fromkeys(
        sessions, unlogged)
    # acknowledged before the kill, or sent after it
    sent = {s: {*range(1, apart.acked[s] + 1), *range(unlogged, feeder.seq + 1)}
            for s in sessions}
    missing = {s: [n for n in sorted(sent[s]) if f"f{n}" not in st.fields]
               for s, st in states.items()}
    assert not any(missing.values()), missing  # no update sent to east lost on the way


def _durable_then_killed(client: GameClient, procs: list[subprocess.Popen[bytes]]
                         ) -> tuple[list[str], list[str], dict[str, int]]:
    """Open sessions on the instances, feed them until SQL holds some of each, then kill
    every worker: the sessions, those on east, and each one's last durable sequence."""
    sessions, on_east = open_on(client, SESSIONS, session_type="casual", players=1)
    _feed_until_durable(client, sessions)
    acked = client.last_durable(sessions)
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    return sessions, on_east, acked


def _lost(client: GameClient, sessions: list[str],
          acked: dict[str, int]) -> dict[str, list[int]]:
    """Once every session's store holds at least its acknowledged seq: the acknowledged
    updates each misses there, by session (those that miss any)."""
    states = wait_for(lambda: _all_back(client, sessions, acked), timeout=20,
                      what="every session's acknowledged state in its store")
    lost = {s: [n for n in range(1, acked[s] + 1) if f"f{n}" not in states[s].fields]
            for s in sessions}
    return {s: missing for s, missing in lost.items() if missing}


def _all_back(client: GameClient, sessions: list[str],
              acked: dict[str, int]) -> dict[str, HotState] | None:
    """Each session's state, read in its instance's store, once every one holds at least
    its acknowledged seq."""
    states = client.states(sessions)
    return states if all(s in states and states[s].seq >= acked[s] for s in sessions) else None


def _feed_until_durable(client: GameClient, sessions: list[str]) -> Feeder:
    """Feed every session until each is durable past seq 5, then pause the feeding."""
    feeder = Feeder(client, sessions)
    feeder.start()
    wait_for(lambda: min(client.last_durable(sessions).values(), default=0) >= 5,
             timeout=30, what="every session durable past seq 5")
    feeder.stop.set()  # the game server pauses: only the fleet brings state back
    feeder.join(timeout=5)
    return feeder


def _kill_and_start_again(procs: list[subprocess.Popen[bytes]], broker: PrivateRedis,
                          hot: PrivateRedis, settings: Settings,
                          tmp_path: Path) -> list[subprocess.Popen[bytes]]:
    """SIGKILL the whole fleet, then both Redis servers; start them again, empty."""
    for proc in procs:
        os.killpg(proc.pid, signal.SIGKILL)
    broker.kill()
    hot.kill()
    broker.start()  # empty: they persist nothing
    hot.start()
    return procs + start_instances(settings, tmp_path)


def _all_states(client: GameClient, sessions: list[str]) -> dict[str, HotState] | None:
    states = read_states(client.app.runtime.hot, sessions)
    return states if len(states) == len(sessions) else None


