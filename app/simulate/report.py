"""The simulation report: every figure measured during the run, grouped by subsystem.

A subsystem that did not run has no section (absent, not zero).  A figure of a subsystem
that ran but whose sample is empty is None, with the reason under the section's ``why``.
Player latency runs from the moment the player acted, and a frame's from its scheduled
start, to the worker having applied the work, every update counted once
(`app.simulate.latency`); per-queue and per-batch figures run from the hand-off to the
client API.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence
from typing import Any

from app.instances.registry import InstanceState
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
    STATE_TASK,
    UPDATE_TASK,
)
from app.protocol.queues import TASK_QUEUES
from app.settings import store_name
from app.simulate.ai_report import ai_reduction, ai_section
from app.simulate.control_report import controller_section
from app.simulate.environment import Services, machine
from app.simulate.latency import Latencies, outcome
from app.simulate.physics_report import physics_section
from app.simulate.runner import RunResult, RunSpec
from app.simulate.sections import (
    NO_CPU_SAMPLE,
    Section,
    latency_summary,
    ms,
    put,
    rate,
    ratio,
    window,
)

PHYSICS_TASKS = (PHYSICS_FRAME_TASK, PHYSICS_REGION_TASK)
UPDATE_TASKS = (UPDATE_TASK, STATE_TASK)  # a batch of updates, or one (textbook baseline)
AI_TASKS = (AI_BATCH_TASK, AI_TASK)
PURCHASE_TASK = APPLY_BATCH_TASK  # what the client sends
BACKGROUND_TASKS = (SNAPSHOT_TASK, ANALYTICS_TASK)

CLIENT_KINDS = ("game_servers", "simulator")  # the sampler's kinds of the game's side


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
        report["comparison"] = _comparison(report["baseline"], report)
        if baseline.mode == "unthrottled" and "ai" in report:
            report["ai"] |= ai_reduction(report["ai"], report["baseline"].get("ai") or {})
    errors = [f"{label}: {error}" for label, run in (("gamesched", ours), ("baseline", baseline))
              if run is not None for error in _errors(run)]
    if errors:
        report["errors"] = errors
    return report


def run_sections(run: RunResult) -> dict[str, Any]:
    """The measured sections of one run."""
    by_task = _by_task(run.executions)
    sections: dict[str, Any] = {"mode": run.mode}
    done = {e.task_id: e.done for e in run.executions}
    candidates = {
        "player": _player(run, done, _runs_of(by_task, UPDATE_TASKS)),
        "player_batches": _player_batches(run, _runs_of(by_task, UPDATE_TASKS)),
        # a frame task that left a region unstepped (in transit) did not run the frame
        "physics": physics_section(run, {e.task_id: e.done for e in run.executions if e.ok}),
        "ai": ai_section(run, _runs_of(by_task, AI_TASKS)),
        "controller": controller_section(run),
        "background": _background(run, _runs_of(by_task, BACKGROUND_TASKS)),
        "transactions": _transactions(run, by_task.get(PURCHASE_TASK, [])),
        "server": _server(run),
        "client": _client(run),
        "fleet": _fleet(run),
        "simulator": _simulator(run),
        "services": _services(run),
        "network": _network(run),
        "queues": queue_stats(run.executions),
        "faults": _faults(run),
        "balance": balance_section(run.instances, run.moved, run.sessions_total),
        "sessions": run.restart,
    }
    sections |= {name: section for name, section in candidates.items() if section}
    return sections


def balance_section(instances: Sequence[InstanceState], moved: dict[str, int] | None = None,
                    sessions: int = 0) -> Section:
    """How evenly the sessions' load lay over the server instances at the end of the load:
    the most loaded over the mean (1.0: even; the weighted mean is the optimum), and each
    instance's sessions and load (weights: `app.instances.placement.weight`); the sessions
    moved off instances that left (drains, takeovers) and onto one that joined or came back
    (rebalance), each over the run's sessions; the writes refused from fenced ones; and
    the hot store each instance keeps its sessions' state on."""
    live = [state for state in instances if state.live]
    if not live:
        return {}
    mean = sum(state.load for state in live) / len(live)
    moved = moved or {}
    return {
        "instances": len(live),
        "max_over_mean": round(max(state.load for state in live) / mean, 3) if mean else 1.0,
        "sessions": {state.name: state.sessions for state in live},
        "load": {state.name: round(state.load, 2) for state in live},
        "hot_stores": {state.name: store_name(state.hot_url) if state.hot_url else None
                       for state in live},  # where each keeps its sessions' state
        "moved": {"leave": moved.get("drain", 0), "join": moved.get("rebalance", 0)},
        "moved_ratio": {"leave": ratio(moved.get("drain", 0), sessions),
                        "join": ratio(moved.get("rebalance", 0), sessions)},
        "refused_writes": sum(state.refused for state in instances),  # from fenced ones
    }


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
    return {f"{name}_p{p}_ms": ms(percentile(values, p))
            for name, values in parts.items() for p in (50, 99)}


