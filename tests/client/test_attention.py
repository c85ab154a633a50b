"""Where the players are, across game servers: each reports its own about once a second
and sees everyone's, its own changes at once."""

from __future__ import annotations

import pytest
import redis

from app.ai.tiers import Tier
from app.client.attention import Attention, ControlledDetail, ControlledTier
from app.physics import attention as attention_module
from app.physics.attention import MemoryPlayerCounts, PlayerCounts, RedisPlayerCounts
from tests.stores import STORES, memory_or_redis


@pytest.fixture(params=STORES)
def counts(request: pytest.FixtureRequest) -> PlayerCounts:
    return memory_or_redis(request, MemoryPlayerCounts, RedisPlayerCounts)


def test_every_game_server_sees_the_players_of_all(counts: PlayerCounts) -> None:
    clock = [0.0]
    mine = {"w0": 3}
    a = Attention(counts, lambda: dict(mine), clock=lambda: clock[0], source="a")
    b = Attention(counts, lambda: {"w1": 2, "w0": 1}, clock=lambda: clock[0], source="b")
    assert a.players() == {"w0": 3}  # b has not reported yet
    assert b.players() == {"w0": 4, "w1": 2}
    mine["w2"] = 5  # a's own change counts at once, b's view waits for a's next report
    assert a.players() == {"w0": 3, "w2": 5}
    clock[0] += 0.5
    assert a.players() == {"w0": 3, "w2": 5}  # b's report is read on a's next period
    assert b.players() == {"w0": 4, "w1": 2}
    clock[0] += 1.0
    assert a.players() == {"w0": 4, "w1": 2, "w2": 5}
    assert b.players() == {"w0": 4, "w1": 2, "w2": 5}


def test_a_game_server_that_stopped_reporting_counts_no_more(
        counts: PlayerCounts, monkeypatch: pytest.MonkeyPatch) -> None:
    counts.report("gone", {"w0": 7})
    counts.report("here", {"w0": 1})
    assert counts.totals() == {"w0": 8}
    monkeypatch.setattr(attention_module, "STALE_S", -1.0)  # every report is now stale
    assert counts.totals() == {}


def test_reports_live_in_one_hash_under_the_projects_prefix(redis_client: redis.Redis) -> None:
    RedisPlayerCounts(redis_client).report("gs-1", {"w3": 2})
    assert [k.decode() for k in redis_client.keys("*")] == ["gamesched:physics:players"]


def test_the_controllers_detail_is_read_at_most_once_a_period_and_kept_when_unreadable(
        ) -> None:
    clock, reads = [0.0], []
    value: list[float | None] = [0.5]

    def read() -> float | None:
        reads.append(clock[0])
        if value[0] == -1.0:
            raise redis.ConnectionError("the hot store is away")
        return value[0]

    detail = ControlledDetail(read, period_s=1.0, clock=lambda: clock[0])
    assert detail.factor() == 0.5
    value[0] = 0.25
    clock[0] = 0.9
    assert detail.factor() == 0.5 and reads == [0.0]  # within the period: not read again
    clock[0] = 1.0
    assert detail.factor() == 0.25
    value[0], clock[0] = -1.0, 2.0
    assert detail.factor() == 0.25  # unreadable: the last factor stands
    value[0], clock[0] = None, 3.0
    assert detail.factor() == 1.0  # no decision yet: full detail


def test_the_controllers_ai_tier_is_read_once_a_period_and_full_without_a_good_one() -> None:
    clock, value = [0.0], ["reduced"]
    tier = ControlledTier(lambda: value[0], period_s=1.0, clock=lambda: clock[0])
    assert tier.value() is Tier.REDUCED
    value[0], clock[0] = "minimal", 0.5
    assert tier.value() is Tier.REDUCED  # within the period: not read again
    clock[0] = 1.0
    assert tier.value() is Tier.MINIMAL
    value[0], clock[0] = "heroic", 2.0
    assert tier.value() is Tier.FULL  # a tier that is none: the full one
