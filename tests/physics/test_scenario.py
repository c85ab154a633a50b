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