def _errors(run: RunResult) -> list[str]:
    """What makes this run's figures incomplete."""
    errors = []
    if not window(run):
        errors.append(NO_CPU_SAMPLE)
    if run.sampler_errors:
        errors.append(f"the sampler failed to read the broker {run.sampler_errors} time(s)")
    return errors


# sections -------------------------------------------------------------------------------

def _player(run: RunResult, done: dict[str, float], batches: list[Execution]) -> Section:
    drive = run.drive
    if not drive.updates:
        return {}
    timed = outcome(((b.task_id, b.intended) for b in drive.batches), done, run.drain_ended)
    section: Section = {
        "updates": drive.updates,
        "offered_per_s": rate(drive.updates, drive.elapsed_s),
        "applied": run.network.updates,  # counted by the workers, as are the stale ones
        "stale": run.network.stale,  # a newer update of their session had written them
        "rejected": run.network.rejected,  # malformed, or of no known session
        "timed": timed.applied + timed.unapplied,
        "unapplied": timed.unapplied,
    }
    put(section, timed.latencies.summary("no update handed over during the load was timed"))
    service = [e.latency_ms for e in batches]
    put(section, {"service_p99_ms": ms(percentile(service, 99)) if service else None},
         "no state batch ran")
    return section


def _player_batches(run: RunResult, batches: list[Execution]) -> Section:
    """State batches as tasks: how many, how full, and their latency from the hand-off of
    their oldest update (the client's coalescing included) to applied."""
    drive = run.drive
    if not drive.updates:
        return {}
    timed = sum(len(b.intended) for b in drive.batches)
    section: Section = {
        "sent": drive.batches_sent,
        "applied": len(batches),
        "failed": sum(not e.ok for e in batches),
        "unapplied": max(0, drive.batches_sent - len(batches)),
        # applied within another batch's task (`app.tasking.gather`), not as a task
        "gathered": sum(e.gathered for e in batches),
    }
    put(section, {"updates_per_batch": round(timed / len(drive.batches), 2)
                   if drive.batches else None}, "no batch was noted during the load")
    summary = latency_summary([e.latency_ms for e in batches])
    put(section, {k: summary.get(k) for k in ("p50_ms", "p99_ms", "max_ms")},
         "no state batch ran")
    return section


def _background(run: RunResult, jobs: list[Execution]) -> Section:
    drive = run.drive
    if not drive.background:
        return {}
    in_window = [e for e in jobs if e.done <= drive.ended]
    section: Section = {
        "capacity_per_s": round(run.capacity.per_s, 3),
        "calibration_run_ms": ms(run.capacity.run_ms),
        "scheduled_per_s": round(run.background_rate, 3),
        "offered_per_s": rate(drive.background, drive.elapsed_s),
        "completed_per_s": rate(len(in_window), drive.elapsed_s),
    }
    summary = latency_summary([e.latency_ms for e in jobs])
    put(section, {k: summary.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
         "no background task ran")
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
        "rejected": ledger.rejected, "rejected_for_funds": ledger.rejected_for_funds,
        "reject_reasons": ledger.reject_reasons, "lost": ledger.lost,
        "success_ratio": round(ledger.success_ratio, 4), "tasks_run": len(applied),
    }
    put(section, {"balance_drift": ledger.balance_drift,
                   "applied_twice": ledger.applied_twice},
         "the grants before the surge are not known")
    latencies, from_sql = _commit_latencies(run)
    section["commit_timed_from_sql"] = from_sql  # their committing run left no record
    summary = latencies.summary("no purchase committed")
    put(section, {"p50_commit_ms": summary["p50_ms"], "p99_commit_ms": summary["p99_ms"],
                   "max_commit_ms": summary["max_ms"]}, "no purchase committed")
    return section


