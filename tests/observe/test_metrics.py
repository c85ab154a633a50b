"""`gamesched worker --metrics-port` serves per-queue Prometheus metrics from a real worker."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

from app.client.api import GameClient
from app.settings import Settings
from app.tasking.factory import create_app
from tests.subprocesses import ROOT, free_port, scrape
from tests.waiting import wait_for


def _value(text: str, name: str, queue: str) -> float:
    match = re.search(rf'^{name}{{queue="{queue}"}} ([\d.e+]+)$', text, re.MULTILINE)
    return float(match[1]) if match else 0.0


def test_worker_serves_counters_and_latency_histograms_per_queue(
    live_settings: Settings, tmp_path: Path
) -> None:
    port = free_port()
    env = {**os.environ, **live_settings.to_env()}
    cmd = [sys.executable, "-m", "app.cli", "worker", "--role", "ai", "--metrics-port",
           str(port), "--hostname", "metrics@live"]
    with open(tmp_path / "worker.log", "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        first = wait_for(lambda: scrape(port), timeout=60, what="the metrics endpoint")
        for name in ("started", "succeeded", "failed", "retried", "skipped"):  # from start-up
            assert f'gamesched_tasks_{name}_total{{queue="ai"}} 0.0' in first, name
        client = GameClient(create_app(live_settings))
        for i in range(12):
            client.submit_ai(f"npc-{i}", (1.0, 1.0), [(2.0, 2.0)])
        # One scrape reads counters and histograms from separate files, so a task may show
        # in one and not yet in the other: wait for a scrape that has all 12 in each.
        counts = ("gamesched_tasks_started_total", "gamesched_tasks_succeeded_total",
                  "gamesched_task_wait_seconds_count", "gamesched_task_latency_seconds_count")
        text = wait_for(
            lambda: (t := scrape(port) or "")
            and all(_value(t, name, "ai") >= 12 for name in counts) and t,
            timeout=60, what="12 AI tasks in every count of /metrics")
        assert _value(text, "gamesched_tasks_failed_total", "ai") == 0
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
