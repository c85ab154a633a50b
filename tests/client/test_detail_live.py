"""Level of detail as a game server's frames carry it to the physics units: players'
regions every frame, their neighbours at the near rate, the rest at the far rate, each
region advancing by the time since its last step."""

from __future__ import annotations

import base64
import json
from collections import defaultdict

import redis

from app.client import GameClient
from app.control.controller import Load, decide, write_decision
from app.physics.detail import MAX_STEP_MS
from app.protocol.queues import PRIORITY_STEPS, unit_queues
from app.settings import Settings
from app.tasking.broker import step_key
from app.tasking.factory import create_app

GRID = [f"w{q}{r}" for q in "0123" for r in "0123"]  # a 4 x 4 world


def _sent_steps(client: redis.Redis, units: int) -> dict[str, list[tuple[int, float]]]:
    """Every region step waiting in the units' queues (every priority step's list, read as
    kombu's Redis transport writes them): region -> [(frame, dt_ms), ...]."""
    steps: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for name in unit_queues(units):
        for key in [step_key(name, step) for step in PRIORITY_STEPS]:
            for raw in client.lrange(key, 0, -1):
                message = json.loads(raw)
                (frame, _, regions, _, _), _, _ = json.loads(base64.b64decode(message["body"]))
                for region, _, dt_ms in regions:
                    steps[region].append((frame, dt_ms))
    return steps


def test_a_frame_carries_the_regions_due_by_player_attention(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    settings = live_settings.model_copy(update={
        "physics_frame_hz": 20.0, "physics_near_hz": 10.0, "physics_far_hz": 2.0})
    app = create_app(settings)
    client = GameClient(app, settings)
    client.open_session("m-1", players=4, region="w00")  # the south-west corner
    for frame in range(40):  # two seconds at 20 Hz
        client.submit_physics_frame(frame, dict.fromkeys(GRID, 10), dt_ms=50.0)
    client.flush()  # the client's thread sends the frames
    steps = _sent_steps(redis_client, settings.physics_units)
    client.close()
    assert [f for f, _ in sorted(steps["w00"])] == list(range(40))  # every frame
    assert {dt for _, dt in steps["w00"]} == {50.0}
    for near in ("w01", "w02", "w03"):  # touching w00: every other frame, 100 ms each
        assert len(steps[near]) == 20 and {dt for _, dt in steps[near]} == {100.0}
    assert len(steps["w33"]) == 4 and {dt for _, dt in steps["w33"]} == {MAX_STEP_MS}
    assert set(steps) == set(GRID)


def test_under_load_the_controller_lowers_the_detail_of_regions_without_players(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    settings = live_settings.model_copy(update={
        "physics_frame_hz": 20.0, "physics_near_hz": 10.0, "physics_far_hz": 2.0})
    app = create_app(settings)
    write_decision(app.runtime.hot, decide(Load(depths={}, cpu=0.95), cpu_cap=0.8))  # half
    client = GameClient(app, settings)
    client.open_session("m-1", players=4, region="w00")
    for frame in range(40):
        client.submit_physics_frame(frame, dict.fromkeys(GRID, 10), dt_ms=50.0)
    client.flush()  # the client's thread sends the frames
    steps = _sent_steps(redis_client, settings.physics_units)
    client.close()
    assert len(steps["w00"]) == 40  # the players' region is never lowered
    assert len(steps["w03"]) == 10 and {dt for _, dt in steps["w03"]} == {MAX_STEP_MS}  # 5 Hz
    assert len(steps["w33"]) == 2  # 1 Hz


def test_a_region_the_director_slowed_steps_at_its_factor_and_one_with_players_never(
        live_settings: Settings, redis_client: redis.Redis) -> None:
    settings = live_settings.model_copy(update={
        "physics_frame_hz": 20.0, "physics_near_hz": 10.0, "physics_far_hz": 2.0})
    app = create_app(settings)
    quarters = [f"w0{r}{q}" for r in "23" for q in "0123"]  # w02 and w03 split in four
    app.runtime.physics.owners.publish(
        dict.fromkeys([r for r in GRID if r not in ("w02", "w03")] + quarters, 0))
    app.runtime.physics.slowed.publish({"w00": 0.25, "w01": 0.5, "w020": 0.5} | {
        f"w03{q}": 0.5 for q in "0123"})
    client = GameClient(app, settings)
    client.open_session("m-1", players=4, region="w00")
    for frame in range(40):  # the game server still names w03, and w02 whole
        client.submit_physics_frame(frame, dict.fromkeys(GRID, 10), dt_ms=50.0)
    client.flush()  # the client's thread sends the frames
    steps = _sent_steps(redis_client, settings.physics_units)
    client.close()
    assert len(steps["w00"]) == 40  # players there: never slowed
    assert len(steps["w01"]) == 10  # near, at half its 10 Hz
    assert [len(steps[f"w03{q}"]) for q in "0123"] == [10] * 4  # w03's four quarters are
    assert [len(steps[f"w02{q}"]) for q in "0123"] == [20] * 4  # one of w02's is not enough
