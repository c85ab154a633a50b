"""Services a command cannot use: one line naming the URL (password hidden) and the fix.

A command checks the services it needs before its work (`require_database`,
`require_schema`, `require_redis`); `classify` maps a connection error raised later to the
same line, after probing that the service really does not answer now.  Anything else, an
injected or real statement failure included, is left to propagate unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from typing import NamedTuple
from urllib.parse import urlsplit

import redis
from kombu.exceptions import OperationalError as KombuOperationalError
from sqlalchemy import Connection, Engine, inspect, make_url
from sqlalchemy.exc import DBAPIError

from app.db import make_engine
from app.errors import ConfigError, GameschedError
from app.settings import Settings, load_settings, redact

CONNECT_TIMEOUT_S = 3
VERSION_TABLE = "alembic_version"
MIGRATE = "run: gamesched db upgrade"
# Errors that may mean a service stopped answering; `classify` decides.
SERVICE_ERRORS: tuple[type[Exception], ...] = (
    DBAPIError, redis.ConnectionError, redis.TimeoutError, KombuOperationalError)


class ServiceUnavailable(GameschedError):
    """A database or Redis the command needs does not answer or is not migrated; the
    message is the line to print: the service, its URL without password, and the fix."""


class RedisService(NamedTuple):
    """A Redis a command talks to: its URL, what it is to gamesched, the setting naming it."""

    url: str
    name: str
    variable: str


def reason(exc: BaseException, url: str) -> str:
    """Why connecting failed, in a few words (``connection refused``), password hidden."""
    if isinstance(exc, DBAPIError):
        text = _driver_reason(str(exc.orig))
    else:
        text = next((_os_reason(link) for link in _chain(exc) if isinstance(link, OSError)),
                    _driver_reason(str(exc)))
    password = _password(url)
    if password:
        text = text.replace(password, "***")
    return text[:1].lower() + text[1:] if text[1:2].islower() else text


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: BaseException | None = exc
    while seen is not None:
        yield seen
        seen = seen.__cause__ or seen.__context__


def _os_reason(exc: OSError) -> str:
    if isinstance(exc, TimeoutError):
        return "timed out"
    return exc.strerror or str(exc) or type(exc).__name__


def _driver_reason(message: str) -> str:
    """The cause in a driver's message: libpq's ``... failed: Connection refused`` (the last
    host tried when there were several), else the first line."""
    lines = [line.strip() for line in message.splitlines() if line.strip()]
    failed = [line for line in lines if "failed: " in line]
    text = failed[-1].rsplit("failed: ", 1)[1] if failed else (lines[0] if lines else "")
    return text.removeprefix("FATAL:").strip() or "no reason given"


def _password(url: str) -> str | None:
    try:
        return urlsplit(url.removeprefix("sqla+")).password
    except ValueError:
        return None


def unreachable_database(url: str, exc: BaseException) -> ServiceUnavailable:
    """The line for a database that refuses or fails connections."""
    where = ("that its folder exists and is writable" if url.startswith("sqlite")
             else "that the server runs")
    return ServiceUnavailable(f"cannot reach the database at {redact(url)} "
                              f"({reason(exc, url)}); check GAMESCHED_DATABASE_URL and {where}")


def unmigrated_database(url: str, detail: str) -> ServiceUnavailable:
    """The line for a database without (all of) gamesched's tables."""
    return ServiceUnavailable(f"the database at {redact(url)} {detail}; {MIGRATE}")


def unreachable_redis(service: RedisService, exc: BaseException) -> ServiceUnavailable:
    """The line for a Redis that does not answer."""
    return ServiceUnavailable(f"cannot reach {service.name} at {redact(service.url)} "
                              f"({reason(exc, service.url)}); check {service.variable} "
                              f"and that Redis runs")


def probe_engine(url: str) -> Engine:
    """An engine for `url` whose connection attempts give up after `CONNECT_TIMEOUT_S`."""
    if url.startswith("postgresql"):
        return make_engine(url, connect_args={"connect_timeout": CONNECT_TIMEOUT_S})
    return make_engine(url)


def connect(engine: Engine, url: str) -> Connection:
    """A connection, or ServiceUnavailable when the driver could not open one.  An error of
    a statement run while connecting (it has a statement) propagates unchanged."""
    try:
        return engine.connect()
    except DBAPIError as exc:
        if exc.statement is not None:
            raise
        raise unreachable_database(url, exc) from None


