"""Finding the real services the live tests need: skip locally, fail under CI=true."""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

import pytest
import redis
from sqlalchemy import create_engine, text

REDIS_URL = os.environ.get("GAMESCHED_TEST_REDIS_URL", "redis://127.0.0.1:6379/11")
POSTGRES_URL = os.environ.get(
    "GAMESCHED_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)


def in_ci() -> bool:
    """True under CI, where a missing service is a failure, not a skip."""
    return os.environ.get("CI", "").lower() in {"1", "true", "yes"}


def unavailable(what: str, error: Exception) -> NoReturn:
    """Skip (locally) or fail (CI) because `what` cannot be reached."""
    message = f"{what} is not reachable ({error.__class__.__name__}: {error})"
    if in_ci():
        pytest.fail(f"{message}; CI=true requires it", pytrace=False)
    pytest.skip(message)


def require_redis(url: str = REDIS_URL) -> redis.Redis:
    """A client of the test Redis, or skip/fail."""
    client = redis.Redis.from_url(url)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        unavailable(f"Redis at {url}", exc)
    return client


def require_postgres(url: str = POSTGRES_URL) -> str:
    """`url` once the PostgreSQL server there answers, or skip/fail."""
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL is reported
        unavailable(f"PostgreSQL at {url}", exc)
    finally:
        engine.dispose()
    return url


def require_redis_server(binary: str = "redis-server") -> str:
    """The path of the redis-server program that tests start private servers with, or
    skip/fail."""
    path = shutil.which(binary)
    if path is None:
        unavailable(binary, FileNotFoundError("not on PATH"))
    return path


@contextmanager
def private_postgres_database(base_url: str = POSTGRES_URL) -> Iterator[str]:
    """A PostgreSQL database of its own for one test module, dropped afterwards."""
    admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
    name = f"gamesched_test_{uuid.uuid4().hex[:10]}"
    try:
        with admin.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except Exception as exc:  # noqa: BLE001 - any failure to reach PostgreSQL is reported
        admin.dispose()
        unavailable(f"PostgreSQL at {base_url}", exc)
    url = base_url.rsplit("/", 1)[0] + f"/{name}"
    try:
        yield url
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
