"""Engines and sessions for SQLite (the embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import fcntl
import threading
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Connection, Engine, create_engine, event, make_url
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session, sessionmaker

from app.db.base import Base, utcnow

__all__ = ["Base", "utcnow"]  # and what is defined below

SQLITE_BUSY_TIMEOUT_MS = 10_000
READ_ONLY = "gamesched_read_only"  # the execution option of a reading session


class SQLiteWriteLock:
    """One SQLite writer at a time, queued instead of polling: threads of this process wait
    on a lock, processes on an ``flock`` of a file beside the database, which the kernel
    hands to the next waiter at once (SQLite's busy handler sleeps up to 100 ms between
    tries, so under many writing processes a writer slept on after the lock was free).
    In-memory databases have one process and only the thread lock."""

    def __init__(self, database: str | None) -> None:
        self.path = None if database in (None, "", ":memory:") else f"{database}.lock"
        self._threads = threading.Lock()

    @contextmanager
    def held(self) -> Iterator[None]:
        """Hold the lock for the block."""
        with self._threads:
            if self.path is None:
                yield
                return
            with open(self.path, "a") as lock:  # opened per use: a forked child has its own
                fcntl.flock(lock, fcntl.LOCK_EX)
                yield  # closing the file releases the flock


_SQLITE_WRITE_LOCKS: WeakKeyDictionary[Engine, SQLiteWriteLock] = WeakKeyDictionary()


# Connections a PostgreSQL engine keeps open: as many as a worker or game server has busy
# threads (the transactions role runs 8) and a few more.  SQLAlchemy's default keeps 5 and
# closes each connection beyond them when it comes back to a full pool, so threads busy in
# bursts kept opening and closing server processes under a purchase surge, each costing
# PostgreSQL a process start.
POOL_SIZE = 12
POOL_OVERFLOW = 12


def make_engine(url: str, **kwargs: Any) -> Engine:
    """An engine for `url`; SQLite gets WAL, a busy timeout and BEGIN IMMEDIATE writes;
    PostgreSQL a pool of `POOL_SIZE` connections, each checked before use."""
    if url.startswith("sqlite"):
        return _sqlite_engine(url, **kwargs)
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    kwargs.setdefault("pool_size", POOL_SIZE)
    kwargs.setdefault("max_overflow", POOL_OVERFLOW)
    return create_engine(url, pool_pre_ping=True, **kwargs)


def _sqlite_engine(url: str, **kwargs: Any) -> Engine:
    engine = create_engine(
        url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
        **kwargs,
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control from pysqlite so BEGIN IMMEDIATE can be issued.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        # A reading session (`app.db.reads.reading`) takes no write lock: in WAL, a deferred
        # transaction reads a snapshot and waits on no writer.
        deferred = connection.get_execution_options().get(READ_ONLY)
        connection.exec_driver_sql("BEGIN" if deferred else "BEGIN IMMEDIATE")

    _SQLITE_WRITE_LOCKS[engine] = SQLiteWriteLock(make_url(url).database)
    return engine


def dialect_insert(dialect: str, table: Any) -> postgresql.Insert | sqlite.Insert:
    """An INSERT into `table` in `dialect`'s own form (PostgreSQL's, else SQLite's): the
    one with ``on_conflict_do_nothing``."""
    return (postgresql.insert if dialect == "postgresql" else sqlite.insert)(table)


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    """A session factory bound to `engine`."""
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def transaction(factory: sessionmaker[Session]) -> Iterator[Session]:
    """A session inside one transaction: committed on success, rolled back on error."""
    with _write_lock(factory), factory() as session, session.begin():
        yield session


@contextmanager
def statement(factory: sessionmaker[Session]) -> Iterator[Connection]:
    """A Core connection for one statement that is a transaction by itself: in autocommit
    on PostgreSQL (no BEGIN and COMMIT round trips); on SQLite inside BEGIN IMMEDIATE under
    the write lock, committed when the block ends.  Statements run here commit one by one
    on PostgreSQL, so run one, or only ones that stand alone."""
    engine = factory.kw["bind"]
    if engine.dialect.name != "postgresql":
        with _write_lock(factory), engine.begin() as connection:
            yield connection
        return
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        yield connection


def _write_lock(factory: sessionmaker[Session]) -> AbstractContextManager[None]:
    bind = factory.kw.get("bind")
    lock = _SQLITE_WRITE_LOCKS.get(bind) if isinstance(bind, Engine) else None
    return lock.held() if lock else nullcontext()
