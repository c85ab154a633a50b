"""The report: percentile math, and a section per subsystem that ran (absent otherwise)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from app.cli.simulate import summary_table
from app.observe.recorder import Execution
from app.players.sessions import NetworkTotals
from app.simulate.driver import DriveStats
from app.simulate.environment import Services
from app.simulate.plot import latency_series, write_plot
from app.simulate.report import build_report, latency_summary, queue_stats, run_sections
from app.simulate.runner import Capacity, RunResult, RunSpec, first_runs
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


def drive(**counts: int) -> DriveStats:
    stats = DriveStats(started=T0, ended=T0 + 10.0, ticks_planned=2000, ticks_emitted=2000,
                       lag_s=[0.001, 0.002])
    for name, value in counts.items():
        setattr(stats, name, value)
    return stats


def run(executions: list[Execution], stats: DriveStats, naive: bool = False,
        network: NetworkTotals | None = None,
        transactions: SurgeSummary | None = None) -> RunResult:
    return RunResult(
        naive=naive, drive=stats, samples=[sample(float(i), 0.1 * i) for i in range(1, 11)],
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
    sections = run_sections(run(batches, drive(updates=5000, tasks_sent=100)))
    assert sections["player"]["updates"] == 5000
    assert sections["player"]["p99_ms"] == 99.0
    assert sections["player"]["batches_applied"] == 100
    assert sections["player"]["applied"] == 0  # what the workers counted, not what was sent
    for absent in ("physics", "ai", "background", "transactions", "network", "faults"):
        assert absent not in sections, absent
    assert sections["fleet"]["cpu_p95"] == pytest.approx(1.0)
    assert sections["fleet"]["peak_rss_mb"] == pytest.approx(310.0)
    assert sections["simulator"]["kept_up"] is True


def test_physics_budget_ai_background_network_and_transactions_when_they_ran() -> None:
    frames = [execution("gamesched.physics.step_frame", v) for v in (5.0, 10.0, 15.5)]
    frames.append(execution("gamesched.physics.step_region", 40.0))
    decisions = [execution("gamesched.ai.decide_batch", 2.0)]
    jobs = [execution("gamesched.background.snapshot", 900.0, at=0.5)]
    ledger = SurgeSummary(submitted=10, sends=11, committed=10, rejected=0, lost=0,
                          applied_twice=0, success_ratio=1.0, p99_commit_ms=42.0)
    sections = run_sections(run(
        frames + decisions + jobs, drive(updates=10, physics=4, ai=1, ai_decisions=7, background=3,
                                         purchases=10, purchase_sends=11),
        network=NetworkTotals(updates=10, delta_bytes=400, full_updates=10, full_bytes=2000),
        transactions=ledger))
    assert sections["physics"]["frames"] == 4
    assert sections["physics"]["within_budget_ratio"] == 0.75
    assert sections["physics"]["p95_frame_ms"] == 40.0
    assert sections["ai"]["batches"] == 1 and sections["ai"]["decisions_sent"] == 7
    assert sections["ai"]["cpu_s_per_s"] == pytest.approx(0.1)
    assert sections["background"]["capacity_per_s"] == pytest.approx(20.0)
    assert sections["background"]["offered_per_s"] == pytest.approx(0.3)
    assert sections["background"]["backlog_max"] == 10
    assert sections["network"] == {"updates_applied": 10, "bytes_per_update": 40.0,
                                   "bytes_per_update_full_state": 200.0, "ratio": 0.2}
    assert sections["transactions"]["committed"] == 10
    assert sections["transactions"]["p99_commit_ms"] == 42.0


def test_the_baseline_nests_under_baseline_with_the_same_keys(tmp_path: Path) -> None:
    ours = run([execution("gamesched.player.apply_updates", 4.0)], drive(updates=10))
    theirs = run([execution("gamesched.player.apply_updates", 400.0)], drive(updates=10),
                 naive=True)
    services = Services("redis://127.0.0.1:1/0", "sqlite:///x.db", None)
    spec = RunSpec(STEADY, players=100, duration_s=10.0, seed=1)
    report = build_report(spec, services, ours, theirs)
    assert report["mode"] == "gamesched" and report["baseline"]["mode"] == "naive"
    assert report["comparison"] == {"player_p99_ratio": 100.0}
    assert report["baseline"]["player"]["p99_ms"] == 400.0
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
