"""The simulator report's AI section."""

from __future__ import annotations

from itertools import pairwise

from app.observe.recorder import Execution
from app.simulate.driver import DriveStats
from app.simulate.modes import MODES
from app.simulate.runner import RunResult
from app.simulate.sections import NO_CPU_SAMPLE, Section, latency_summary, put, rate, window


def ai_section(run: RunResult, batches: list[Execution]) -> Section:
    """The report's ``ai`` section: the decisions sent, by tier, their batches' latency,
    how often each NPC was decided, and the AI role's CPU."""
    if not run.drive.ai:
        return {}
    drive = run.drive
    section: Section = {"decisions_sent": drive.ai_decisions, "batches_sent": drive.ai,
                        "batches": len(batches),
                        "offered_per_s": rate(drive.ai_decisions, drive.elapsed_s),
                        "decisions_by_tier": {"full": drive.ai_full,
                                              "reduced": drive.ai_reduced,
                                              "minimal": drive.ai_minimal},
                        **_npc_rates(drive, batches)}
    summary = latency_summary([e.latency_ms for e in batches])
    put(section, {k: summary.get(k) for k in ("p50_ms", "p95_ms", "p99_ms", "max_ms")},
         "no AI task ran")
    if not MODES[run.mode].naive:  # (in gamesched's fleets the ai worker runs AI alone)
        cpu = [s.role_cpu_s.get("ai", 0.0) for s in window(run)]
        put(section, {"cpu_s_per_s": round(sum(cpu) / len(cpu), 4) if cpu else None},
             NO_CPU_SAMPLE)
    return section


def _npc_rates(drive: DriveStats, batches: list[Execution]) -> Section:
    """How often each NPC was decided: the longest wait of any NPC between two of its
    decisions done (the run's start and end counting as such), and its inverse, the rate
    the slowest-served NPC got.  An NPC never decided waited the whole run."""
    if not drive.npcs:
        return {}
    done = {e.task_id: e.done for e in batches if e.ok}
    times: dict[str, list[float]] = {}
    for sent in drive.ai_sent:
        at = done.get(sent.task_id)
        for npc in sent.npcs:
            times.setdefault(npc, [])
            if at is not None:
                times[npc].append(at)
    waits = [max(b - a for a, b in pairwise([drive.started, *sorted(t), drive.ended]))
             for t in times.values()]
    if len(times) < drive.npcs:
        waits.append(drive.elapsed_s)
    worst = max(waits)
    return {"npcs": drive.npcs, "max_wait_s": round(worst, 3),
            "min_npc_hz": round(1.0 / worst, 3) if worst > 0 else None}


def ai_reduction(ours: Section, unthrottled: Section) -> Section:
    """What throttling saved: the AI role's CPU (its processes' own) in the run beside,
    whose game servers ignored the controller's AI tier cap, and the share of it ours did
    not spend."""
    theirs, mine = unthrottled.get("cpu_s_per_s"), ours.get("cpu_s_per_s")
    section: Section = {"cpu_s_per_s_unthrottled": theirs}
    put(section, {"reduction": round(1.0 - mine / theirs, 3)
                  if theirs and mine is not None else None},
        "an AI CPU figure is missing or zero")
    return section
