"""A replay with every physics unit in a process of its own, exchanging through Redis as the
fleet's units do, ends at the same hash as in one process; a unit that fails is named."""

from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.errors import GameschedError
from app.physics import lockstep
from app.physics.scenario import load, run
from app.simulate.redisserver import PrivateRedis, free_port
from tests.subprocesses import ROOT
from tests.waiting import wait_for

SCENARIOS = Path(__file__).parents[2] / "docs" / "scenarios"


@pytest.fixture
def redis_url() -> Iterator[str]:
    """An empty Redis of the test's own: a replay's keys are the fleet's."""
    with PrivateRedis() as server:
        yield server.url


@pytest.mark.parametrize(("name", "seed", "depth", "units"), [
    ("crates.json", 1, 2, 3),  # a dense crowd across 16 regions: every contact counts
    ("gas.json", 2, 1, 2),
])
def test_units_in_processes_end_at_the_hash_of_units_in_one_process(
        redis_url: str, name: str, seed: int, depth: int, units: int) -> None:
    scenario = load(SCENARIOS / name)
    apart = lockstep.run(scenario, seed, depth, units, redis_url)
    assert apart == run(scenario, seed, depth=depth, units=units)
    assert apart.bodies == len(scenario.bodies) + sum(s.count for s in scenario.spawns)


def test_a_unit_that_fails_is_named_with_its_error(redis_url: str) -> None:
    scenario = load(SCENARIOS / "crates.json")
    # The owner map is published first, on the given Redis; the units then find nothing
    # listening at the address they are given.
    unreachable = f"redis://127.0.0.1:{free_port()}/0"
    with pytest.raises(GameschedError,
                       match=r"^replay unit \d failed: ConnectionError: .*connecting to"):
        lockstep.run_units(scenario, 1, depth=1, units=2, redis_url=unreachable,
                           epoch=lockstep.publish_owners(redis_url, depth=1, units=2))


def test_the_command_replays_in_processes_on_a_private_redis() -> None:
    crates = SCENARIOS / "crates.json"
    done = subprocess.run(
        [sys.executable, "-m", "app.cli", "physics", "replay", str(crates), "--seed", "1",
         "--depth", "2", "--units", "3", "--processes"],
        capture_output=True, text=True, timeout=300, check=True, cwd=ROOT)
    assert done.stdout.split()[0] == run(load(crates), 1, depth=2, units=3).hash
    assert "3 units in processes" in done.stdout


def test_a_unit_killed_mid_run_is_named_and_the_others_do_not_wait_for_it(
        redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lockstep, "BARRIER_TIMEOUT_S", 600.0)  # far past this test's wait
    long_run = tmp_path / "long.json"
    long_run.write_text(json.dumps({"world_size": 1000, "duration_s": 600, "spawns": [
        {"at_s": 0, "count": 40, "centre": [500, 500], "spread": 400, "speed": 100}]}))
    outcome: list[BaseException | None] = []

    def replay() -> None:
        try:
            lockstep.run(load(long_run), 1, 1, 2, redis_url)
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
            outcome.append(exc)

    runner = threading.Thread(target=replay, daemon=True)
    runner.start()
    unit = wait_for(lambda: next((p for p in multiprocessing.active_children()
                                  if p.name == "replay-unit-1"), None),
                    timeout=60, what="unit 1's process")
    os.kill(unit.pid, signal.SIGKILL)
    runner.join(timeout=120)
    assert not runner.is_alive(), "the other unit waited for the dead one"
    (failure,) = outcome
    assert isinstance(failure, GameschedError)
    assert re.match(r"replay unit 1 \(pid \d+\) stopped \(exit code -9\)", str(failure))
