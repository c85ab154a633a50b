"""The report: percentile math, and a section per subsystem that ran (absent otherwise)."""

from __future__ import annotations

import json
import math
from array import array
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from app.cli.simulate import run_order, summary_table
from app.instances.registry import InstanceState
from app.observe.recorder import Execution
from app.physics.notes import RegionNote
from app.players.sessions import NetworkTotals
from app.settings import load_settings
from app.simulate.ai_report import ai_reduction
from app.simulate.driver import DriveStats, SentAi, SentBatch, SentFrame
from app.simulate.environment import Services
from app.simulate.modes import MODES
from app.simulate.plot import latency_series, write_plot
from app.simulate.report import (
    balance_section,
    build_report,
    latency_summary,
    queue_stats,
    repeat_summary,
    run_sections,
)
from app.simulate.runner import Capacity, PhysicsTotals, RunResult, RunSpec, first_runs
from app.simulate.sampler import Sample
from app.simulate.scenarios import STEADY
from app.simulate.surge import SurgeSummary

T0 = 1024.0  # small, so float timestamps keep sub-microsecond precision


def execution(task: str, latency_ms: float, at: float = 1.0, *, queue: str = "x",
              task_id: str | None = None, wait_ms: float = 0.0,
              client_ms: float = 0.0) -> Execution:
    handoff = T0 + at
    return Execution(task_id=task_id or f"{task}-{at}-{latency_ms}", task=task, queue=queue,
                     hostname="w@h", handoff=handoff, started=handoff + wait_ms / 1000.0,
                     done=handoff + latency_ms / 1000.0, ok=True,
                     sent=handoff + client_ms / 1000.0)


def sample(at: float, fleet: float) -> Sample:
    return Sample(at=at, fleet_cpu=fleet, simulator_cpu=0.2, services_cpu=0.05,
                  fleet_rss_mb=300.0 + at, role_cpu_s={"player": 0.3, "ai": 0.1},
                  depths={"player": 0, "background": int(at)})


def drive(**counts: Any) -> DriveStats:
    stats = DriveStats(started=T0, ended=T0 + 10.0, ticks_planned=2000, ticks_emitted=2000,
                       lag_s=[0.001, 0.002])
    for name, value in counts.items():
        setattr(stats, name, value)
    return stats


def sent(batch: Execution, updates: int, acted_ms_before: float = 0.0) -> SentBatch:
    """The client's note of `batch`: `updates` updates whose players acted
    `acted_ms_before` its hand-off."""
    return SentBatch(batch.task_id, batch.sent,
                     array("d", [batch.handoff - acted_ms_before / 1000.0] * updates))


def run(executions: list[Execution], stats: DriveStats, mode: str = "gamesched",
        network: NetworkTotals | None = None,
        transactions: SurgeSummary | None = None) -> RunResult:
    return RunResult(
        mode=mode, drive=stats, samples=[sample(float(i), 0.1 * i) for i in range(1, 11)],
        executions=executions, network=network or NetworkTotals(0, 0, 0, 0),
        capacity=Capacity(concurrency=1, run_ms=50.0, tasks=8), background_rate=30.0,
        sessions=100, sessions_total=100, drained=True, roles=("player",),
        transactions=transactions)


def test_latency_summary_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert latency_summary(values) == {"p50_ms": 50.0, "p95_ms": 95.0, "p99_ms": 99.0,
                                       "max_ms": 100.0}
    assert latency_summary([7.0]) == {"p50_ms": 7.0, "p95_ms": 7.0, "p99_ms": 7.0,
                                      "max_ms": 7.0}
    assert latency_summary([]) == {}


def test_queue_stats_group_by_the_task_queue_even_on_one_shared_queue() -> None:
    shared = [execution("gamesched.player.apply_updates", 10.0, queue="celery", wait_ms=4.0,
                        client_ms=1.5),
              execution("gamesched.physics.step_region", 3.0, queue="celery"),
              execution("custom.task", 1.0, queue="celery")]
    stats = queue_stats(shared)
    assert set(stats) == {"player", "physics", "celery"}
    assert stats["player"]["tasks"] == 1
    assert stats["player"]["wait_p99_ms"] == pytest.approx(4.0)
    assert stats["player"]["run_p99_ms"] == pytest.approx(6.0)
    assert stats["player"]["client_p99_ms"] == pytest.approx(1.5)


