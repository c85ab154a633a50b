"""Shared fixtures: settings for each tier, real services for the live tier."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from app.db.migrate import upgrade
from app.settings import Settings, load_settings
from app.tasking.factory import GameschedCelery, create_app
from tests.services import REDIS_URL, private_postgres_database, require_redis


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests never inherit GAMESCHED_ variables from the shell."""
    import os

    for name in list(os.environ):
        if name.startswith("GAMESCHED_"):
            monkeypatch.delenv(name)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{tmp_path / 'gamesched.db'}"
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A migrated PostgreSQL database of this test session's own."""
    with private_postgres_database() as url:
        upgrade(url)
        yield url


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    """The test Redis database, flushed before and after."""
    client = require_redis()
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture
def eager_settings(sqlite_url: str) -> Settings:
    """Settings for eager (wiring-only) tests on the embedded default."""
    return load_settings(database_url=sqlite_url)


@pytest.fixture
def eager_app(eager_settings: Settings) -> GameschedCelery:
    """A Celery app that runs tasks in-process, for wiring tests only."""
    return create_app(eager_settings, task_always_eager=True, task_eager_propagates=True)


@pytest.fixture
def live_settings(redis_client: redis.Redis, postgres_url: str) -> Settings:
    """Settings for live tests: the test Redis as broker, PostgreSQL as database."""
    return load_settings(broker_url=REDIS_URL, database_url=postgres_url, record_latency=True,
                         instance_id="live-test")
