"""Physics scenarios: one file and seed, one final hash, in any process; bad files named."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from app.errors import InvalidRequest
from app.physics.scenario import final_bodies, load, run

EXAMPLE = Path(__file__).parents[2] / "docs" / "scenarios" / "crates.json"


def _file(tmp_path: Path, data: Any) -> Path:
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(data))
    return path


def test_the_same_file_and_seed_give_the_same_hash_and_another_seed_another() -> None:
    scenario = load(EXAMPLE)
    first, again, other = run(scenario, 1), run(scenario, 1), run(scenario, 2)
    assert first == again
    assert other.hash != first.hash
    assert (first.bodies, first.frames) == (122, 300)  # 2 crates, 120 spawned; 5 s at 60 Hz


def test_the_command_prints_the_same_hash_in_processes_of_different_hash_seeds() -> None:
    expected = run(load(EXAMPLE), 3).hash
    for hash_seed in ("0", "12345"):
        env = os.environ | {"PYTHONHASHSEED": hash_seed}
        done = subprocess.run(
            [sys.executable, "-m", "app.cli", "physics", "replay", str(EXAMPLE), "--seed", "3"],
            capture_output=True, text=True, env=env, timeout=120, check=True)
        assert done.stdout.split()[0] == expected


def test_an_impulse_changes_the_outcome_and_the_walls_keep_bodies_in(tmp_path: Path) -> None:
    base: dict[str, Any] = {
        "world_size": 200, "duration_s": 3,
        "bodies": [{"id": "a", "position": [100, 100], "velocity": [120, 0], "radius": 5}],
        "spawns": [{"at_s": 0, "count": 30, "centre": [100, 100], "spread": 60, "speed": 120}],
    }
    pushed = base | {"impulses": [{"at_s": 1.0, "body": "spawn-0-3", "impulse": [0, 50]}]}
    quiet, moved = run(load(_file(tmp_path, base)), 1), run(load(_file(tmp_path, pushed)), 1)
    assert quiet.hash != moved.hash
    inside = final_bodies(load(_file(tmp_path, base)), 1).values()
    assert len(inside) == 31
    assert all(0 <= b.position.x <= 200 and 0 <= b.position.y <= 200 for b in inside)


@pytest.mark.parametrize(("data", "field"), [
    ([1, 2], "file"),
    ({"bodies": []}, "duration_s"),
    ({"duration_s": 1, "bodies": [{"id": "a", "position": [1, 2], "mass": -1}]}, "bodies.0.mass"),
    ({"duration_s": 1, "bodies": [{"id": "a", "position": [1, 2]},
                                  {"id": "a", "position": [3, 4]}]}, "bodies.1.id"),
    ({"duration_s": 1, "impulses": [{"at_s": 0, "body": "ghost", "impulse": [1, 1]}]},
     "impulses.0.body"),
    ({"duration_s": 1, "wind": 3}, "wind"),
    ({"duration_s": 1, "spawns": [{"at_s": 1.0, "count": 1, "centre": [1, 1]}]},
     "spawns.0.at_s"),
])
def test_a_bad_scenario_is_refused_naming_the_field(
        tmp_path: Path, data: Any, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        load(_file(tmp_path, data))
    assert caught.value.field == field


def test_a_file_that_is_not_json_is_refused_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "scenario.json"
    path.write_text("{not json")
    with pytest.raises(InvalidRequest) as caught:
        load(path)
    assert caught.value.field == "file" and caught.value.value == str(path)


GAS = Path(__file__).parents[2] / "docs" / "scenarios" / "gas.json"


def test_a_partitioned_replay_ends_the_same_on_one_unit_or_several() -> None:
    scenario = load(EXAMPLE)
    hashes = {run(scenario, 1, depth=2, units=units).hash for units in (1, 2, 3)}
    assert len(hashes) == 1


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_gas_ends_within_one_world_unit_of_one_space_whatever_the_partition(
        seed: int) -> None:
    """The stated tolerance (docs/architecture.md, physics units): where bodies meet in
    ones and twos, at least 90 % of them end within 1 world unit of where one space puts
    them; every body ends somewhere, once."""
    scenario = load(GAS)
    whole = final_bodies(scenario, seed)
    for depth in (1, 2):
        cut = final_bodies(scenario, seed, depth=depth, units=2)
        assert set(cut) == set(whole)
        close = [cut[k].position.get_distance(whole[k].position) < 1.0 for k in whole]
        assert sum(close) / len(close) >= 0.90


def test_a_dense_crowd_keeps_its_centre_within_one_percent_of_the_world() -> None:
    """Bodies spawned overlapping push apart chaotically: single paths depend on where the
    borders fall, the crowd as a whole does not."""
    scenario = load(EXAMPLE)
    whole, cut = final_bodies(scenario, 1), final_bodies(scenario, 1, depth=1, units=2)
    assert set(cut) == set(whole)
    for axis in (0, 1):
        centre = [sum(b.position[axis] for b in bodies.values()) / len(bodies)
                  for bodies in (whole, cut)]
        assert abs(centre[0] - centre[1]) < 0.01 * scenario.world_size


@pytest.mark.parametrize(("depth", "units", "field"), [(5, 1, "depth"), (-1, 1, "depth"),
                                                       (1, 0, "units"), (1, 17, "units")])
def test_a_replay_outside_its_limits_is_refused_naming_the_option(
        depth: int, units: int, field: str) -> None:
    with pytest.raises(InvalidRequest) as caught:
        run(load(EXAMPLE), 1, depth=depth, units=units)
    assert caught.value.field == field