def test_only_subsystems_that_ran_have_a_section() -> None:
    batches = [execution("gamesched.player.apply_updates", float(v), at=v / 10)
               for v in range(1, 101)]
    batches[1:4] = [replace(b, gathered=True) for b in batches[1:4]]  # in the first's task
    notes = [sent(b, 50, acted_ms_before=3.0) for b in batches]
    sections = run_sections(run(batches, drive(updates=5000, tasks_sent=100, batches=notes)))
    assert sections["player"]["updates"] == 5000
    assert sections["player"]["timed"] == 5000 and sections["player"]["unapplied"] == 0
    # from the moment the players acted (3 ms before the hand-off), every update counted
    assert sections["player"]["p99_ms"] == pytest.approx(102.0, rel=0.002)
    assert sections["player"]["service_p99_ms"] == 99.0  # hand-off to applied, per batch
    assert sections["player_batches"]["applied"] == 100
    assert sections["player_batches"]["gathered"] == 3
    assert sections["player_batches"]["updates_per_batch"] == 50.0
    # what the workers counted, not what was sent
    assert (sections["player"]["applied"], sections["player"]["stale"],
            sections["player"]["rejected"]) == (0, 0, 0)
    for absent in ("physics", "ai", "background", "transactions", "network", "faults"):
        assert absent not in sections, absent
    assert sections["fleet"]["cpu_p95"] == pytest.approx(1.0)
    assert sections["fleet"]["peak_rss_mb"] == pytest.approx(310.0)
    assert sections["simulator"]["kept_up"] is True


def test_physics_budget_ai_background_network_and_transactions_when_they_ran() -> None:
    frames = [execution("gamesched.physics.step_frame", v) for v in (5.0, 10.0, 15.5, 40.0)]
    planned = [SentFrame((f.task_id,), f.handoff) for f in frames]  # handed over at their start
    decisions = [execution("gamesched.ai.decide_batch", 2.0)]
    jobs = [execution("gamesched.background.snapshot", 900.0, at=0.5)]
    ledger = SurgeSummary(submitted=10, sends=11, committed=10, rejected=0, lost=0,
                          applied_twice=0, success_ratio=1.0, p99_commit_ms=42.0)
    sections = run_sections(run(
        frames + decisions + jobs, drive(updates=10, physics=4, ai=1, ai_decisions=7, background=3,
                                         purchases=10, purchase_sends=11, frames=planned,
                                         frames_due=5),
        network=NetworkTotals(updates=10, delta_bytes=400, full_updates=10, full_bytes=2000,
                              full_msgpack_bytes=1000),
        transactions=ledger))
    # five frames were due: one never went out, one ran past 16 ms
    assert sections["physics"]["frames"] == 5 and sections["physics"]["frames_run"] == 4
    assert sections["physics"]["within_budget_ratio"] == 0.6
    assert sections["physics"]["frame_p99_ms"] == pytest.approx(40.0, rel=0.002)
    assert sections["ai"]["batches"] == 1 and sections["ai"]["decisions_sent"] == 7
    assert sections["ai"]["cpu_s_per_s"] == pytest.approx(0.1)
    assert sections["background"]["capacity_per_s"] == pytest.approx(20.0)
    assert sections["background"]["offered_per_s"] == pytest.approx(0.3)
    assert sections["background"]["backlog_max"] == 10
    assert sections["network"] == {"updates_applied": 10, "bytes_per_update": 40.0,
                                   "bytes_per_update_full_state": 100.0,
                                   "bytes_per_update_full_state_json": 200.0, "ratio": 0.4}
    assert sections["transactions"]["committed"] == 10
    assert sections["transactions"]["p99_commit_ms"] is None  # no committed purchase timed


