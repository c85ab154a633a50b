"""Fixtures of the instance tests."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from app.fleet.fleets import stop_process_groups
from app.settings import Settings
from app.simulate.redisserver import PrivateRedis
from tests.instances.live import PAIR, start_instances


@pytest.fixture
def hot_urls(redis_server_binary: str) -> Iterator[dict[str, str]]:
    """A hot-state Redis of each instance's own (east's and west's)."""
    with PrivateRedis(redis_server_binary) as east, PrivateRedis(redis_server_binary) as west:
        yield dict(zip(PAIR, (east.url, west.url), strict=True))


@pytest.fixture
def apart(live_settings: Settings, hot_urls: dict[str, str],
          tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """East and west running, each keeping session state on its own Redis (`hot_urls`);
    stopped after the test."""
    procs = start_instances(live_settings, tmp_path, hot_urls=hot_urls)
    yield procs
    stop_process_groups(procs)
