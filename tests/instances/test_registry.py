"""The instance registry: live instances, sticky places under the load bound, capacity,
and the Redis script choosing as the in-process registry does."""

from __future__ import annotations

import logging
import time

import pytest
import redis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app.errors import ServerFull
from app.instances.heartbeat import Heartbeat
from app.instances.placement import EPSILON, score
from app.instances.registry import MemoryRegistry, RedisRegistry, Registry, milli
from tests.stores import STORES, memory_or_redis


class Clock:
    """A clock the test moves."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=STORES)
def registry(request: pytest.FixtureRequest) -> Registry:
    return memory_or_redis(request, MemoryRegistry, RedisRegistry)


def test_no_live_instance_places_nothing(registry: Registry) -> None:
    assert registry.place("s1", 2.0) is None
    assert registry.owner("s1") is None


def test_a_session_stays_on_its_instance_with_its_new_weight(registry: Registry) -> None:
    for name in ("a", "b", "c"):
        registry.heartbeat(name, 100)
    first = registry.place("s1", 2.0)
    assert registry.owners(["s1", "nobody"]) == [first, None]
    assert first in {"a", "b", "c"}
    assert registry.place("s1", 5.0) == first
    assert registry.owner("s1") == first
    loads = {s.name: s.load for s in registry.instances()}
    assert loads[first] == 5.0
    registry.release("s1")
    registry.release("s1")  # idempotent
    assert registry.owner("s1") is None
    assert {s.name: (s.sessions, s.load) for s in registry.instances()}[first] == (0, 0.0)


def test_a_preferred_instance_takes_a_session_while_it_is_below_its_capacity(
        registry: Registry) -> None:
    """The instance a session ran on before the registry lost it takes it back, whatever
    the session's ranking and the load bound (the sessions placed back lay as they did
    before the loss); one that is not live or is full does not."""
    for name, capacity in (("a", 1000), ("b", 1000), ("c", 20)):
        registry.heartbeat(name, capacity)
    other = {n: next(f"{n}-{k}" for k in range(100)
                     if max("abc", key=lambda name, k=k: score(f"{n}-{k}", name)) != n)
             for n in "abc"}
    for name, session in other.items():  # ranked elsewhere, placed on its instance
        assert registry.place(session, 1.0, prefer=name) == name
    back = [registry.place(f"back{n}", 1.0, prefer="b") for n in range(30)]
    assert back == ["b"] * 30  # far over the bound: b held them before the loss
    assert registry.place("other", 1.0, prefer="nowhere") in {"a", "b", "c"}  # not live
    on_c = {s.name: s.sessions for s in registry.instances()}["c"]
    full = [registry.place(f"full{n}", 1.0, prefer="c") for n in range(25)]
    # c takes them up to its capacity, then the ranking decides
    assert full.count("c") == 20 - on_c and len(full) == 25
    assert {s.name: s.sessions for s in registry.instances()}["c"] == 20
    # placed back on its instance: its state is there; placed elsewhere, it came from
    # there, and its new instance takes its state from that one's store
    placed = [f"full{n}" for n in range(25)]
    assert registry.came_from(placed) == [None if where == "c" else "c" for where in full]
    assert registry.came_from(["other", "back0"]) == ["nowhere", None]


def test_placing_many_places_each_as_placing_one_would_and_never_raises_full(
        registry: Registry) -> None:
    """In one call: each on the instance it ran on while that has room, then by ranking;
    a session placed already stays; None where no instance is live, or all are full."""
    assert registry.place_many([("m0", 1.0, None), ("m1", 2.0, "a")]) == [None, None]
    for name, capacity in (("a", 3), ("b", 4)):
        registry.heartbeat(name, capacity)
    kept = registry.place_many([("kept", 1.0, None)])[0]  # the instances read anew
    assert kept in {"a", "b"}
    got = registry.place_many([("kept", 1.0, "b" if kept == "a" else "a"),
                               *((f"m{n}", 1.0, "a") for n in range(7))])
    assert got[0] == kept  # placed already: it stays
    room_a = 3 - (kept == "a")  # a takes its own while it has room, then b, then none
    assert got[1:] == ["a"] * room_a + ["b"] * (6 - room_a) + [None]
    assert [registry.owner(f"m{n}") for n in range(7)] == got[1:]
    assert {s.name: s.sessions for s in registry.instances()} == {"a": 3, "b": 4}


def test_loads_stay_within_the_bound_over_the_mean(registry: Registry) -> None:
    for name in ("a", "b", "c", "d"):
        registry.heartbeat(name, 10_000)
    for n in range(400):
        registry.place(f"s{n}", 1.0 + n % 7)
    loads = [s.load for s in registry.instances()]
    mean = sum(loads) / len(loads)
    assert max(loads) <= (1 + EPSILON) * mean + 7.0  # the bound plus the heaviest session
    assert sum(s.sessions for s in registry.instances()) == 400


def test_a_full_fleet_refuses_a_new_session_and_keeps_the_placed(registry: Registry) -> None:
    registry.heartbeat("a", 2)
    registry.heartbeat("b", 1)
    placed = [registry.place(f"s{n}", 1.0) for n in range(3)]
    assert sorted(map(str, placed)) == ["a", "a", "b"]
    with pytest.raises(ServerFull) as refused:
        registry.place("s3", 1.0)
    assert refused.value.retry_after_s > 0
    assert refused.value.instances == 2
    assert "at capacity" in str(refused.value)
    assert registry.owner("s3") is None
    assert registry.place("s0", 3.0) == placed[0]  # a placed session is never refused
    registry.release("s1")
    assert registry.place("s3", 1.0) == placed[1]  # room again where s1 left


def test_a_silent_instance_gets_no_new_session() -> None:
    clock = Clock()
    registry = MemoryRegistry(ttl_s=3.0, clock=clock)
    registry.heartbeat("a", 100)
    registry.heartbeat("b", 100)
    clock.now += 2.0
    registry.heartbeat("b", 100)
    clock.now += 2.0  # a has been silent 4 s
    assert {registry.place(f"s{n}", 1.0) for n in range(20)} == {"b"}
    assert [(s.name, s.live) for s in registry.instances()] == [("a", False), ("b", True)]


def test_a_silent_instance_on_redis_gets_no_new_session(redis_client: redis.Redis) -> None:
    registry = RedisRegistry(redis_client, ttl_s=0.3)
    registry.heartbeat("a", 100)
    time.sleep(0.4)  # a's heartbeat ages past the ttl: the clock is Redis's, not ours
    registry.heartbeat("b", 100)
    assert {registry.place(f"s{n}", 1.0) for n in range(20)} == {"b"}


def test_a_heartbeat_the_registry_refuses_is_logged_and_retried(
        caplog: pytest.LogCaptureFixture) -> None:
    class Refusing(MemoryRegistry):
        def heartbeat(self, instance: str, capacity: int) -> None:
            raise ConnectionError("registry away")

    beat = Heartbeat(Refusing(), "a", 10, period_s=60)
    with caplog.at_level(logging.WARNING, logger="app.instances.heartbeat"):
        assert beat.beat() is False
    assert "heartbeat not recorded" in caplog.text
    registry = MemoryRegistry()
    assert Heartbeat(registry, "a", 10, period_s=60).beat() is True
    assert [s.capacity for s in registry.instances()] == [10]


Op = tuple[str, str, float]
OPS = st.lists(st.tuples(st.sampled_from(["place"] * 6 + ["release", "drain", "join",
                                                          "rebalance"]),
                         st.sampled_from([f"s{n}" for n in range(40)]),
                         st.floats(min_value=0.1, max_value=30.0)), max_size=80)


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(instances=st.lists(st.sampled_from("abcdefg"), min_size=1, max_size=7, unique=True),
       capacity=st.integers(min_value=1, max_value=12), ops=OPS)
def test_the_redis_script_chooses_as_the_registry_in_process(
        redis_client: redis.Redis, instances: list[str], capacity: int, ops: list[Op]) -> None:
    redis_client.flushdb()
    memory, shared = MemoryRegistry(), RedisRegistry(redis_client)
    for name in instances:
        memory.join(name, capacity)
        shared.join(name, capacity)
    for op, session, weight in ops:
        instance = instances[int(weight) % len(instances)]
        if op == "release":
            memory.release(session)
            shared.release(session)
        elif op == "drain":
            assert memory.drain(instance) == shared.drain(instance)
        elif op == "join":
            memory.join(instance, capacity)
            shared.join(instance, capacity)
        elif op == "rebalance":
            assert memory.rebalance() == shared.rebalance()
        else:
            assert _outcome(memory, session, weight) == _outcome(shared, session, weight)
    assert [(s.name, s.sessions, s.load, s.draining) for s in memory.instances()] == \
        [(s.name, s.sessions, s.load, s.draining) for s in shared.instances()]
    assert memory.epoch() == shared.epoch()
    assert memory.moved() == shared.moved()
    assert sum(s.sessions for s in memory.instances()) <= capacity * len(instances)


def _outcome(registry: Registry, session: str, weight: float) -> str | None:
    try:
        return registry.place(session, weight)
    except ServerFull:
        return "full"


def test_a_drain_moves_every_session_off_and_the_instance_gets_no_new_one(
        registry: Registry) -> None:
    for name in ("a", "b", "c"):
        registry.join(name, 100)
    before = {f"s{n}": registry.place(f"s{n}", 1.0 + n % 3) for n in range(30)}
    on_a = sorted(s for s, i in before.items() if i == "a")
    assert on_a and registry.epoch() == 0
    moves = registry.drain("a")
    assert sorted(m.session for m in moves) == on_a
    assert all(m.source == "a" and m.target in {"b", "c"} for m in moves)
    assert registry.epoch() == len(moves)  # game servers learn their sessions moved
    after = dict(zip(before, registry.owners(list(before)), strict=True))
    assert "a" not in after.values()
    assert {s: i for s, i in after.items() if s not in on_a} == {
        s: i for s, i in before.items() if s not in on_a}  # nothing else moved
    assert registry.place("new", 1.0) in {"b", "c"}
    states = {s.name: s for s in registry.instances()}
    assert states["a"].draining and (states["a"].sessions, states["a"].load) == (0, 0.0)
    registry.join("a", 100)  # back after its maintenance: it takes sessions again
    assert not {s.name: s for s in registry.instances()}["a"].draining
    assert "a" in {registry.place(f"t{n}", 1.0) for n in range(30)}


def test_a_session_no_other_instance_can_take_stays_where_it_is(registry: Registry) -> None:
    registry.join("a", 10)
    registry.join("b", 1)
    placed = {f"s{n}": registry.place(f"s{n}", 1.0) for n in range(4)}
    moves = registry.drain("a")
    assert len(moves) == 1 - list(placed.values()).count("b")  # b had room for one
    assert sum(1 for i in registry.owners(list(placed)) if i == "a") == 4 - 1


def test_a_fenced_instance_is_silent_and_refused_until_it_joins_again(
        registry: Registry) -> None:
    first = registry.join("a", 10)
    registry.join("b", 10)
    assert registry.heartbeat("a", 10, first)
    registry.leave("a")  # silent
    registry.fence("a")  # taken over
    assert not registry.heartbeat("a", 10, first)  # back: its old token is refused
    assert {s.name: s.live for s in registry.instances()} == {"a": False, "b": True}
    assert {registry.place(f"s{n}", 1.0) for n in range(10)} == {"b"}
    registry.refused("a", 2)
    assert {s.name: s.refused for s in registry.instances()}["a"] == 2
    second = registry.join("a", 10)  # started again
    assert second > first and registry.heartbeat("a", 10, second)
    assert {s.name: s.live for s in registry.instances()}["a"]


def test_a_stopped_instance_is_silent_and_a_forgotten_one_gone(registry: Registry) -> None:
    registry.join("a", 10)
    registry.join("b", 10)
    registry.place("s", 1.0)
    registry.leave("a")
    registry.leave("b")
    assert [(s.name, s.live) for s in registry.instances()] == [("a", False), ("b", False)]
    registry.forget("b")
    assert [s.name for s in registry.instances()] == ["a"]


def test_an_instance_back_after_a_takeover_gets_its_share_back_and_no_more(
        registry: Registry) -> None:
    for name in ("a", "b", "c", "d"):
        registry.join(name, 1000)
    before = {f"s{n}": registry.place(f"s{n}", 1.0 + n % 4) for n in range(400)}
    assert registry.rebalance() == []  # within epsilon of the mean: nothing to do
    drained = registry.drain("a")  # a went silent and was taken over
    registry.join("a", 1000)  # back
    moves = registry.rebalance()
    assert moves and all(m.target == "a" and m.source != "a" for m in moves)
    assert all(score(m.session, "a") > score(m.session, str(m.source)) for m in moves)
    assert len(moves) <= len(drained) * 1.1  # about what left it, not more
    loads = [s.load for s in registry.instances()]
    assert max(loads) <= 1.1 * sum(loads) / len(loads)
    assert registry.moved() == {"drain": len(drained), "rebalance": len(moves)}
    after = dict(zip(before, registry.owners(list(before)), strict=True))
    assert all(after[s] == i for s, i in before.items() if i != "a" and after[s] != "a")


def test_weights_are_kept_in_thousandths() -> None:
    assert milli(2.5) == 2500
    assert milli(0.0) == 1  # every session weighs something


def test_the_generation_is_set_by_the_first_join_and_kept_by_later_ones(
        registry: Registry) -> None:
    assert registry.generation() == ""
    registry.join("a", 10)
    first = registry.generation()
    registry.join("b", 10)
    registry.join("a", 10)  # a restart of one instance is not a new registry
    assert first and registry.generation() == first


def test_a_registry_whose_redis_restarted_empty_has_a_new_generation(
        redis_client: redis.Redis) -> None:
    registry = RedisRegistry(redis_client)
    registry.join("a", 10)
    before = registry.generation()
    redis_client.flushdb()  # what a restart without persistence leaves
    assert registry.generation() == ""
    registry.join("a", 10)
    assert registry.generation() not in ("", before)


def test_a_moved_session_remembers_where_it_came_from_until_its_state_arrives(
        registry: Registry) -> None:
    registry.join("a", 10)
    placed = {f"s{n}": registry.place(f"s{n}", 1.0) for n in range(8)}
    assert registry.came_from(list(placed)) == [None] * 8  # placed, never moved
    on_a = sorted(s for s, i in placed.items() if i == "a")
    registry.join("b", 10)
    moves = registry.drain("a")
    assert sorted(m.session for m in moves) == on_a
    assert registry.came_from(on_a) == ["a"] * len(on_a)
    registry.arrived(on_a[:1], "elsewhere")  # not where it came from: kept
    registry.arrived(on_a[:1], "a")
    assert registry.came_from(on_a) == [None] + ["a"] * (len(on_a) - 1)
    registry.release(on_a[-1])
    assert registry.came_from(on_a[-1:]) == [None]
    registry.join("a", 10)  # back: the rebalance records the moves it makes too
    pulled = registry.rebalance()
    assert pulled and registry.came_from([m.session for m in pulled]) == ["b"] * len(pulled)


def test_an_instance_records_its_hot_store_and_that_stores_name(
        registry: Registry, redis_url: str) -> None:
    registry.join("a", 10, redis_url, "east-hot")  # its token is copied there
    registry.join("b", 10)  # it keeps its state on the broker's Redis, under its URL's name
    assert registry.hot_urls() == {"a": redis_url}
    assert registry.hot_names() == {"a": "east-hot"}
