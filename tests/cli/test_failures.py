"""`app.cli.failures`: URLs shown without passwords, and which errors raised during a
command mean a service is unusable (real engines and clients, closed local ports)."""

from __future__ import annotations

import pytest
import redis
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from app.cli.failures import ServiceUnavailable, classify
from app.db import make_engine
from app.settings import redact
from app.simulate.sqlfaults import FAULT_MESSAGE, sql_faults


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql+psycopg://app:pw@db:5432/game", "postgresql+psycopg://app:***@db:5432/game"),
    ("postgresql://app@db/game", "postgresql://app@db/game"),
    ("sqlite:///gamesched.db", "sqlite:///gamesched.db"),
    ("redis://user:pw@cache:6379/0", "redis://user:***@cache:6379/0"),
    ("redis://:pw@cache:6379/0", "redis://:***@cache:6379/0"),
    ("rediss://cache:6380/2", "rediss://cache:6380/2"),
    ("redis://cache/0?password=pw&db=1", "redis://cache/0?password=***&db=1"),
    ("sqla+postgresql://app:pw@db/game", "sqla+postgresql://app:***@db/game"),
])
def test_redact_hides_the_password_and_keeps_the_rest(url: str, shown: str) -> None:
    assert redact(url) == shown


def sql_error(url: str, statement: str) -> DBAPIError:
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(text(statement))
    except DBAPIError as exc:
        return exc
    finally:
        engine.dispose()
    raise AssertionError(f"{statement} did not fail")


def test_a_missing_table_means_not_migrated(monkeypatch: pytest.MonkeyPatch,
                                            sqlite_url: str) -> None:
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", sqlite_url)
    problem = classify(sql_error(sqlite_url, "SELECT * FROM ledger_gone"))
    assert isinstance(problem, ServiceUnavailable)
    assert str(problem) == (f"the database at {sqlite_url} is not migrated (no such table: "
                            f"ledger_gone); run: gamesched db upgrade")


def test_statement_failures_are_left_alone(monkeypatch: pytest.MonkeyPatch,
                                           sqlite_url: str) -> None:
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", sqlite_url)
    assert classify(sql_error(sqlite_url, "SELEC 1")) is None
    engine = make_engine(sqlite_url)
    with sql_faults(engine, rate=1.0), pytest.raises(DBAPIError) as injected, \
            engine.connect() as conn:
        conn.execute(text("SELECT 1"))
    engine.dispose()
    assert FAULT_MESSAGE in str(injected.value)
    assert classify(injected.value) is None


def test_a_refused_connection_is_an_unreachable_database(
        monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    url = f"postgresql+psycopg://app:pw@127.0.0.1:{closed_port}/game"
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", url)
    engine = make_engine(url)
    with pytest.raises(DBAPIError) as refused, engine.connect():
        pass
    engine.dispose()
    assert str(classify(refused.value)) == (
        f"cannot reach the database at postgresql+psycopg://app:***@127.0.0.1:{closed_port}/game"
        f" (connection refused); check GAMESCHED_DATABASE_URL and that the server runs")


def test_a_redis_error_names_the_redis_that_does_not_answer(
        monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    url = f"redis://127.0.0.1:{closed_port}/3"
    monkeypatch.setenv("GAMESCHED_BROKER_URL", "memory://")
    monkeypatch.setenv("GAMESCHED_HOT_URL", url)
    with pytest.raises(redis.ConnectionError) as refused:
        redis.Redis.from_url(url).ping()
    assert str(classify(refused.value)) == (
        f"cannot reach the hot-state Redis at {url} (connection refused); "
        f"check GAMESCHED_HOT_URL and that Redis runs")


def test_a_redis_error_without_a_configured_redis_is_left_alone(
        monkeypatch: pytest.MonkeyPatch, closed_port: int) -> None:
    with pytest.raises(redis.ConnectionError) as refused:
        redis.Redis(host="127.0.0.1", port=closed_port).ping()
    assert classify(refused.value) is None
