"""The simulation report: every figure measured during the run, grouped by subsystem.

A subsystem that did not run has no section (absent, not zero).  Latencies run from the
hand-off to the client API to the worker having applied the work.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from app.observe.recorder import Execution
from app.observe.stats import percentile
from app.protocol.names import (
    AI_BATCH_TASK,
    AI_TASK,
    ANALYTICS_TASK,
    APPLY_BATCH_TASK,
    PHYSICS_FRAME_TASK,
    PHYSICS_REGION_TASK,
    SNAPSHOT_TASK,
    UPDATE_TASK,
)
from app.protocol.queues import TASK_QUEUES
from app.simulate.environment import Services, machine
from app.simulate.runner import RunResult, RunSpec
from app.simulate.sampler import Sample

FRAME_BUDGET_MS = 16.0
PHYSICS_TASKS = (PHYSICS_FRAME_TASK, PHYSICS_REGION_TASK)
AI_TASKS = (AI_BATCH_TASK, AI_TASK)
PURCHASE_TASK = APPLY_BATCH_TASK  # what the client sends
BACKGROUND_TASKS = (SNAPSHOT_TASK, ANALYTICS_TASK)

Section = dict[str, Any]


def build_report(spec: RunSpec, services: Services, ours: RunResult,
                 baseline: RunResult | None) -> dict[str, Any]:
    """The JSON report of a simulation (`baseline` nested under ``baseline``)."""
    report: dict[str, Any] = {
        "scenario": spec.scenario.name,
        "players": ours.sessions,
        "duration_s": round(ours.drive.elapsed_s, 3),
        "seed": spec.seed,
        "broker": services.broker_label,
        "hot_state": services.hot_label,
        "database": services.database_label,
        "machine": machine(),
    }
    report |= run_sections(ours)
    if baseline is not None:
        report["baseline"] = {"players": baseline.sessions,
                              "duration_s": round(baseline.drive.elapsed_s, 3),
                              **run_sections(baseline)}
        ratio = _ratio(baseline, ours)
        if ratio is not None:
            report["comparison"] = {"player_p99_ratio": ratio}
    return report


def run_sections(run: RunResult) -> dict[str, Any]:
    """The measured sections of one run."""
    by_task = _by_task(run.executions)
    sections: dict[str, Any] = {"mode": "naive" if run.naive else "gamesched"}
    candidates = {
        "player": _player(run, by_task.get(UPDATE_TASK, [])),
        "physics": _physics(run, _runs_of(by_task, PHYSICS_TASKS)),
        "ai": _ai(run, _runs_of(by_task, AI_TASKS)),
        "background": _background(run, _runs_of(by_task, BACKGROUND_TASKS)),
        "transactions": _transactions(run, by_task.get(PURCHASE_TASK, [])),
        "fleet": _fleet(run),
        "simulator": _simulator(run),
        "services": _services(run),
        "network": _network(run),
        "queues": queue_stats(run.executions),
        "faults": _faults(run),
    }
    sections |= {name: section for name, section in candidates.items() if section}
    return sections


def latency_summary(latencies: Sequence[float]) -> Section:
    """p50, p95, p99 and max (ms) of `latencies`; empty when there are none."""
    if not latencies:
        return {}
    return {"p50_ms": _ms(percentile(latencies, 50)), "p95_ms": _ms(percentile(latencies, 95)),
            "p99_ms": _ms(percentile(latencies, 99)), "max_ms": _ms(max(latencies))}


def queue_stats(executions: Iterable[Execution]) -> Section:
    """Tasks, failures and latency per logical queue (the queue a task belongs to, also in
    the baseline where every task shares one Celery queue)."""
    grouped: dict[str, list[Execution]] = {}
    for e in executions:
        queue = TASK_QUEUES[e.task].value if e.task in TASK_QUEUES else e.queue
        grouped.setdefault(queue, []).append(e)
    return {queue: {"tasks": len(items), "failed": sum(not e.ok for e in items),
                    **latency_summary([e.latency_ms for e in items]),
                    **_split(items)}
            for queue, items in sorted(grouped.items())}


def _split(items: list[Execution]) -> Section:
    """Where the latency went: in the client (coalescing, sending), waiting for a worker
    (the client's part included), and running."""
    parts = {"client": [e.client_ms for e in items], "wait": [e.wait_ms for e in items],
             "run": [e.latency_ms - e.wait_ms for e in items]}
    return {f"{name}_p{p}_ms": _ms(percentile(values, p))
            for name, values in parts.items() for p in (50, 99)}


def window(run: RunResult) -> list[Sample]:
    """The samples taken while the load ran (all of them if the run was too short)."""
    inside = [s for s in run.samples if s.at <= run.drive.elapsed_s + 0.5]
    return inside or run.samples


# sections -------------------------------------------------------------------------------

def _player(run: RunResult, batches: list[Execution]) -> Section:
    drive = run.drive
    if not drive.updates:
        return {}
    latencies = [e.latency_ms for e in batches]
    section: Section = {
        "updates": drive.updates,
        "offered_per_s": _rate(drive.updates, drive.elapsed_s),
        "applied": run.network.updates,  # the rest were stale (a newer one was applied
        # first) or refused by the worker
        "batches_sent": drive.batches,
        "batches_applied": len(batches),
        "failed_batches": sum(not e.ok for e in batches),
        **{k: v for k, v in latency_summary(latencies).items() if k != "p95_ms"},
    }
    if drive.batches > len(batches):
        section["unapplied_batches"] = drive.batches - len(batches)
    return section


def _physics(run: RunResult, frames: list[Execution]) -> Section:
    if not run.drive.physics:
        return {}
    latencies = [e.latency_ms for e in frames]
    within = sum(1 for v in latencies if v <= FRAME_BUDGET_MS)
    section: Section = {"frames_sent": run.drive.physics, "frames": len(frames),
                        "offered_per_s": _rate(run.drive.physics, run.drive.elapsed_s)}
    if latencies:
        section |= {"within_budget_ratio": round(within / len(latencies), 4),
                    "p95_frame_ms": _ms(percentile(latencies, 95)),
                    "p99_frame_ms": _ms(percentile(latencies, 99))}
    return section


def _ai(run: RunResult, batches: list[Execution]) -> Section:
    if not run.drive.ai:
        return {}
    drive = run.drive
    section: Section = {"decisions_sent": drive.ai_decisions, "batches_sent": drive.ai,
                        "batches": len(batches),
                        "offered_per_s": _rate(drive.ai_decisions, drive.elapsed_s),
                        **latency_summary([e.latency_ms for e in batches])}
    if not run.naive:  # only here does the ai worker run nothing but AI
        cpu = [s.role_cpu_s.get("ai", 0.0) for s in window(run)]
        if cpu:
            section["cpu_s_per_s"] = round(sum(cpu) / len(cpu), 4)
    return section


def _background(run: RunResult, jobs: list[Execution]) -> Section:
    drive = run.drive
    if not drive.background:
        return {}
    in_window = [e for e in jobs if e.done <= drive.ended]
    section: Section = {
        "capacity_per_s": round(run.capacity.per_s, 3),
        "calibration_run_ms": _ms(run.capacity.run_ms),
        "scheduled_per_s": round(run.background_rate, 3),
        "offered_per_s": _rate(drive.background, drive.elapsed_s),
        "completed_per_s": _rate(len(in_window), drive.elapsed_s),
        **latency_summary([e.latency_ms for e in jobs]),
    }
    depths = [s.depths["background"] for s in window(run) if "background" in s.depths]
    if depths:
        section |= {"backlog_end": depths[-1], "backlog_max": max(depths)}
    return section


def _transactions(run: RunResult, applied: list[Execution]) -> Section:
    ledger = run.transactions
    if ledger is None or not run.drive.purchases:
        return {}
    section: Section = {
        "submitted": ledger.submitted, "sends": ledger.sends, "committed": ledger.committed,
        "rejected": ledger.rejected, "applied_twice": ledger.applied_twice,
        "lost": ledger.lost, "success_ratio": round(ledger.success_ratio, 4),
        "tasks_run": len(applied),
    }
    if ledger.p99_commit_ms is not None:
        section["p99_commit_ms"] = _ms(ledger.p99_commit_ms)
    return section


def _fleet(run: RunResult) -> Section:
    samples = window(run)
    if not samples:
        return {}
    cpu = [s.fleet_cpu for s in samples]
    roles = sorted({r for s in samples for r in s.role_cpu_s})
    return {
        "cpu_p95": round(percentile(cpu, 95), 4),
        "cpu_mean": round(sum(cpu) / len(cpu), 4),
        "peak_rss_mb": round(max(s.fleet_rss_mb for s in run.samples), 1),
        "role_cpu_s_per_s": {r: round(sum(s.role_cpu_s.get(r, 0.0) for s in samples)
                                      / len(samples), 4) for r in roles},
    }


def _simulator(run: RunResult) -> Section:
    drive, samples = run.drive, window(run)
    lag = [v * 1000.0 for v in drive.lag_s]
    section: Section = {
        "kept_up": drive.kept_up,
        "ticks_planned": drive.ticks_planned,
        "ticks_emitted": drive.ticks_emitted,
        "updates_per_s": _rate(drive.updates, drive.elapsed_s),
        "tasks_per_s": _rate(drive.tasks_sent, drive.elapsed_s),
        "sessions_joined_in_play": run.sessions_total - run.sessions,
        "rejected": drive.rejected,
        "send_errors": drive.send_errors,
        "drained": run.drained,
        "repeated_runs": run.repeated_runs,
        "phases_s": run.phases_s,
    }
    if samples:
        cpu = [s.simulator_cpu for s in samples]
        section |= {"cpu_p95": round(percentile(cpu, 95), 4),
                    "cpu_mean": round(sum(cpu) / len(cpu), 4)}
    if lag:
        section |= {"lag_p99_ms": _ms(percentile(lag, 99)), "lag_max_ms": _ms(max(lag))}
    if drive.first_error:
        section["first_error"] = drive.first_error
    return section


def _services(run: RunResult) -> Section:
    cpu = [s.services_cpu for s in window(run)]
    if not cpu:
        return {}
    return {"cpu_p95": round(percentile(cpu, 95), 4), "cpu_mean": round(sum(cpu) / len(cpu), 4)}


def _network(run: RunResult) -> Section:
    net = run.network
    if not net.updates:
        return {}
    return {
        "updates_applied": net.updates,
        "bytes_per_update": round(net.bytes_per_update, 2),
        "bytes_per_update_full_state": round(net.full_bytes_per_update, 2),
        "ratio": round(net.bytes_per_update / net.full_bytes_per_update, 4)
        if net.full_bytes_per_update else None,
    }


def _faults(run: RunResult) -> Section:
    if not run.faults:
        return {}
    recovered = [e.recovered_s for e in run.faults if e.recovered_s is not None]
    return {
        "events": [vars(e) for e in run.faults],
        "injected": len(run.faults),
        "recovered": len(recovered),
        "recovery_s_max": max(recovered) if recovered else None,
    }


# helpers --------------------------------------------------------------------------------

def _runs_of(by_task: dict[str, list[Execution]], names: Iterable[str]) -> list[Execution]:
    """The executions of every task in `names`."""
    return [e for name in names for e in by_task.get(name, [])]


def _by_task(executions: Iterable[Execution]) -> dict[str, list[Execution]]:
    grouped: dict[str, list[Execution]] = {}
    for e in executions:
        grouped.setdefault(e.task, []).append(e)
    return grouped


def _ratio(baseline: RunResult, ours: RunResult) -> float | None:
    def p99(run: RunResult) -> float | None:
        lat = [e.latency_ms for e in run.executions if e.task == UPDATE_TASK]
        return percentile(lat, 99) if lat else None

    theirs, mine = p99(baseline), p99(ours)
    if theirs is None or not mine:
        return None
    return round(theirs / mine, 2)


def _rate(count: int, seconds: float) -> float:
    return round(count / seconds, 2) if seconds > 0 else 0.0


def _ms(value: float) -> float:
    return round(value, 3)
