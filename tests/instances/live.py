"""Starting server instances for the live tests."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from app.settings import Settings
from app.tasking.broker import live_workers
from app.tasking.factory import create_app
from tests.subprocesses import ROOT
from tests.waiting import wait_for


def start_instance(settings: Settings, instance: str, log: Path) -> subprocess.Popen[bytes]:
    """``gamesched worker --role player --instance <instance>``, once it consumes."""
    node = f"player@{instance}"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "app.cli", "worker", "--role", "player", "--instance",
             instance, "--loglevel", "INFO"],
            cwd=ROOT, env={**os.environ, **settings.to_env()}, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True)
    app = create_app(settings)
    wait_for(lambda: node in live_workers(app, timeout=0.5), timeout=60, what=f"{node}")
    return proc


def start_controller(settings: Settings, tmp_path: Path) -> subprocess.Popen[bytes]:
    """``gamesched controller`` (beat and its tick), logging to controller.log."""
    with open(tmp_path / "controller.log", "ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "app.cli", "controller", "--schedule",
             str(tmp_path / "beat"), "--loglevel", "INFO"], cwd=ROOT,
            env={**os.environ, **settings.to_env()}, stdout=out, stderr=subprocess.STDOUT,
            start_new_session=True)
