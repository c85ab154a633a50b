"""Other instances' hot stores are reached with timeouts: one that never answers (its
host cut off) gives up instead of holding the caller's thread."""

from __future__ import annotations

import socket
import threading

import pytest
import redis

from app.instances.memory import MemoryRegistry
from app.players.hotstore import MemoryHotStore
from app.tasking.hotstores import OTHER_STORE_TIMEOUT_S, HotStores


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
