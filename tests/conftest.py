"""Shared fixtures: settings for each tier, real services for the live tier, and the hook
that marks the live tier.

A test is live when it needs a real service: its fixture closure holds one of
`SERVICE_FIXTURES`, or a parametrized fixture of it takes a param named in
`SERVICE_PARAMS` (such a fixture asks for the service with ``request.getfixturevalue``,
which the closure cannot show).  Nothing else marks a test live.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
import redis
from celery.contrib.testing.app import setup_default_app
from celery.result import _set_task_join_will_block

from app.db.migrate import upgrade
from app.fleet.fleets import stop_process_groups
from app.fleet.worker import consumption, worker_argv
from app.settings import Settings, load_settings
from app.tasking.broker import live_workers
from app.tasking.factory import GameschedCelery, create_app
from tests import services
from tests.services import private_postgres_database
from tests.subprocesses import ROOT, TEST_TASKS, StartWorker
from tests.waiting import wait_for

# pytester: tests of the hook below.  celery.contrib.pytest: Celery's in-process fixtures
# (`celery_app`, `celery_worker`, ...), which pytest-celery re-exports; pytest-celery's own
# plugin is disabled (``-p no:celery`` in pyproject.toml) because its `celery_worker` is a
# Docker container and there is no Docker engine here.
pytest_plugins = ["pytester", "celery.contrib.pytest"]

# The fixtures that reach a real service; every fixture that needs a service depends on one
# of them (redis_client, postgres_url, live_settings, start_worker, celery_worker, the
# ledger's ledger_postgres_url, pg_url and pg_sessions...), so it is in the closure too.
SERVICE_FIXTURES = frozenset({
    "redis_url",  # the test Redis
    "postgres_server",  # the test PostgreSQL server
    "redis_server_binary",  # redis-server, to start private servers
})
# Params of parametrized fixtures that name a service (the ledger's `db_url`, the state
# store's `hot`).
SERVICE_PARAMS = frozenset({"postgresql", "redis"})


@pytest.hookimpl(tryfirst=True)  # before ``-m`` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark `live` every test that needs a real service."""
    for item in items:
        if needs_service(item):
            item.add_marker(pytest.mark.live)


def needs_service(item: pytest.Item) -> bool:
    """Whether `item` reaches a real service through its fixtures."""
    if SERVICE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    return any(isinstance(value, str) and value in SERVICE_PARAMS
               for value in _fixture_params(item).values())


def _fixture_params(item: pytest.Item) -> dict[str, Any]:
    """The params of `item`'s parametrized fixtures (not of ``@pytest.mark.parametrize``,
    whose values are test data: a compose service may be called "redis")."""
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return {}
    direct: set[str] = set()
    for marker in item.iter_markers("parametrize"):
        names = marker.args[0] if marker.args else marker.kwargs["argnames"]
        if isinstance(names, str):
            names = names.split(",")
        direct |= {name.strip() for name in names}
    return {name: value for name, value in callspec.params.items() if name not in direct}


@pytest.fixture(scope="session", autouse=True)
def _clean_environment() -> Iterator[None]:
    """Tests never inherit GAMESCHED_ variables from the shell, not even module and session
    fixtures (GAMESCHED_TEST_* were read by tests/services.py on import)."""
    with pytest.MonkeyPatch.context() as monkeypatch:
        for name in list(os.environ):
            if name.startswith("GAMESCHED_"):
                monkeypatch.delenv(name)
        yield


@pytest.fixture(autouse=True)
def _no_worker_state() -> None:
    """Each test starts as a process running no worker would: a thread-pool worker started
    in this process (an EmbeddedFleet's) sets Celery's process-wide flag that makes every
    later `get()` of a result raise, eager ones too, and leaves it set when it stops."""
    _set_task_join_will_block(False)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A migrated SQLite database in a temporary folder."""
    url = f"sqlite:///{tmp_path / 'gamesched.db'}"
    upgrade(url)
    return url


# Services.  Locally a missing one skips the tests that need it, saying why; under CI=true
# it fails them (tests/services.py).


@pytest.fixture(scope="session")
def redis_url() -> str:
    """The test Redis's URL, once it answers."""
    services.require_redis(services.REDIS_URL).close()
    return services.REDIS_URL