def _commit_latencies(run: RunResult) -> tuple[Latencies, int]:
    """From the moment each committed purchase was bought to the end of the worker's run
    that committed it (after the COMMIT); and how many are timed to their SQL committed_at
    instead, because the run that committed them left no record (its worker was killed
    right after the COMMIT)."""
    ledger = run.transactions
    done: dict[int, float] = {}
    for e in run.executions:
        for item in e.items:
            done[item] = min(e.done, done.get(item, e.done))
    latencies, from_sql = Latencies(), 0
    for transaction_id, (bought, committed_at) in (ledger.committed_clock if ledger
                                                    else {}).items():
        visible = done.get(transaction_id)
        if visible is None:
            visible, from_sql = committed_at, from_sql + 1
        latencies.record((visible - bought) * 1000.0)
    return latencies, from_sql


def _fleet(run: RunResult) -> Section:
    if not run.samples:
        return {}
    samples = window(run)
    roles = sorted({r for s in samples for r in s.role_cpu_s})
    section = _cpu([s.fleet_cpu for s in samples])
    section |= {
        "peak_rss_mb": round(max(s.fleet_rss_mb for s in run.samples), 1),
        "role_cpu_s_per_s": {r: round(sum(s.role_cpu_s.get(r, 0.0) for s in samples)
                                      / len(samples), 4) for r in roles},
    }
    return section


def _cpu(values: list[float]) -> Section:
    """p95 and mean of CPU shares over the load window's samples (None when empty)."""
    section: Section = {}
    put(section, {"cpu_p95": round(percentile(values, 95), 4) if values else None,
                   "cpu_mean": round(sum(values) / len(values), 4) if values else None},
         NO_CPU_SAMPLE)
    return section


def _simulator(run: RunResult) -> Section:
    drive, samples = run.drive, window(run)
    section: Section = {
        "kept_up": drive.kept_up,
        "ticks_planned": drive.ticks_planned,
        "ticks_emitted": drive.ticks_emitted,
        "ticks_dropped": drive.ticks_dropped,
        "updates_per_s": rate(drive.updates, drive.elapsed_s),
        "tasks_per_s": rate(drive.tasks_sent, drive.elapsed_s),
        "sessions_joined_in_play": run.sessions_total - run.sessions,
        "rejected": drive.rejected,
        "sessions_refused_full": drive.server_full,
        "send_errors": drive.send_errors,
        "drained": run.drained,
        "repeated_runs": run.repeated_runs,
        "sampler_errors": run.sampler_errors,
        "phases_s": run.phases_s,
    }
    section |= _cpu([s.simulator_cpu for s in samples])
    lag_p99 = drive.lag_p99_ms
    put(section, {"lag_p99_ms": ms(lag_p99) if lag_p99 is not None else None,
                   "lag_max_ms": ms(drive.lag_max_ms) if drive.lag_max_ms is not None
                   else None},
         "no tick went out")
    section["game_servers"] = [
        {"server": g.server, "pid": g.pid, "kept_up": g.kept_up, "ticks_planned": g.ticks_planned,
         "ticks_dropped": g.ticks_planned - g.ticks_emitted,
         "lag_p99_ms": ms(g.lag_p99_ms) if g.lag_p99_ms is not None else None,
         "lag_max_ms": ms(g.lag_max_ms) if g.lag_max_ms is not None else None}
        for g in drive.servers]
    if drive.first_error:
        section["first_error"] = drive.first_error
    return section


def _services(run: RunResult) -> Section:
    if not run.samples:
        return {}
    return _cpu([s.services_cpu for s in window(run)])


def _client(run: RunResult) -> Section:
    """The simulated game servers' CPU: their processes, the store's and the simulator's
    (the workers and services it started are the server's, not theirs), and what they
    spent per update applied."""
    if not run.samples:
        return {}
    section = _cpu([s.client_cpu for s in window(run)])
    return section | _per_update(run, CLIENT_KINDS)