def test_each_npcs_longest_wait_between_decisions_done_sets_the_slowest_rate() -> None:
    # Run from T0 to T0 + 10 s; batches done at 1.5, 2.0, 4.5 and 9.0 s (latency 0).
    done = {at: execution("gamesched.ai.decide_batch", 0.0, at=at) for at in (1.5, 2.0, 4.5, 9.0)}
    failed = replace(execution("gamesched.ai.decide_batch", 0.0, at=5.0), ok=False)
    sent = [SentAi(done[1.5].task_id, ("a", "b")), SentAi(done[2.0].task_id, ("a",)),
            SentAi(done[4.5].task_id, ("a", "b")), SentAi(done[9.0].task_id, ("a", "b")),
            SentAi(failed.task_id, ("b",)),  # failed: not a decision
            SentAi("never-ran", ("a",))]
    stats = drive(ai=6, ai_decisions=9, ai_full=5, ai_reduced=3, ai_minimal=1, npcs=2,
                  ai_sent=sent)
    section = run_sections(run([*done.values(), failed], stats))["ai"]
    assert section["npcs"] == 2 and section["max_wait_s"] == pytest.approx(4.5)  # 4.5 to 9.0
    assert section["min_npc_hz"] == pytest.approx(1 / 4.5, abs=1e-3)
    assert section["decisions_by_tier"] == {"full": 5, "reduced": 3, "minimal": 1}
    lonely = drive(ai=1, ai_decisions=1, npcs=3, ai_sent=[SentAi(done[1.5].task_id, ("a",))])
    section = run_sections(run([done[1.5]], lonely))["ai"]
    assert section["max_wait_s"] == pytest.approx(10.0)  # two NPCs never decided


def test_the_baseline_nests_under_baseline_with_the_same_keys(tmp_path: Path) -> None:
    mine, slow = (execution("gamesched.player.apply_updates", 4.0),
                  execution("gamesched.player.apply_updates", 400.0))
    ours = run([mine], drive(updates=10, batches=[sent(mine, 10)]))
    theirs = run([slow], drive(updates=10, batches=[sent(slow, 10)]), mode="naive")
    services = Services("redis://127.0.0.1:1/0", "sqlite:///x.db", None)
    spec = RunSpec(STEADY, players=100, duration_s=10.0, seed=1)
    report = build_report(spec, services, ours, theirs)
    assert report["mode"] == "gamesched" and report["baseline"]["mode"] == "naive"
    assert report["comparison"] == {"player_p99_ratio": 100.0}
    assert report["baseline"]["player"]["p99_ms"] == pytest.approx(400.0, rel=0.002)
    assert "ai" not in report["baseline"]  # the naive ai worker runs everything: no AI CPU
    assert report["machine"]["cores"] >= 1
    json.dumps(report, allow_nan=False)  # valid JSON: no NaN anywhere
    assert summary_table(report).row_count > 0
    png = tmp_path / "plot.png"
    write_plot(png, [("gamesched", ours), ("naive Celery", theirs)])
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_task_that_ran_twice_counts_once_at_its_first_finish() -> None:
    first = execution("gamesched.player.apply_updates", 5.0, task_id="same")
    again = execution("gamesched.player.apply_updates", 90.0, task_id="same")
    other = execution("gamesched.player.apply_updates", 7.0, task_id="other")
    assert first_runs([again, other, first]) == [first, other]


def test_latency_series_bins_per_second_by_finish_time() -> None:
    batches = [execution("gamesched.player.apply_updates", 10.0, at=0.2),
               execution("gamesched.player.apply_updates", 30.0, at=0.4),
               execution("gamesched.player.apply_updates", 50.0, at=1.5)]
    series = latency_series(run(batches, drive(updates=3)))
    flat = [v for point in series["player"] for v in point]
    assert flat == pytest.approx([0.5, 10.0, 30.0, 1.5, 50.0, 50.0])
    assert not any(math.isnan(v) for point in series["player"] for v in point)


def test_an_empty_sample_is_null_with_a_reason_not_absent() -> None:
    never_ran = execution("gamesched.player.apply_updates", 1.0)
    sections = run_sections(run([], drive(updates=10, physics=2, frames_due=2,
                                          batches=[sent(never_ran, 10)]),
                                network=NetworkTotals(updates=10, delta_bytes=300,
                                                      full_updates=0, full_bytes=0)))
    player = sections["player"]
    assert player["unapplied"] == 10  # timed with their age at the end of the drain
    assert player["service_p99_ms"] is None and player["why"]["service_p99_ms"]
    assert sections["player_batches"]["p99_ms"] is None
    physics = sections["physics"]
    assert physics["within_budget_ratio"] == 0.0  # frames due that never ran are over budget
    assert physics["frame_p99_ms"] is None and "frame_p99_ms" in physics["why"]
    network = sections["network"]
    assert network["bytes_per_update_full_state"] is None and network["ratio"] is None
    assert set(network["why"]) == {"bytes_per_update_full_state",
                                   "bytes_per_update_full_state_json", "ratio"}


