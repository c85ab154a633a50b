"""The physics section of the simulator's report: honest frames and the units' load."""

from __future__ import annotations

from collections import Counter

from app.simulate.driver import SentFrame
from app.simulate.latency import outcome
from app.simulate.runner import RunResult
from app.simulate.sampler import Sample
from app.simulate.sections import Section, put, rate, window

FRAME_BUDGET_MS = 16.0


def physics_section(run: RunResult, done: dict[str, float]) -> Section:
    """Frames (each within budget when all its tasks ran within 16 ms of its scheduled
    start) and the units' load; `done`: when each task that ran whole finished."""
    drive = run.drive
    if not drive.frames_due:
        return {}
    frames = outcome(((f.task_ids[0], (f.intended,)) for f in drive.frames),
                     _frames_done(drive.frames, done), run.drain_ended, FRAME_BUDGET_MS)
    section: Section = {
        "frames": drive.frames_due,
        "frames_sent": drive.physics,
        "frames_run": frames.applied,
        "frames_within_budget": frames.within,
        "within_budget_ratio": round(frames.within / drive.frames_due, 4),
        "offered_per_s": rate(drive.physics, drive.elapsed_s),
    }
    if drive.body_changes:  # combat: blasts spawning and clearing bodies
        section |= {"body_changes": drive.body_changes, "bodies_spawned": drive.bodies_spawned}
    summary = frames.latencies.summary("no frame was sent during the load")
    put(section, {f"frame_{k}": v for k, v in summary.items() if k != "why"},
        "no frame was sent during the load")
    return section | _units(run)


UNIT_PREFIX = "physics-u"  # a physics unit's worker node
RECENT_S = 3.0  # a region noted this long before the last note counts as current


def _units(run: RunResult) -> Section:
    """The physics units' load: each unit's CPU (its process tree, seconds per second) and
    regions at the end, the costliest unit in use over the mean of those in use (the
    director packs a light load onto fewer units), and what moved or went wrong."""
    section: Section = {}
    in_use: set[str] | None = None
    if run.physics is not None:
        by_unit = Counter(str(note.unit) for note in run.physics.notes.values())
        in_use = set(by_unit)
        counts = run.physics.counts
        latest = max((n.at for n in run.physics.notes.values()), default=0.0)
        current = [n for n in run.physics.notes.values() if n.at >= latest - RECENT_S]
        section |= {
            "regions": len(run.physics.notes),
            "bodies_at_end": sum(n.bodies for n in current),  # regions noted lately
            "regions_by_unit": dict(sorted(by_unit.items())),
            "moves": counts.get("moves", 0), "rebalances": counts.get("rebalances", 0),
            "splits": counts.get("splits", 0), "merges": counts.get("merges", 0),
            "regions_skipped": counts.get("skipped", 0),
            "regions_slowed": counts.get("slowed", 0),
            "regions_handed_over": counts.get("handed_over", 0),
            "bodies_crossed": counts.get("crossed", 0),
            "anomalies": {k.partition(".")[2]: v for k, v in sorted(counts.items())
                          if k.startswith("anomalies.")},
        }
    return _unit_cpu(window(run), in_use) | section


def _unit_cpu(samples: list[Sample], in_use: set[str] | None) -> Section:
    nodes = sorted({r for s in samples for r in s.role_cpu_s if r.startswith(UNIT_PREFIX)})
    if not nodes:
        return {}
    cpu = {n.removeprefix(UNIT_PREFIX): sum(s.role_cpu_s.get(n, 0.0) for s in samples)
           / len(samples) for n in nodes}
    used = [v for unit, v in cpu.items() if in_use is None or unit in in_use]
    mean = sum(used) / len(used) if used else 0.0
    return {"units": len(nodes), "units_in_use": len(used),
            "unit_cpu_s_per_s": {unit: round(v, 4) for unit, v in cpu.items()},
            "unit_max_over_mean": round(max(used) / mean, 3) if mean else None}


def _frames_done(frames: list[SentFrame], done: dict[str, float]) -> dict[str, float]:
    """When each frame ran, under its first task's id: when the last of its tasks ran."""
    ran: dict[str, float] = {}
    for frame in frames:
        times = [done.get(task_id) for task_id in frame.task_ids]
        if frame.task_ids and None not in times:
            ran[frame.task_ids[0]] = max(t for t in times if t is not None)
    return ran
