"""SQLite writers queue on a lock: threads on a thread lock, processes on a lock file.
PostgreSQL engines keep a pool as large as a worker's threads.  `statement` commits a
statement by itself on PostgreSQL and holds the write lock on SQLite."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from app.db import SQLiteWriteLock, make_engine, make_sessionmaker, statement, transaction


def _free(lock_file: Path) -> bool:
    """Whether another holder (another open file, as another process has) gets the lock."""
    with open(lock_file, "a") as other:
        try:
            fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        return True


@pytest.fixture
def sqlite_factory(tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions of a SQLite file holding table ``t (x INTEGER)``."""
    engine = make_engine(f"sqlite:///{tmp_path / 'game.db'}")
    factory = make_sessionmaker(engine)
    with transaction(factory) as db:
        db.execute(text("CREATE TABLE t (x INTEGER)"))
    yield factory
    engine.dispose()


@pytest.mark.parametrize("writes", [transaction, statement])
def test_sqlite_writes_hold_the_lock_file_other_processes_wait_on_and_commit_at_the_end(
        tmp_path: Path, sqlite_factory: sessionmaker[Session], writes: Any) -> None:
    for x in (1, 2):  # the lock is taken again and again
        with writes(sqlite_factory) as db:
            db.execute(text(f"INSERT INTO t VALUES ({x})"))
            assert not _free(tmp_path / "game.db.lock")
        assert _free(tmp_path / "game.db.lock")
    with transaction(sqlite_factory) as db:
        assert db.execute(text("SELECT x FROM t ORDER BY x")).scalars().all() == [1, 2]


def test_an_in_memory_database_has_no_lock_file() -> None:
    assert SQLiteWriteLock(":memory:").path is None
    assert SQLiteWriteLock(None).path is None
    assert SQLiteWriteLock("/data/game.db").path == "/data/game.db.lock"


def test_worker_threads_keep_their_postgresql_connections_between_bursts(
        postgres_url: str) -> None:
    """Eight threads (the transactions role's pool) busy at once, then idle, five times over,
    keep to eight server processes: none is closed when it comes back and opened again for
    the next burst, which costs PostgreSQL a process start each time."""
    factory = make_sessionmaker(make_engine(postgres_url))
    together = threading.Barrier(8, timeout=30)

    def bursts(_: int) -> set[int]:
        seen = set()
        for _ in range(5):
            with transaction(factory) as db:
                seen.add(int(db.execute(text("SELECT pg_backend_pid()")).scalar_one()))
                together.wait()  # all eight hold a connection at once
            together.wait()  # and all eight gave it back
        return seen

    with ThreadPoolExecutor(8) as pool:
        seen = set().union(*pool.map(bursts, range(8)))
    assert len(seen) == 8


def test_a_postgresql_statement_is_committed_before_the_block_ends(postgres_url: str) -> None:
    """Autocommit: another connection sees the row while the block is still open, and a
    failure after the statement does not take it back."""
    engine = make_engine(postgres_url)
    factory = make_sessionmaker(engine)
    table = f"statement_{threading.get_ident()}"
    try:
        with transaction(factory) as db:
            db.execute(text(f"CREATE TABLE {table} (x INTEGER)"))
        try:
            with statement(factory) as connection:
                connection.execute(text(f"INSERT INTO {table} VALUES (7)"))
                with transaction(factory) as other:
                    seen = other.execute(text(f"SELECT x FROM {table}")).scalars().all()
                raise RuntimeError("after the statement")
        except RuntimeError:
            pass
        assert seen == [7]
        with transaction(factory) as db:
            assert db.execute(text(f"SELECT count(*) FROM {table}")).scalar_one() == 1
            db.execute(text(f"DROP TABLE {table}"))
    finally:
        engine.dispose()
