"""The capacity search: the largest player count whose run holds the latency target."""

from __future__ import annotations

from typing import Any

from app.simulate.capacity import TARGET_P99_MS, passes, search


def machine(limit: int, *, keeps_up: bool = True) -> Any:
    """A run whose player p99 crosses the target above `limit` players."""
    def run(players: int) -> dict[str, Any]:
        p99 = TARGET_P99_MS * players / (limit + 0.5)
        return {"players": players, "player": {"p99_ms": p99},
                "simulator": {"kept_up": keeps_up}}
    return run


def test_the_search_finds_the_largest_count_within_the_tolerance() -> None:
    found = search(machine(3210), low=100, high=10_000)
    assert found.sessions is not None
    assert 3210 * 0.95 <= found.sessions <= 3210
    assert all(p.passed == (p.players <= 3210) for p in found.probes)
    assert len(found.probes) <= 12


def test_a_run_that_did_not_keep_up_never_passes_whatever_its_latency() -> None:
    found = search(machine(10**6, keeps_up=False), low=100, high=10_000)
    assert found.sessions is None and len(found.probes) == 1
    assert not passes({"players": 5, "player": {"p99_ms": None},
                       "simulator": {"kept_up": True}}).passed  # no p99: no pass


def test_a_system_that_holds_the_highest_count_stops_there() -> None:
    found = search(machine(10**6), low=100, high=10_000)
    assert found.sessions == 10_000 and [p.players for p in found.probes] == [100, 10_000]
    section = found.as_report()
    assert section["sessions"] == 10_000 and section["target_p99_ms"] == TARGET_P99_MS