@pytest.fixture(scope="session")
def postgres_server() -> str:
    """The test PostgreSQL server's URL (tests make databases of their own there), once it
    answers."""
    return services.require_postgres(services.POSTGRES_URL)


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    """The redis-server program, for tests that start (and stop) a Redis of their own."""
    return services.require_redis_server()


@pytest.fixture(scope="session")
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A migrated PostgreSQL database of this test session's own."""
    with private_postgres_database(postgres_server) as url:
        upgrade(url)
        yield url


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """The test Redis database, flushed before and after."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.flushdb()
    client.close()


@pytest.fixture
def eager_settings(sqlite_url: str) -> Settings:
    """Settings for eager (wiring-only) tests on the embedded default."""
    return load_settings(database_url=sqlite_url)


@pytest.fixture
def eager_app(eager_settings: Settings) -> GameschedCelery:
    """A Celery app that runs tasks in-process, for wiring tests only."""
    return create_app(eager_settings, task_always_eager=True, task_eager_propagates=True)


@pytest.fixture
def live_settings(redis_url: str, redis_client: redis.Redis, postgres_url: str) -> Settings:
    """Settings for live tests: the test Redis (flushed) as broker, PostgreSQL as database."""
    return load_settings(broker_url=redis_url, database_url=postgres_url, record_latency=True,
                         instance_id="live-test")


# Workers.  Subprocesses (`start_worker`) for tests that kill or restart a worker, run
# several of them at once or need gamesched's own command line; otherwise Celery's
# in-process `celery_worker`, on a gamesched app, in a thread of the test process.


@pytest.fixture
def start_worker(live_settings: Settings, tmp_path: Path) -> Iterator[StartWorker]:
    """Start role workers as subprocesses through Celery's own CLI (with the role's argv
    from gamesched), loading the test tasks too; returns the node name once it answers."""
    procs: list[subprocess.Popen[bytes]] = []
    env = {**os.environ, **live_settings.to_env()}

    def start(role: str, name: str, concurrency: int | None = None,
              unit: int | None = None) -> str:
        node = f"{name}@live"
        argv = worker_argv(live_settings, role, concurrency, node, "INFO", unit)
        cmd = [sys.executable, "-m", "celery", "-A", "app.tasking.entry", *argv,
               "-I", TEST_TASKS]
        with open(tmp_path / f"{name}.log", "ab") as log:
            procs.append(subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True))
        app = create_app(live_settings)
        wait_for(lambda: node in live_workers(app, timeout=0.5), timeout=60,
                 what=f"worker {node} to answer")
        return node

    yield start
    stop_process_groups(procs)


@pytest.fixture
def celery_app(live_settings: Settings,
               celery_includes: Sequence[str]) -> Iterator[GameschedCelery]:
    """The app of the in-process `celery_worker`: gamesched's, on the live settings."""
    app = create_app(live_settings)
    # Import the task modules first: their tasks register with every app made later only
    # while their finalizers outlive `setup_default_app`, which restores the ones it found.
    app.loader.import_default_modules()
    for module in celery_includes:
        importlib.import_module(module)
    with setup_default_app(app):  # current and default app restored afterwards
        yield app
    if "engine" in vars(app.runtime):
        app.runtime.engine.dispose()


@pytest.fixture(scope="session")
def celery_includes() -> Sequence[str]:
    """The test-only tasks, beside gamesched's own."""
    return (TEST_TASKS,)


@pytest.fixture(scope="session")
def celery_worker_pool() -> str:
    """Threads: the pool of the latency-bound roles (an in-process worker never forks)."""
    return "threads"


@pytest.fixture
def celery_worker_parameters(request: pytest.FixtureRequest,
                             live_settings: Settings) -> dict[str, Any]:
    """One slot consuming the queues of the role named by the test's
    ``@pytest.mark.worker_role(...)`` (``all`` without one), as that role's command line
    would; prefetch 1 comes from the app's configuration."""
    marker = request.node.get_closest_marker("worker_role")
    role = marker.args[0] if marker else "all"
    return {
        "queues": list(consumption(live_settings, role).queues),
        "concurrency": 1,
        "hostname": f"{role}@in-process",
        "perform_ping_check": False,  # Celery's ping needs a result backend and its queue
    }