def test_a_run_without_a_cpu_sample_in_its_window_reports_an_error() -> None:
    late = run([], drive(updates=0))
    late.samples = [sample(60.0, 0.5)]  # taken after the load window ended
    sections = run_sections(late)
    assert sections["fleet"]["cpu_p95"] is None and sections["fleet"]["why"]["cpu_p95"]
    assert sections["server"]["cpu_p95"] is None
    services = Services("redis://127.0.0.1:1/0", "sqlite:///x.db", None)
    report = build_report(RunSpec(STEADY, players=1, duration_s=10.0, seed=1), services,
                          late, None)
    assert any("no CPU sample" in error for error in report["errors"])


def test_a_run_that_dropped_a_tick_or_lagged_did_not_keep_up() -> None:
    assert drive().kept_up
    assert not drive(ticks_emitted=1999).kept_up
    assert not drive(lag_s=[0.001] * 98 + [0.05, 0.05]).kept_up  # lag p99 50 ms
    assert run_sections(run([], drive(ticks_emitted=1990)))["simulator"]["ticks_dropped"] == 10


def test_the_server_cpu_adds_redis_and_postgres_to_the_workers() -> None:
    busy = run([], drive(updates=0))
    busy.samples = [Sample(at=float(i), fleet_cpu=0.3, simulator_cpu=0.2, services_cpu=0.15,
                           fleet_rss_mb=100.0, role_cpu_s={}, depths={},
                           service_cpu={"broker_redis": 0.05, "hot_redis": 0.1})
                    for i in range(1, 6)]
    server = run_sections(busy)["server"]
    assert server["cpu_p95"] == pytest.approx(0.45)
    assert server["cpu_mean_by_kind"] == {"workers": 0.3, "broker_redis": 0.05,
                                          "hot_redis": 0.1}


def test_cpu_per_update_is_the_cpu_of_load_and_drain_over_the_updates_applied() -> None:
    spent = {"workers": 0.4, "hot_redis": 0.1, "postgres": 0.05, "game_servers": 0.3,
             "simulator": 0.02}
    played = run([], drive(updates=2000), network=NetworkTotals(2000, 0, 0, 0))
    played.samples = [replace(s, cpu_s=spent) for s in played.samples]  # ten samples
    sections = run_sections(played)
    assert sections["server"]["cpu_us_per_update"] == pytest.approx(2750.0)  # 5.5 s / 2000
    assert sections["server"]["cpu_us_per_update_by_kind"] == {
        "hot_redis": 500.0, "postgres": 250.0, "workers": 2000.0}
    assert sections["client"]["cpu_us_per_update_by_kind"] == {
        "game_servers": 1500.0, "simulator": 100.0}
    assert sections["client"]["cpu_us_per_update"] == pytest.approx(1600.0)
    idle = run_sections(run([], drive(updates=10)))  # nothing applied: null, with a reason
    assert idle["server"]["cpu_us_per_update"] is None and idle["server"]["why"]


def test_a_retried_task_counts_at_its_first_successful_run() -> None:
    failed = replace(execution("gamesched.transactions.apply_batch", 5.0, task_id="t"),
                     ok=False)
    retried = execution("gamesched.transactions.apply_batch", 50.0, task_id="t")
    assert first_runs([failed, retried]) == [retried]


def test_purchases_are_timed_from_when_they_were_bought_to_after_their_commit() -> None:
    settled = replace(execution("gamesched.transactions.apply_batch", 500.0, at=0.5),
                      items=(1,))  # done at T0 + 1.0
    ledger = SurgeSummary(submitted=2, sends=2, committed=2, rejected=0, lost=0,
                          applied_twice=0, success_ratio=1.0, p99_commit_ms=None,
                          balance_drift=0,
                          committed_clock={1: (T0, T0 + 0.9), 2: (T0, T0 + 0.2)})
    section = run_sections(run([settled], drive(purchases=2), transactions=ledger))[
        "transactions"]
    # 1: bought at T0, its committing run ended at T0 + 1.0 (its SQL stamp, 0.9, came
    # before the COMMIT); 2: no record of the run that committed it, so its SQL stamp
    assert section["max_commit_ms"] == pytest.approx(1000.0)
    assert section["p50_commit_ms"] == pytest.approx(200.0, rel=0.002)
    assert section["commit_timed_from_sql"] == 1
    assert (section["balance_drift"], section["applied_twice"]) == (0, 0)


