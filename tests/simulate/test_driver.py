"""The load driver hands the schedule to the real client API and counts what it sent."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from app.client.api import GameClient
from app.db.migrate import upgrade
from app.settings import load_settings
from app.simulate.driver import LoadDriver
from app.simulate.environment import depth_reader
from app.simulate.purchases import Store
from app.simulate.redisserver import PrivateRedis
from app.simulate.scenarios import SCENARIOS, STEADY, Combat, Influx
from app.simulate.schedule import Schedule
from app.tasking.factory import GameschedCelery, create_app


@pytest.fixture
def app(redis_server_binary: str) -> Iterator[GameschedCelery]:
    """A client app on a private Redis with no workers: what is sent stays queued."""
    with PrivateRedis(redis_server_binary) as server:
        yield create_app(load_settings(broker_url=server.url, instance_id="sim-driver"))


def test_every_session_opened_from_several_threads_is_counted(app: GameschedCelery) -> None:
    client = GameClient(app)
    schedule = Schedule(STEADY, 600, seed=1, duration_s=1.0)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)])
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    client.close()
    assert driver.stats.opens == 600
    assert depth_reader(app, ["player"])["player"] == 600  # one session op each


def test_a_run_sends_what_it_counts(app: GameschedCelery) -> None:
    client = GameClient(app)
    schedule = Schedule(STEADY, 100, seed=2, duration_s=1.0)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)])
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    driver.submit_updates(schedule.join_updates())
    driver.background_rate = 6.0
    stats = driver.run(1.0, lambda elapsed: None)
    client.close()
    assert 0 < stats.ticks_emitted <= stats.ticks_planned == 200
    twin = Schedule(STEADY, 100, seed=2, duration_s=1.0)  # the same plans, to count them
    twin.initial_sessions()
    twin.join_updates()
    planned = [twin.plan(k) for k in range(stats.ticks_emitted)]
    assert stats.updates == sum(len(p.updates) for p in planned) > 0
    depths = depth_reader(app, ["player", "physics.0", "physics.1", "ai", "background"])
    assert depths["physics.0"] + depths["physics.1"] == stats.physics_tasks >= stats.physics > 0
    assert depths["ai"] == stats.ai == len(stats.ai_sent) > 0
    assert stats.ai_decisions == sum(len(a.npcs) for a in stats.ai_sent) >= stats.ai
    assert stats.ai_decisions == stats.ai_full + stats.ai_reduced + stats.ai_minimal
    assert stats.npcs == len(planned[0].ai) == 2  # 0.02 per player
    ai_ticks = [p for p in planned if p.ai]  # each NPC at most once a tick, by its tier
    assert 0 < stats.ai_decisions <= stats.npcs * len(ai_ticks)
    assert depths["background"] == stats.background
    assert 5 <= stats.background <= 6  # 6/s by the wall clock, for one second
    assert stats.batches_sent > 0 and stats.batches  # every batch noted with its updates
    assert sum(len(b.intended) for b in stats.batches) == stats.updates
    # Everything else the client sent is on the player queue: session ops and batches.
    others = stats.physics_tasks + stats.ai + stats.background
    assert depths["player"] == client.tasks_sent - others
    assert stats.rejected == 0 and stats.send_errors == 0


def test_a_physics_peak_run_sends_each_blast_as_body_changes_on_the_physics_units(
        app: GameschedCelery) -> None:
    client = GameClient(app)
    # Ten blasts a second, the first at 0.1 s: a slow machine that emits only part of the
    # run's ticks still sends some.
    combat = replace(SCENARIOS["physics-peak"], combat=Combat(per_1000_players_s=10.0))
    schedule = Schedule(combat, 1000, seed=2, duration_s=1.0)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)])
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    stats = driver.run(1.0, lambda elapsed: None)
    client.close()
    twin = Schedule(combat, 1000, seed=2, duration_s=1.0)
    twin.initial_sessions()
    changes = [c for k in range(stats.ticks_emitted) for c in twin.plan(k).bodies]
    blasts = {c.blast for c in changes}
    assert stats.body_changes == len(changes) > 0
    assert stats.bodies_spawned == sum(len(c.spawn) for c in changes) >= 270 * len(blasts)
    depths = depth_reader(app, ["physics.0", "physics.1"])
    assert depths["physics.0"] + depths["physics.1"] == stats.physics_tasks + stats.body_changes
    assert stats.rejected == 0 and stats.send_errors == 0


def test_an_influx_sends_its_moves_coalesced_into_few_tasks(app: GameschedCelery) -> None:
    client = GameClient(app)
    # Half the players move within a second from 0.15 s: a slow machine that emits only
    # part of the run's ticks still sends moves.
    influx = replace(SCENARIOS["influx"], influx=Influx(at=0.1, within_s=1.0, share=0.5))
    schedule = Schedule(influx, 1000, seed=3, duration_s=1.5)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)])
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    opened = driver.stats.opens
    stats = driver.run(1.5, lambda elapsed: None)
    client.close()
    assert stats.moves > 5 * stats.move_tasks > 0  # many sessions crossed, few tasks
    depths = depth_reader(app, ["player"])
    assert depths["player"] == opened + stats.move_tasks + stats.batches_sent
    assert stats.rejected == 0 and stats.send_errors == 0


def test_control_ticks_stand_in_for_beat_and_are_not_awaited_at_the_end(
        app: GameschedCelery) -> None:
    client = GameClient(app)
    schedule = Schedule(STEADY, 50, seed=3, duration_s=1.5)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)],
                        control_ticks=True)
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    stats = driver.run(1.5, lambda elapsed: None)
    client.close()
    assert stats.control >= 1
    assert depth_reader(app, ["control"])["control"] == stats.control
    # the controller's beat keeps sending ticks after the run, so the drain awaits only
    # what the client sent during the run (not the 50 session opens before it)
    assert stats.latency_bound == client.tasks_sent - 50 - stats.background


def test_a_store_front_hands_over_purchases_by_the_wall_clock_at_the_scenario_rate(
        app: GameschedCelery, tmp_path: Path) -> None:
    surge = SCENARIOS["purchase-surge"]
    url = f"sqlite:///{tmp_path / 'g.db'}"
    upgrade(url)
    store_app = create_app(load_settings(broker_url=app.runtime.settings.broker_url,
                                         database_url=url, instance_id="sim-store"))
    client = GameClient(app)
    schedule = Schedule(surge, 3000, seed=4, duration_s=1.0)
    ids = [f"s-{i}" for i in range(schedule.size)]
    store = Store(store_app, ids, 10, "wall", processes=1, threads=2)
    driver = LoadDriver(client, schedule, ids, store=store)
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    driver.submit_updates(schedule.join_updates())
    stats = driver.run(1.0, lambda elapsed: None)
    client.close()
    submissions = store.finish()  # nothing funded: each send is refused, and reported
    expected = surge.purchases_per_player_s * 3000 * 1.0
    assert expected - 10 <= stats.purchases <= expected
    assert stats.purchase_sends == len(submissions) > stats.purchases
    assert [s.key for s in submissions[:1]] == ["sim-wall-buy-0"]
    assert {p.key for p in store.planned} == {s.key for s in submissions}
