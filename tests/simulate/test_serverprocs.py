"""The server's Redis is found by its own process id, and its CPU is counted by the
sampler: busy Redis work shows in the server's CPU, not only the workers'."""

from __future__ import annotations

import threading

import psutil
import redis

from app.simulate.redisserver import PrivateRedis
from app.simulate.sampler import Sampler
from app.simulate.serverprocs import ServerProcesses, postgres_pid, redis_pid
from tests.simulate.norecords import NoRecords

# A script that keeps the Redis server itself busy for about half a second.
BUSY = "local t = redis.call('TIME'); local n = 0\n" \
       "repeat n = n + 1; local now = redis.call('TIME')\n" \
       "until (now[1] - t[1]) * 1000000 + (now[2] - t[2]) > 500000\nreturn n"


def test_a_busy_redis_is_found_by_its_pid_and_counted_as_server_cpu(
        redis_server_binary: str) -> None:
    with PrivateRedis(redis_server_binary) as server:
        pid = redis_pid(server.url)
        assert pid == server.pid and "redis" in psutil.Process(pid).name()
        servers = ServerProcesses(server.url, None, "sqlite:///unused.db")
        assert servers.current() == {"broker_redis": server.pid}  # SQLite has no server
        apart = ServerProcesses(server.url, None, "sqlite:///unused.db",
                                instance_hot={"i0": server.url})
        assert apart.current() == {"broker_redis": server.pid, "hot_redis_i0": server.pid}
        sampler = Sampler(dict, dict, NoRecords(), servers.current)  # type: ignore[arg-type]
        sampler.cores = 1
        sampler.started = 0.0
        sampler._measure()  # the baseline
        client = redis.Redis.from_url(server.url)
        busy = threading.Thread(target=client.eval, args=(BUSY, 0))
        busy.start()
        busy.join()
        sample = sampler._measure()
        assert sample is not None
        assert sample.service_cpu["broker_redis"] > 0.2  # about half a second of its CPU
        assert sample.server_cpu == sample.fleet_cpu + sample.services_cpu > 0.2
        assert sample.unmeasured == ()


def test_a_redis_not_answering_has_no_pid_and_sqlite_no_server() -> None:
    assert redis_pid("redis://127.0.0.1:1/0") is None
    assert postgres_pid("sqlite:///x.db") is None


def test_postgresql_is_found_as_the_parent_of_its_backends(postgres_url: str) -> None:
    pid = postgres_pid(postgres_url)
    assert pid is not None
    postmaster = psutil.Process(pid)
    assert "postgres" in postmaster.name() and postmaster.children()  # its backends