def test_repeated_runs_report_the_median_and_range_of_each_headline_figure() -> None:
    reports = [{"player": {"p99_ms": v}, "simulator": {"kept_up": v < 30},
                "physics": {"within_budget_ratio": None}} for v in (20.0, 40.0, 25.0)]
    summary = repeat_summary(reports)
    assert summary["runs"] == 3 and summary["kept_up"] == 2
    assert summary["player.p99_ms"] == {"median": 25.0, "min": 20.0, "max": 40.0, "runs": 3}
    assert "physics.within_budget_ratio" not in summary  # no run had the figure


def test_the_run_order_alternates_with_the_seed() -> None:
    assert run_order(2, "naive") == ["gamesched", "naive"]
    assert run_order(3, "unscheduled") == ["unscheduled", "gamesched"]
    assert run_order(3, None) == ["gamesched"]


def test_a_frame_sent_as_one_task_per_region_ran_when_its_last_region_did() -> None:
    regions = [execution("gamesched.physics.step_region", v) for v in (4.0, 12.0, 30.0)]
    whole = SentFrame(tuple(e.task_id for e in regions[:2]), regions[0].handoff)  # 4 and 12
    late = SentFrame((regions[2].task_id,), regions[2].handoff)
    lost = SentFrame(("never-ran", regions[1].task_id), regions[1].handoff)  # one region ran
    sections = run_sections(run(regions, drive(updates=10, physics=3, frames_due=3,
                                               frames=[whole, late, lost])))
    physics = sections["physics"]
    assert physics["frames_run"] == 2 and physics["frames_within_budget"] == 1
    assert physics["frame_max_ms"] == pytest.approx(30.0, rel=0.002)


def test_a_frame_whose_unit_left_a_region_unstepped_did_not_run() -> None:
    """A unit task recorded not done (a region still in transit) is a frame partly run."""
    units = [execution("gamesched.physics.step_frame", v) for v in (4.0, 6.0)]
    units[1] = replace(units[1], ok=False)
    frame = SentFrame(tuple(e.task_id for e in units), units[0].handoff)
    physics = run_sections(run(units, drive(updates=10, physics=1, frames_due=1,
                                            frames=[frame])))["physics"]
    assert (physics["frames_run"], physics["frames_within_budget"]) == (0, 0)
    assert physics["within_budget_ratio"] == 0.0


def test_the_units_load_is_each_units_cpu_and_the_costliest_over_the_mean() -> None:
    frame = execution("gamesched.physics.step_frame", 5.0)
    result = run([frame], drive(updates=10, physics=1, frames_due=1,
                                frames=[SentFrame((frame.task_id,), frame.handoff)]))
    result.samples = [replace(s, role_cpu_s={"physics-u0": 0.3, "physics-u1": 0.1,
                                             "player": 0.5}) for s in result.samples]
    result.physics = PhysicsTotals(
        {"w0": RegionNote(0, 9, 20, 9, 1.5), "w1": RegionNote(1, 9, 20, 9, 0.5),
         "w3": RegionNote(1, 9, 20, 9, 0.5)},
        {"moves": 2, "rebalances": 1, "anomalies.too_fast": 3, "skipped": 1, "slowed": 4})
    physics = run_sections(result)["physics"]
    assert (physics["units"], physics["units_in_use"]) == (2, 2)
    assert physics["unit_cpu_s_per_s"] == {"0": 0.3, "1": 0.1}
    assert physics["unit_max_over_mean"] == 1.5  # 0.3 over a mean of 0.2
    assert physics["regions"] == 3 and physics["regions_by_unit"] == {"0": 1, "1": 2}
    assert (physics["moves"], physics["rebalances"], physics["regions_skipped"]) == (2, 1, 1)
    assert physics["anomalies"] == {"too_fast": 3} and physics["regions_handed_over"] == 0
    assert physics["regions_slowed"] == 4


