"""The driver times every update from the moment its player acted, so a driver that falls
behind shows its lag in the latency instead of hiding it (coordinated omission)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from kombu.transport.memory import Channel

from app.client.api import GameClient
from app.settings import load_settings
from app.simulate.driver import KEPT_UP_LAG_MS, LoadDriver
from app.simulate.latency import outcome
from app.simulate.scenarios import STEADY
from app.simulate.schedule import Schedule
from app.tasking.factory import create_app

STALL_S = 0.25


@pytest.fixture
def client() -> Iterator[GameClient]:
    """A client on the in-process broker with no workers: what is sent stays queued and is
    dropped at the end."""
    Channel.queues.clear()
    client = GameClient(create_app(load_settings(instance_id="sim-intended")))
    yield client
    client.close()
    Channel.queues.clear()


def drive(client: GameClient, stall_s: float, duration_s: float = 0.6) -> LoadDriver:
    schedule = Schedule(STEADY, 200, seed=5, duration_s=duration_s)
    driver = LoadDriver(client, schedule, [f"s-{i}" for i in range(schedule.size)])
    driver.open_sessions(schedule.initial_sessions(), lambda n: None)
    driver.submit_updates(schedule.join_updates())
    stalled: list[bool] = []

    def progress(elapsed: float) -> None:  # the game loop stalls once, right at the start
        if not stalled:
            stalled.append(True)
            time.sleep(stall_s)

    driver.run(duration_s, progress)
    return driver


def test_a_driver_that_falls_behind_adds_its_lag_to_the_latency(client: GameClient) -> None:
    stats = drive(client, STALL_S).stats
    assert stats.batches and stats.updates == sum(len(b.intended) for b in stats.batches)
    # As if every batch were applied the moment it left: what remains is the driver's lag.
    applied_on_send = {b.task_id: b.sent for b in stats.batches}
    timed = outcome(((b.task_id, b.intended) for b in stats.batches), applied_on_send, 0.0)
    assert timed.latencies.max_ms >= STALL_S * 1000 * 0.8
    assert stats.lag_s and max(stats.lag_s) >= STALL_S * 0.8
    assert not stats.kept_up


def test_every_update_is_timed_from_when_its_player_acted(client: GameClient) -> None:
    stats = drive(client, 0.0).stats
    first = stats.started
    for batch in stats.batches:
        # handed over at the end of the tick it happened in: never before the player acted
        assert all(first <= at <= batch.sent for at in batch.intended)
    lag = stats.lag_p99_ms
    assert lag is not None
    assert stats.kept_up == (lag <= KEPT_UP_LAG_MS and stats.ticks_dropped == 0)
