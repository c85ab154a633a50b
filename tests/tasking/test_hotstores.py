"""Other instances' hot stores are reached with timeouts: one that never answers (its
host cut off) gives up instead of holding the caller's thread."""

from __future__ import annotations

import socket
import threading
import time

import pytest
import redis

from app.instances.memory import MemoryRegistry
from app.players.hotstore import MemoryHotStore
from app.settings import load_settings
from app.tasking.arrivals import stores_elsewhere
from app.tasking.hotstores import OTHER_STORE_TIMEOUT_S, URLS_MISS_S, HotStores
from app.tasking.runtime import Runtime


def test_another_instances_store_that_never_answers_gives_up_instead_of_hanging() -> None:
    registry = MemoryRegistry()
    with socket.create_server(("127.0.0.1", 0)) as silent:  # connects, never answers
        registry.join("far", 10, f"redis://127.0.0.1:{silent.getsockname()[1]}/0")
        stores = HotStores(MemoryHotStore(), "", registry)
        failed: list[BaseException] = []

        def hand_over() -> None:
            try:
                stores.of_instance("far").states.hand_over(["s-1"])
            except redis.RedisError as exc:
                failed.append(exc)

        caller = threading.Thread(target=hand_over, daemon=True)
        caller.start()
        caller.join(timeout=4 * OTHER_STORE_TIMEOUT_S + 10)  # four tries, and room
        assert not caller.is_alive(), "the call waited on a store that never answers"
        assert len(failed) == 1 and isinstance(failed[0], redis.TimeoutError)
    assert stores.of_instance(None) is stores.own  # this process's own store is not touched


@pytest.mark.parametrize("url", ["", "memory://"])
def test_a_process_own_store_is_its_own_for_any_spelling(url: str) -> None:
    own = MemoryHotStore()
    assert HotStores(own, "", MemoryRegistry()).of_url(url) is own


def test_a_replay_is_told_the_store_of_each_session_placed_on_an_instance_apart() -> None:
    """`stores_elsewhere`: sessions on an instance keeping its state in another store get
    that store; those on this store's instance, on one that recorded none, or not placed,
    are left out."""
    registry = MemoryRegistry()
    registry.join("here", 100, "redis://127.0.0.1:7001/0")
    registry.join("apart", 100, "redis://127.0.0.1:7002/0")
    registry.join("unnamed", 100)
    runtime = Runtime(load_settings())
    own = MemoryHotStore()
    runtime.__dict__["instances"] = registry
    runtime.__dict__["hot_stores"] = stores = HotStores(own, "redis://127.0.0.1:7001", registry)
    for session, instance in (("s-here", "here"), ("s-apart", "apart"),
                              ("s-unnamed", "unnamed")):
        assert registry.place(session, 1.0, prefer=instance) == instance
    found = stores_elsewhere(runtime)(["s-here", "s-apart", "s-unnamed", "s-nowhere"])
    assert found == {"s-apart": stores.of_instance("apart")}
    assert found["s-apart"] is not own


def test_sessions_are_grouped_by_the_store_of_the_instance_they_run_on() -> None:
    """`where_they_run`: each session once, with the store of the instance the registry
    places it on now; this process's own store for one on an instance that recorded no
    store, and for one placed nowhere."""
    registry = MemoryRegistry()
    registry.join("here", 100)
    registry.join("apart", 100, "redis://127.0.0.1:7002/0")
    own = MemoryHotStore()
    stores = HotStores(own, "", registry)
    for session, instance in (("s-here", "here"), ("s-apart", "apart")):
        assert registry.place(session, 1.0, prefer=instance) == instance
    grouped = stores.where_they_run(["s-apart", "s-here", "s-nowhere", "s-apart"])
    assert grouped == {own: ["s-here", "s-nowhere"], stores.of_instance("apart"): ["s-apart"]}
    assert stores.of_instance("apart") is not own


class CountingRegistry(MemoryRegistry):
    """A registry that counts how often the instances' hot-store URLs are read."""

    reads = 0

    def hot_urls(self) -> dict[str, str]:
        self.reads += 1
        return super().hot_urls()


def test_an_instance_that_recorded_no_store_is_not_looked_up_for_every_session() -> None:
    registry = CountingRegistry()
    registry.join("known", 10, "redis://127.0.0.1:7001/0")
    stores = HotStores(MemoryHotStore(), "", registry)
    started = time.monotonic()
    for _ in range(1000):  # a round over a thousand sessions of an instance not back yet
        assert stores.of_instance("silent") is stores.own
        assert stores.url_of("known") == "redis://127.0.0.1:7001/0"
    # once, and once more each URLS_MISS_S the round lasted (none on a machine not starved)
    assert registry.reads <= 1 + (time.monotonic() - started) // URLS_MISS_S + 1
    registry.join("silent", 10, "redis://127.0.0.1:7002/0")
    time.sleep(URLS_MISS_S)  # the time an unknown instance is taken as storeless
    assert stores.url_of("silent") == "redis://127.0.0.1:7002/0"


def test_a_store_is_gone_when_sql_names_it_and_the_registry_no_longer_does() -> None:
    registry = MemoryRegistry()
    recorded = {"west": "west-store", "east": "east-store", "here": "own-store"}
    stores = HotStores(MemoryHotStore(), "", registry, own_store="own-store",
                       recorded=recorded.get)
    registry.join("east", 10, "redis://127.0.0.1:7001/0")  # back: its store is reached
    assert stores.gone("west") == "west-store"  # its name, for its state log's rows
    assert stores.gone("east") == ""
    assert stores.gone("here") == ""  # this process's own store is never gone
    assert stores.gone("never-joined") == ""
    assert HotStores(MemoryHotStore(), "", registry).gone("west") == ""  # SQL not read
