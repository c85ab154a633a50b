"""Ledger fixtures: a clean database per test on SQLite and on PostgreSQL."""

from __future__ import annotations

import multiprocessing
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from kombu.transport.memory import Channel
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.db.migrate import upgrade
from tests.services import private_postgres_database

LEDGER_TABLES = "ledger_entries, ledger_transactions, ledger_wallets, ledger_players"
# Processes the ledger tests start fork from a server that has imported these once.
FORKSERVER_PRELOAD = ["tests.ledger.helpers", "app.simulate.surge", "app.tasking.factory",
                      "app.client.api"]


@pytest.fixture(autouse=True)
def _empty_memory_broker() -> Iterator[None]:
    """Each ledger test starts and ends with kombu's in-memory broker empty, so no message
    sent here reaches another test's embedded workers (or the other way round)."""
    Channel.queues.clear()
    yield
    Channel.queues.clear()


@pytest.fixture(scope="session", autouse=True)
def _forkserver_preload() -> None:
    multiprocessing.get_context("forkserver").set_forkserver_preload(FORKSERVER_PRELOAD)


@pytest.fixture(scope="session")
def ledger_postgres_url(postgres_server: str) -> Iterator[str]:
    """A migrated PostgreSQL database for the ledger's service tests alone."""
    with private_postgres_database(postgres_server) as url:
        upgrade(url)
        yield url


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file, copied for each test (cheaper than migrating each time)."""
    path = tmp_path_factory.mktemp("ledger-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    return path


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path) -> str:
    """An empty, migrated ledger on each backend (the "postgresql" param makes a test live)."""
    if request.param == "sqlite":
        path = tmp_path / "ledger.db"
        shutil.copyfile(sqlite_template, path)
        return f"sqlite:///{path}"
    url: str = request.getfixturevalue("ledger_postgres_url")
    return empty_ledger(url)


def empty_ledger(url: str) -> str:
    """Remove every ledger row from the database at `url`; returns `url`."""
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.execute(text(f"TRUNCATE {LEDGER_TABLES} RESTART IDENTITY"))
    engine.dispose()
    return url


@pytest.fixture
def sessions(db_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on the test's ledger."""
    engine = make_engine(db_url)
    yield make_sessionmaker(engine)
    engine.dispose()


@pytest.fixture
def pg_url(ledger_postgres_url: str) -> str:
    """The empty PostgreSQL ledger, for tests of row locking between sessions."""
    return empty_ledger(ledger_postgres_url)


@pytest.fixture
def pg_sessions(pg_url: str) -> Iterator[sessionmaker[Session]]:
    """A session factory on the empty PostgreSQL ledger."""
    engine = make_engine(pg_url)
    yield make_sessionmaker(engine)
    engine.dispose()
