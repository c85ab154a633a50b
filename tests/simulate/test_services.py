"""The simulator's services: a private redis-server, the broker and database it picks, and
clearing its keys between runs."""

from __future__ import annotations

from pathlib import Path

import psutil
import pytest
import redis

from app.errors import GameschedError
from app.settings import load_settings, redact
from app.simulate.environment import clear_broker, clear_state, services
from app.simulate.redisserver import PrivateRedis


def test_private_redis_answers_and_is_gone_after_the_block(redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        pid = server.pid
        client = redis.Redis.from_url(server.url)
        assert client.ping()
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("appendonly") == {"appendonly": "no"}
        client.close()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    with pytest.raises(redis.ConnectionError):
        redis.Redis.from_url(server.url, socket_connect_timeout=1).ping()


def test_private_redis_restarts_on_the_same_port_empty(redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        url = server.url
        redis.Redis.from_url(url).set("k", b"v")
        server.stop()
        server.start()
        assert server.url == url
        assert redis.Redis.from_url(url).get("k") is None


def test_a_missing_redis_server_binary_is_a_clear_error() -> None:
    with pytest.raises(GameschedError, match="GAMESCHED_BROKER_URL"):
        PrivateRedis(binary="no-such-redis-server-binary")


def test_nothing_configured_means_private_redis_and_a_temporary_sqlite(
        redis_server_binary: str) -> None:
    """`services` starts two redis-servers (found on PATH, as the fixture found it)."""
    with services(load_settings()) as env:
        assert env.private_redis is not None and env.private_hot is not None
        assert env.broker_label.startswith("private redis-server redis://127.0.0.1:")
        assert redis.Redis.from_url(env.broker_url).ping()
        # hot state gets a redis-server of its own, beside the broker's
        assert env.hot_url is not None and env.hot_url != env.broker_url
        assert env.hot_label.startswith("private redis-server redis://127.0.0.1:")
        assert redis.Redis.from_url(env.hot_url).ping()
        assert len(set(env.pids)) == 2
        path = Path(env.database_url.removeprefix("sqlite:///"))
        assert path.exists()  # migrated
    assert not path.exists()


def test_each_instance_gets_a_hot_redis_of_its_own_beside_private_servers(
        redis_server_binary: str) -> None:
    with services(load_settings(), ("i0", "i1")) as env:
        urls = env.instance_hot_urls
        assert sorted(urls) == ["i0", "i1"]
        assert len({env.broker_url, env.hot_url, *urls.values()}) == 4
        assert env.hot_urls == [env.hot_url, urls["i0"], urls["i1"]]
        assert [s.url for s in env.hot_servers] == env.hot_urls
        assert all(redis.Redis.from_url(url).ping() for url in urls.values())
        assert len(set(env.pids)) == 4
        assert "2 instances" in env.hot_label
        pids = env.pids
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids)


def test_instances_share_a_configured_broker_s_hot_state(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_BROKER_URL", "redis://127.0.0.1:6379/5")
    with services(load_settings(), ("i0", "i1")) as env:
        assert env.instance_hot == {} and env.hot_urls == ["redis://127.0.0.1:6379/5"]


def test_a_configured_broker_that_is_not_redis_is_refused(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_BROKER_URL", "memory://")
    with pytest.raises(GameschedError, match="needs a Redis broker"), services(load_settings()):
        pass


def test_a_configured_redis_and_database_are_used_as_they_are(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    database = f"sqlite:///{tmp_path / 'mine.db'}"
    monkeypatch.setenv("GAMESCHED_BROKER_URL", "redis://127.0.0.1:6379/5")
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", database)
    with services(load_settings()) as env:
        assert env.private_redis is None
        assert env.broker_url == "redis://127.0.0.1:6379/5"
        assert env.hot_url is None and env.hot_label == "the broker"  # as configured
        assert env.database_url == database
    assert (tmp_path / "mine.db").exists()  # migrated, and left in place
    monkeypatch.setenv("GAMESCHED_HOT_URL", "redis://127.0.0.1:6379/6")
    with services(load_settings()) as env:
        assert env.hot_url == "redis://127.0.0.1:6379/6" and env.private_hot is None


def test_clearing_removes_queues_and_state_but_not_other_keys(redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        client = redis.Redis.from_url(server.url)
        ours = ["player", "player:3", "celery", "celery\x06\x169", "gamesched:state:s1",
                "_kombu.binding.player", "unacked"]
        theirs = ["players", "my:player", "celeryish", "other"]
        for key in ours + theirs:
            client.rpush(key, b"x")
        assert clear_broker(server.url, include_state=False) == len(ours) - 1
        assert client.exists("gamesched:state:s1")
        clear_broker(server.url)
        assert sorted(k.decode() for k in client.keys("*")) == sorted(theirs)
        client.rpush("gamesched:state:s2", b"x")
        client.rpush("player", b"x")
        assert clear_state(server.url) == 1  # hot state only: a hot-state Redis has no queues
        assert client.exists("player") and not client.exists("gamesched:state:s2")


def test_passwords_stay_out_of_the_report() -> None:
    assert redact("redis://:secret@host:6379/5") == "redis://:***@host:6379/5"
    assert redact("postgresql+psycopg://u:pw@db/test") == "postgresql+psycopg://u:***@db/test"
    assert redact("sqlite:///x.db") == "sqlite:///x.db"

