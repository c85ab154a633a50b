"""`gamesched demo` as a new user runs it: a subprocess with nothing configured."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

from app.simulate.redisserver import PrivateRedis
from tests.subprocesses import ROOT


def test_demo_runs_end_to_end_on_the_embedded_default(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESCHED_")}
    env["COLUMNS"] = "120"
    proc = subprocess.run(
        [sys.executable, "-m", "app.cli", "demo", "--sessions", "100", "--duration", "3"],
        cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True,
        timeout=180, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    out = proc.stdout
    assert "embedded in-memory broker" in out
    rows = {}
    # physics: one queue per unit; player: one per server instance (two by default)
    for queue in ("player.i0", "player.i1", "physics.0", "physics.1", "ai", "background",
                  "control", "player: updates", "player: sessions"):
        row = re.search(rf"│ {queue}\s+│\s+(\d+) │\s+(\d+) │\s+([\d.]+) │\s+([\d.]+) │", out)
        assert row, f"no row for {queue} in:\n{out}"
        tasks, failed, p50, p99 = int(row[1]), int(row[2]), float(row[3]), float(row[4])
        assert tasks > 0 and failed == 0 and 0 <= p50 <= p99
        rows[queue] = tasks
    assert not re.search(r"│ player\s+│", out)  # every session's work went to its instance
    assert rows["player: updates"] + rows["player: sessions"] == (
        rows["player.i0"] + rows["player.i1"])
    placed = re.search(r"sessions by server instance: i0 (\d+), i1 (\d+)", out)
    assert placed and int(placed[1]) + int(placed[2]) == 100 and min(map(int, placed.groups()))
    sent, applied = map(int, re.search(r"sent (\d+) tasks, (\d+) applied", out).groups())
    assert sent == applied
    assert (tmp_path / "gamesched.db").exists()


def test_demo_on_redis_counts_only_its_own_work(tmp_path: Path,
                                                redis_server_binary: str) -> None:
    """On Redis the fleet's controller runs beat, whose ticks and ledger sweeps are not the
    demo's work: every task the demo sent is applied, and nothing else is counted."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESCHED_")}
    with PrivateRedis(redis_server_binary) as server:
        proc = subprocess.run(
            [sys.executable, "-m", "app.cli", "demo", "--sessions", "50", "--duration", "4"],
            cwd=tmp_path, env={**env, "PYTHONPATH": str(ROOT), "COLUMNS": "120",
                               "GAMESCHED_BROKER_URL": server.url},
            capture_output=True, text=True, timeout=240, check=False,
        )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    sent, applied = map(int, re.search(r"sent (\d+) tasks, (\d+) applied",
                                       proc.stdout).groups())
    assert sent == applied
    control = re.search(r"│ control\s+│\s+(\d+) │", proc.stdout)
    assert control and int(control[1]) > 0  # beat did run, and was left out of the count
