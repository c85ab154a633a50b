"""Game servers' shares of one schedule: together they hand over exactly the whole plan,
each piece once; and the drive they report together keeps each one's lag."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.simulate.driver import KEPT_UP_LAG_MS, DriveStats, combine
from app.simulate.population import Share
from app.simulate.scenarios import SCENARIOS, STEADY
from app.simulate.schedule import Schedule, TickPlan

TICKS = 240  # 1.2 s: six AI ticks, many frames


def played(scenario: Any, players: int, seed: int, share: Share) -> list[TickPlan]:
    schedule = Schedule(scenario, players, seed, duration_s=10.0, share=share)
    schedule.initial_sessions()
    schedule.join_updates()
    return [schedule.plan(k) for k in range(TICKS)]


def pieces(plans: list[TickPlan]) -> dict[str, list[Any]]:
    return {"updates": sorted((u.index, u.seq, u.at, u.position, sorted(u.state.items()))
                              for p in plans for u in p.updates),
            "opens": sorted((s.index, s.region) for p in plans for s in p.opens),
            "moves": sorted((p.tick, m) for p in plans for m in p.moves),
            "frames": sorted((f.frame, sorted(f.regions.items())) for p in plans
                             for f in p.physics),
            "ai": sorted((p.tick, d.npc, d.position) for p in plans for d in p.ai)}


@settings(max_examples=6, deadline=None)
@given(count=st.integers(2, 4), seed=st.integers(0, 10_000),
       name=st.sampled_from(["steady", "promo-spike", "world-event"]))
def test_the_shares_of_a_schedule_partition_the_whole_plan(count: int, seed: int,
                                                           name: str) -> None:
    whole = pieces(played(SCENARIOS[name], 300, seed, Share()))
    parts = [pieces(played(SCENARIOS[name], 300, seed, Share(i, count))) for i in range(count)]
    for kind, expected in whole.items():
        assert sorted(x for part in parts for x in part[kind]) == expected, kind
    assert whole["updates"] and whole["frames"] and whole["ai"]  # the comparison saw work


def test_each_share_owns_its_sessions_and_a_share_of_frames() -> None:
    plans = played(STEADY, 300, 3, Share(1, 3))
    assert {u.index % 3 for p in plans for u in p.updates} == {1}
    assert {f.frame % 3 for p in plans for f in p.physics} == {1}
    schedule = Schedule(STEADY, 300, 3, duration_s=10.0, share=Share(1, 3))
    whole = Schedule(STEADY, 300, 3, duration_s=10.0)
    assert schedule.frames_due(TICKS) == len(range(1, whole.frames_due(TICKS) + 1)[1::3])


def server(lag_ms: float, *, dropped: int = 0, updates: int = 10) -> DriveStats:
    return DriveStats(updates=updates, tasks_sent=updates, ticks_planned=100,
                      ticks_emitted=100 - dropped, started=1.0, ended=11.0,
                      lag_s=[lag_ms / 1000.0] * 100)


def test_a_drive_from_several_servers_adds_their_work_and_keeps_each_ones_lag() -> None:
    front = DriveStats(background=4, tasks_sent=4, started=1.0, ended=11.5)
    drive = combine(front, [(101, server(1.0)), (102, server(2.0, updates=5))])
    assert (drive.updates, drive.background, drive.tasks_sent) == (15, 4, 19)
    assert (drive.ticks_planned, drive.elapsed_s) == (200, 10.5)
    assert [(g.server, g.pid, g.lag_p99_ms) for g in drive.servers] == [
        (0, 101, pytest.approx(1.0)), (1, 102, pytest.approx(2.0))]
    assert drive.kept_up


@pytest.mark.parametrize("behind", [
    server(KEPT_UP_LAG_MS + 1.0),  # one server late, the other on time
    server(0.0, dropped=1),  # one tick dropped
])
def test_one_game_server_behind_makes_the_run_not_keep_up(behind: DriveStats) -> None:
    drive = combine(DriveStats(), [(101, server(0.5)), (102, behind)])
    assert drive.servers[0].kept_up and not drive.servers[1].kept_up
    assert not drive.kept_up