def require_database(url: str) -> None:
    """Raise ServiceUnavailable unless the database at `url` accepts a connection."""
    engine = probe_engine(url)
    try:
        connect(engine, url).close()
    finally:
        engine.dispose()


def require_schema(url: str, tables: Sequence[str]) -> None:
    """Raise ServiceUnavailable unless the database at `url` answers and holds `tables`.

    A SQLite file that does not exist is reported as never migrated without creating it."""
    if _sqlite_file_missing(url):
        raise unmigrated_database(url, "has no gamesched tables (never migrated)")
    engine = probe_engine(url)
    try:
        with connect(engine, url) as conn:
            inspector = inspect(conn)
            missing = [t for t in tables if not inspector.has_table(t)]
            versioned = inspector.has_table(VERSION_TABLE)
    finally:
        engine.dispose()
    if missing and len(missing) == len(tables) and not versioned:
        raise unmigrated_database(url, "has no gamesched tables (never migrated)")
    if missing:
        raise unmigrated_database(url, f"has no table {', '.join(missing)} "
                                       f"(not migrated to the latest schema)")


def _sqlite_file_missing(url: str) -> bool:
    if not url.startswith("sqlite"):
        return False
    path = make_url(url).database
    if not path or path == ":memory:" or path.startswith("file:"):
        return False
    folder = os.path.dirname(os.path.abspath(path))
    return os.path.isdir(folder) and not os.path.exists(path)


def redis_services(settings: Settings) -> list[RedisService]:
    """The Redis servers `settings` name: the broker when it is Redis, and the hot-state
    Redis when it has a URL of its own."""
    services = []
    if settings.uses_redis:
        services.append(RedisService(settings.broker_url, "the broker", "GAMESCHED_BROKER_URL"))
    if settings.hot_url is not None and settings.hot_url != settings.broker_url:
        services.append(RedisService(settings.hot_url, "the hot-state Redis",
                                     "GAMESCHED_HOT_URL"))
    return services


def redis_problem(service: RedisService) -> ServiceUnavailable | None:
    """Ping `service` once (connect timeout `CONNECT_TIMEOUT_S`); the line if it fails."""
    client = redis.Redis.from_url(service.url, socket_connect_timeout=CONNECT_TIMEOUT_S,
                                  socket_timeout=CONNECT_TIMEOUT_S)
    try:
        client.ping()
    except (redis.ConnectionError, redis.TimeoutError) as exc:
        return unreachable_redis(service, exc)
    finally:
        client.close()
    return None


def require_redis(settings: Settings) -> None:
    """Raise ServiceUnavailable unless every Redis `settings` name answers a ping."""
    for service in redis_services(settings):
        problem = redis_problem(service)
        if problem is not None:
            raise problem


def classify(exc: Exception) -> ServiceUnavailable | None:
    """The line for `exc` when it means a configured service is unusable, else None.

    A missing table means the database is not migrated.  A connection-level error (no
    statement, or the driver says the connection broke) counts only if a fresh connection
    or ping to the configured service fails now; statement errors are never classified."""
    settings = _settings_or_none()
    if settings is None:
        return None
    if isinstance(exc, DBAPIError):
        return _classify_sql(exc, settings.database_url)
    if isinstance(exc, SERVICE_ERRORS):
        problems = (redis_problem(service) for service in redis_services(settings))
        return next((p for p in problems if p is not None), None)
    return None


def _classify_sql(exc: DBAPIError, url: str) -> ServiceUnavailable | None:
    missing = _missing_table(exc)
    if missing is not None:
        return unmigrated_database(url, f"is not migrated ({missing})")
    if exc.statement is not None and not exc.connection_invalidated:
        return None
    try:
        require_database(url)
    except ServiceUnavailable as problem:
        return problem
    return None


def _missing_table(exc: DBAPIError) -> str | None:
    """The driver's words for a missing table (SQLite's ``no such table``, PostgreSQL's
    undefined_table, SQLSTATE 42P01), else None."""
    text = str(exc.orig).strip()
    first = text.splitlines()[0] if text else ""
    if getattr(exc.orig, "sqlstate", None) == "42P01" or first.startswith("no such table: "):
        return first
    return None


def _settings_or_none() -> Settings | None:
    try:
        return load_settings()
    except ConfigError:
        return None