def _server(run: RunResult) -> Section:
    """The server side's whole CPU (workers, Redis, PostgreSQL, by their own process ids;
    the simulated game servers excluded), and its mean per kind of process."""
    if not run.samples:
        return {}
    samples = window(run)
    section = _cpu([s.server_cpu for s in samples])
    kinds = sorted({k for s in samples for k in s.service_cpu})
    if samples:
        section["cpu_mean_by_kind"] = {
            "workers": round(sum(s.fleet_cpu for s in samples) / len(samples), 4),
            **{k: round(sum(s.service_cpu.get(k, 0.0) for s in samples) / len(samples), 4)
               for k in kinds}}
    section |= _per_update(run, sorted({k for s in run.samples for k in s.cpu_s}
                                       - set(CLIENT_KINDS)) or ["workers"])
    unmeasured = sorted({k for s in samples for k in s.unmeasured})
    if unmeasured:
        section["unmeasured"] = unmeasured  # on another machine: its CPU is not in cpu_*
    return section


def _per_update(run: RunResult, kinds: Sequence[str]) -> Section:
    """CPU microseconds per update applied of the processes of `kinds`, in all and per
    kind: their CPU from the start of the load to the end of the drain over the updates
    the workers applied in that time (`network.updates_applied`)."""
    samples, applied = run.samples, run.network.updates
    spent = {k: sum(s.cpu_s.get(k, 0.0) for s in samples) for k in kinds}
    section: Section = {}
    put(section, {"cpu_us_per_update": round(sum(spent.values()) * 1e6 / applied, 1)
                   if applied and samples else None},
         "no update was applied" if not applied else NO_CPU_SAMPLE)
    if applied and samples:
        section["cpu_us_per_update_by_kind"] = {k: round(v * 1e6 / applied, 1)
                                                for k, v in spent.items()}
    return section


def _network(run: RunResult) -> Section:
    net = run.network
    if not net.updates:
        return {}
    section: Section = {
        "updates_applied": net.updates,
        "bytes_per_update": round(net.bytes_per_update, 2),
    }
    full, json_full = net.full_msgpack_bytes_per_update, net.full_bytes_per_update
    put(section, {"bytes_per_update_full_state": round(full, 2) if full else None,
                   "bytes_per_update_full_state_json": round(json_full, 2) if json_full
                   else None,
                   "ratio": round(net.bytes_per_update / full, 4) if full else None},
         "no batch was sampled for its full-state cost")
    return section


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


def _comparison(baseline: Section, ours: Section) -> Section:
    """The baseline's player p99 over ours (both from intended time)."""
    theirs = (baseline.get("player") or {}).get("p99_ms")
    mine = (ours.get("player") or {}).get("p99_ms")
    section: Section = {}
    put(section, {"player_p99_ratio": round(theirs / mine, 2) if theirs and mine else None},
         "a player p99 is missing or zero")
    return section


# Headline figures summarised over repeated runs (dotted paths into the report).
HEADLINE = ("player.p50_ms", "player.p99_ms", "player.p999_ms", "player.service_p99_ms",
            "physics.within_budget_ratio", "physics.frame_p99_ms", "server.cpu_p95",
            "fleet.cpu_p95", "simulator.lag_p99_ms", "transactions.p99_commit_ms",
            "network.bytes_per_update", "baseline.player.p99_ms",
            "comparison.player_p99_ratio")


def repeat_summary(reports: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of each headline figure over `reports` (runs of one seed), and
    how many of them kept to the schedule: how noisy the machine is, as a figure."""
    summary: dict[str, Any] = {"runs": len(reports),
                               "kept_up": sum(bool(_at(r, "simulator.kept_up"))
                                              for r in reports)}
    for path in HEADLINE:
        values = sorted(v for r in reports if isinstance(v := _at(r, path), int | float))
        if values:
            summary[path] = {"median": round(float(statistics.median(values)), 4),
                             "min": values[0], "max": values[-1], "runs": len(values)}
    return summary


def _at(report: dict[str, Any], path: str) -> Any:
    value: Any = report
    for part in path.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value
