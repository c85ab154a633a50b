"""The client's AI loop: an NPC's tier from the players it sees and the controller's cap,
each NPC decided at its tier's rate (the minimal one still once a second), bad input
refused naming the NPC and the field."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator

import pytest

from app.ai.tiers import Tier
from app.client.api import GameClient
from app.client.npcs import AiLoop, ai_route
from app.client.requests import AI_BATCH_MAX
from app.control.controller import Decision, write_decision
from app.errors import InvalidRequest
from app.priority import BANDS
from app.protocol.names import AI_BATCH_TASK, AI_TASK
from app.protocol.queues import Queue
from app.settings import load_settings
from app.simulate.environment import depth_reader
from app.simulate.redisserver import PrivateRedis
from app.tasking.factory import GameschedCelery, create_app

NPCS = [("near", (1000.0, 1000.0), [(1100.0, 1000.0)]),  # a player 100 away: full
        ("mid", (5000.0, 5000.0), [(6000.0, 5000.0)]),  # 1,000 away: reduced
        ("alone", (9000.0, 9000.0), [])]  # nobody: minimal


def decided(loop: AiLoop, seconds: int = 3) -> Counter[str]:
    counts: Counter[str] = Counter()
    for tick in range(10 * seconds):
        for batch in loop.due(tick, NPCS, 10.0):
            counts.update(args[0] for args in batch)
    return counts


def test_each_npc_is_decided_at_the_rate_of_the_tier_its_players_give() -> None:
    loop = AiLoop(lambda: Tier.FULL, 10_000.0)
    counts = decided(loop)
    assert (counts["near"], counts["mid"]) == (30, 15) and counts["alone"] in (3, 4)
    assert loop.decided == {Tier.FULL: 30, Tier.REDUCED: 15, Tier.MINIMAL: counts["alone"]}
    batch = loop.due(0, NPCS, 10.0)[0]
    assert [args[3] for args in batch if args[0] == "near"] == ["full"]


def test_the_controllers_cap_lowers_every_tier_but_not_below_once_a_second() -> None:
    cap = [Tier.FULL]
    loop = AiLoop(lambda: cap[0], 10_000.0)
    cap[0] = Tier.MINIMAL
    assert set(decided(loop).values()) <= {3, 4}  # every 0.8 s each, over three seconds
    cap[0] = Tier.REDUCED
    counts = decided(loop)
    assert (counts["near"], counts["mid"]) == (15, 15) and counts["alone"] in (3, 4)


def test_bad_npcs_and_ticks_are_refused_naming_them() -> None:
    loop = AiLoop(lambda: Tier.FULL, 10_000.0)
    with pytest.raises(InvalidRequest) as bad:
        loop.due(0, [NPCS[0], ("b", (1.0, 2e9), [])], 10.0)
    assert bad.value.field == "npcs.1.position"
    with pytest.raises(InvalidRequest) as tiered:
        loop.due(0, [("c", (1.0, 1.0), [], "full")], 10.0)
    assert tiered.value.field == "npcs.0.tier"
    for tick in (-1, 1.5, True):
        with pytest.raises(InvalidRequest, match="tick"):
            loop.due(tick, NPCS, 10.0)
    with pytest.raises(InvalidRequest, match="npcs"):
        loop.due(0, "npc-1", 10.0)
    assert loop.decided == Counter()  # nothing counted for refused ticks


def test_a_crowd_of_due_npcs_leaves_in_batches_of_at_most_the_maximum() -> None:
    loop = AiLoop(lambda: Tier.FULL, 10_000.0)
    crowd = [(f"n{i}", (10.0, 10.0), [(20.0, 10.0)]) for i in range(AI_BATCH_MAX + 5)]
    batches = loop.due(0, crowd, 10.0)
    assert [len(b) for b in batches] == [AI_BATCH_MAX, 5]


@pytest.fixture
def app(redis_server_binary: str) -> Iterator[GameschedCelery]:
    """A client app on a private Redis with no workers: what is sent stays queued."""
    with PrivateRedis(redis_server_binary) as server:
        yield create_app(load_settings(broker_url=server.url, instance_id="npcs"))


def test_a_game_server_keeps_the_controllers_tier_unless_told_not_to(
        app: GameschedCelery) -> None:
    write_decision(app.runtime.hot, Decision(at=0.0, cpu=0.95, depths={}, ai_level=0.25,
                                             shed_background=True, ai_tier="minimal"))
    near = [("orc", (1000.0, 1000.0), [(1010.0, 1000.0)])]  # full, left to itself
    throttled = GameClient(app)
    unthrottled = GameClient(app, app.runtime.settings.model_copy(update={"ai_throttle": False}))
    sent = {name: sum(len(client.ai_tick(tick, near)) for tick in range(20))
            for name, client in (("throttled", throttled), ("unthrottled", unthrottled))}
    assert sent["throttled"] in (2, 3) and sent["unthrottled"] == 20  # every 0.8 s, or 10/s
    assert throttled.ai_decided == {"minimal": sent["throttled"]}
    assert unthrottled.ai_decided == {"full": 20}
    for client in (throttled, unthrottled):
        client.flush()  # the client's thread sends the batches
    assert depth_reader(app, ["ai"])["ai"] == sent["throttled"] + 20
    for client in (throttled, unthrottled):
        client.close()


def test_a_batch_with_a_minimal_npc_goes_first_in_the_ai_queue_and_others_by_players() -> None:
    band = BANDS[Queue.AI]
    seen = ["n", (10.0, 10.0), [(20.0, 10.0)] * 6, "full"]
    alone = ["m", (9000.0, 9000.0), [], "minimal"]
    crowded = ai_route(AI_BATCH_TASK, [seen]).priority
    assert band.low < crowded < ai_route(AI_BATCH_TASK, [alone[:3]]).priority <= band.high
    assert ai_route(AI_BATCH_TASK, [alone]).priority == band.low
    assert ai_route(AI_BATCH_TASK, [seen, alone]).priority == band.low
    assert ai_route(AI_TASK, [alone]).priority == band.low  # one decision, as a batch