def test_a_unit_the_director_left_idle_is_not_in_the_balance() -> None:
    frame = execution("gamesched.physics.step_frame", 5.0)
    result = run([frame], drive(updates=10, physics=1, frames_due=1,
                                frames=[SentFrame((frame.task_id,), frame.handoff)]))
    result.samples = [replace(s, role_cpu_s={"physics-u0": 0.3, "physics-u1": 0.002})
                      for s in result.samples]
    result.physics = PhysicsTotals({"w0": RegionNote(0, 9, 20, 9, 1.5),
                                    "w1": RegionNote(0, 9, 20, 9, 0.5)}, {})
    section = run_sections(result)["physics"]
    assert (section["units"], section["units_in_use"], section["unit_max_over_mean"]) == (
        2, 1, 1.0)


def test_ai_reduction_is_the_share_of_the_unthrottled_ai_cpu_that_was_saved() -> None:
    assert ai_reduction({"cpu_s_per_s": 0.03}, {"cpu_s_per_s": 0.1}) == {
        "cpu_s_per_s_unthrottled": 0.1, "reduction": 0.7}
    missing = ai_reduction({"cpu_s_per_s": 0.03}, {})
    assert missing["reduction"] is None and "missing" in missing["why"]["reduction"]
    stats = drive(ai=1, ai_decisions=1, npcs=1,
                  ai_sent=[SentAi("t", ("a",))])
    ours = run([execution("gamesched.ai.decide_batch", 1.0, task_id="t")], stats)
    theirs = run([execution("gamesched.ai.decide_batch", 1.0, task_id="t")], stats,
                 mode="unthrottled")
    services = Services("redis://127.0.0.1:1/0", "sqlite:///x.db", None)
    report = build_report(RunSpec(STEADY, 10, 10.0, 1), services, ours, theirs)
    assert report["ai"]["cpu_s_per_s_unthrottled"] == pytest.approx(0.1)
    assert report["ai"]["reduction"] == 0.0  # both samples' AI spent the same
    assert MODES["unthrottled"].settings(load_settings()).ai_throttle is False
    assert MODES["gamesched"].settings(load_settings()).ai_throttle is True


def test_the_controller_section_shows_the_ladders_rungs_in_the_order_they_engaged() -> None:
    calm = {"shed_background": False, "background_level": 1.0, "ai_tier": "full",
            "physics_detail": 1.0}
    steps = {4: {"shed_background": True, "background_level": 0.5},
             6: {"shed_background": True, "background_level": 0.25, "ai_tier": "reduced"},
             8: {"shed_background": True, "background_level": 0.125, "ai_tier": "minimal",
                 "physics_detail": 0.5}}
    result = run([], drive())
    result.samples = [replace(s, control=calm | steps.get(int(s.at), {}))
                      for s in result.samples]
    section = run_sections(result)["controller"]
    assert section["order"] == [["background"], ["ai"], ["physics_detail"]]
    assert section["background"] == {"engaged_share": 0.3, "first_s": 4.0, "lowest_level": 0.125}
    assert section["ai"] == {"engaged_share": 0.2, "first_s": 6.0, "lowest_tier": "minimal"}
    assert section["physics_detail"] == {"engaged_share": 0.1, "first_s": 8.0, "lowest": 0.5}
    assert "controller" not in run_sections(run([], drive()))  # no decision: no section
    result.samples = [replace(s, control=steps[8]) for s in result.samples]  # all at once
    assert run_sections(result)["controller"]["order"] == [["background", "ai",
                                                            "physics_detail"]]


def test_balance_weighs_the_live_instances_against_their_mean() -> None:
    states = [InstanceState("i0", 5000, 30, 90.0, 0.2, True,
                            hot_url="redis://:secret@127.0.0.1:7001"),
              InstanceState("i1", 5000, 20, 60.0, 0.4, True),
              InstanceState("i2", 5000, 70, 400.0, 9.0, False)]  # silent: left out
    section = balance_section(states, {"drain": 70, "rebalance": 20}, sessions=200)
    assert section == {"instances": 2, "max_over_mean": 1.2,
                       "sessions": {"i0": 30, "i1": 20}, "load": {"i0": 90.0, "i1": 60.0},
                       "moved": {"leave": 70, "join": 20},
                       "moved_ratio": {"leave": 0.35, "join": 0.1}, "refused_writes": 0,
                       # no password in the report; i1 recorded no store of its own
                       "hot_stores": {"i0": "redis://127.0.0.1:7001/0", "i1": None}}
    assert balance_section([]) == {}  # no instance: no section
