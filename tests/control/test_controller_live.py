"""`gamesched controller` runs beat and its tick; `gamesched status` and its Prometheus
metrics show the result."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from app.control.controller import read_decision
from app.observe.metrics import CONTROL_GAUGES
from app.protocol import keys
from app.settings import Settings
from app.tasking.factory import create_app
from tests.subprocesses import ROOT, free_port, scrape
from tests.waiting import wait_for


def test_controller_ticks_and_status_reports_it(live_settings: Settings, tmp_path: Path) -> None:
    env = {**os.environ, **live_settings.to_env(), "TMPDIR": str(tmp_path)}
    app = create_app(live_settings)
    port = free_port()
    started = time.time()
    with open(tmp_path / "controller.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "app.cli", "controller",
                                 "--metrics-port", str(port)], cwd=ROOT,
                                env=env, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        first = wait_for(lambda: read_decision(app.runtime.hot), timeout=60,
                         what="the controller's first decision")
        assert first.at >= started
        later = wait_for(lambda: (d := read_decision(app.runtime.hot)) and d.at > first.at
                         and d, timeout=30, what="a second tick")
        assert later.at - first.at < 5.0
        wait_for(lambda: app.runtime.hot.get(keys.LEDGER_SWEPT), timeout=30,
                 what="the ledger's sweeper to run beside the tick")
        # (the director published none on its first tick, and republishes on a change)
        app.runtime.physics.slowed.publish({"arena-7": 0.5})
        status = subprocess.run([sys.executable, "-m", "app.cli", "status"], cwd=ROOT,
                                env={**env, "COLUMNS": "120"}, capture_output=True,
                                text=True, timeout=60, check=True)
        assert "controller@live-test" in status.stdout
        assert "controller (" in status.stdout and "ai_level=" in status.stdout
        assert "background_level=" in status.stdout and "background_slots=0" in status.stdout
        assert re.search(r"^ledger: 0 pending \(0 stale, oldest 0\.0s\)$", status.stdout,
                         re.MULTILINE), status.stdout
        assert re.search(r"^sweeper: last ran \d+\.\ds ago, saw 0 pending, re-sent 0$",
                         status.stdout, re.MULTILINE), status.stdout
        assert re.search(r"^write-behind: no snapshot round yet \(0 sessions changed",
                         status.stdout, re.MULTILINE), status.stdout  # no player worker here
        for queue in ("player", "physics", "ai", "transactions", "background", "control"):
            assert queue in status.stdout
        assert re.search(r"^physics regions slowed \(too costly for a frame, unable to "
                         r"split\): arena-7 x0\.50$", status.stdout, re.MULTILINE), status.stdout
        text = wait_for(lambda: scrape(port), what="the controller's metrics")
        gauges = {m[1]: float(m[2]) for m in re.finditer(
            r"^gamesched_control_(\w+) ([\d.e+-]+)$", text, re.MULTILINE)}
        assert set(gauges) == set(CONTROL_GAUGES)
        assert gauges["ai_tier"] in {0.0, 1.0, 2.0} and 0 < gauges["background_level"] <= 1
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)
