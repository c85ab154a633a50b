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


def test_a_search_held_to_a_number_of_probes_reports_how_far_it_got() -> None:
    found = search(machine(3210), low=100, high=10_000, max_probes=3)
    assert [p.players for p in found.probes] == [100, 10_000, 5050]
    assert found.sessions == 100 and found.as_report()["bracket"] == [100, 5050]
    settled = search(machine(3210), low=100, high=10_000)
    assert settled.sessions is not None and settled.failed is not None
    assert settled.failed - settled.sessions <= max(1, int(settled.sessions * 0.05))
    assert search(machine(10**6), low=100, high=10_000, max_probes=1).as_report()[
        "bracket"] == [100, None]
    assert search(machine(50), low=100, high=10_000).as_report()["bracket"] == [None, 100]
