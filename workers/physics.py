"""Physics role: frames of a unit's regions and changes of their bodies (queue
``physics.<unit>``, one worker per unit)."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from typing import Any

from celery import shared_task

from app.observe.metrics import metrics
from app.physics.engine import BodySpawn
from app.physics.units import FrameWork, Links, UnitFrame, unit
from app.protocol.names import (
    HANDOFF_HEADER,
    PHYSICS_BODIES_TASK,
    PHYSICS_FRAME_TASK,
    PHYSICS_REGION_TASK,
)
from app.protocol.queues import unit_queue
from app.tasking.base import GameTask, header


@shared_task(base=GameTask, bind=True, name=PHYSICS_REGION_TASK)
def step_region(self: GameTask, region: str, frame: int, dt_ms: float,  # noqa: PLR0917
                bodies: int, unit_number: int = 0, epoch: int = 0) -> int:  # wire form
    """Step one region of unit `unit_number` by one frame; returns its body count (0 when
    the unit could not step it).  Not retried: the next frame supersedes a lost one."""
    done = _run(self, FrameWork(frame, [(region, bodies, dt_ms)], epoch), unit_number)
    return sum(step.bodies for step in done.stepped)


@shared_task(base=GameTask, bind=True, name=PHYSICS_FRAME_TASK)
def step_frame(self: GameTask, frame: int, dt_ms: float,  # noqa: PLR0917 - wire form
               regions: list[list[Any]], unit_number: int = 0, epoch: int = 0) -> int:
    """Step unit `unit_number`'s ``[region, bodies, dt_ms]`` of `regions` (without a
    ``dt_ms`` of its own, a region advances by the frame's) after handing over what a
    newer owner map `epoch` moved away; returns their bodies.  A region the unit could not
    step leaves the run not done.  Not retried, as `step_region`."""
    work = FrameWork(frame, [_region(entry, dt_ms) for entry in regions], epoch)
    return sum(step.bodies for step in _run(self, work, unit_number).stepped)


@shared_task(base=GameTask, bind=True, name=PHYSICS_BODIES_TASK, max_retries=250)
def change_bodies(self: GameTask, region: str, spawns: list[list[Any]],  # noqa: PLR0917
                  removals: list[str], unit_number: int = 0,
                  epoch: int = 0) -> dict[str, Any]:  # the wire form
    """Remove (ids) then spawn (``[id, x, y, vx, vy, radius, mass]`` each) bodies of
    `region` on unit `unit_number`.  A change reaching a unit the region has left goes on
    to its owner; one whose space is still on its way here is retried every 20 ms (up to
    5 s).  Idempotent: an id already there is not spawned again, an id not there is
    reported missing."""
    links = self.runtime.physics
    here = unit(unit_number)
    bodies = [BodySpawn(str(b[0]), (float(b[1]), float(b[2])), (float(b[3]), float(b[4])),
                        float(b[5]), float(b[6])) for b in spawns]
    done = here.change(region, bodies, [str(r) for r in removals], epoch, links)
    if done is not None:
        return asdict(done)
    owner = here.owner_of(region, links)
    if owner == unit_number:
        raise self.retry(countdown=0.02)
    self.app.send_task(PHYSICS_BODIES_TASK, args=[region, spawns, removals, owner,
                                                  here.view.epoch],
                       queue=unit_queue(owner), headers=_forwarded(self),
                       priority=(self.request.delivery_info or {}).get("priority"))
    return {"forwarded_to": owner}


def _forwarded(task: GameTask) -> dict[str, Any]:
    """The headers a forwarded message keeps: when the game server handed it over."""
    handoff = header(task.request, HANDOFF_HEADER)
    return {HANDOFF_HEADER: handoff} if handoff is not None else {}


def _region(entry: list[Any], dt_ms: float) -> tuple[str, int, float]:
    return str(entry[0]), int(entry[1]), float(entry[2]) if len(entry) > 2 else dt_ms


def _run(task: GameTask, work: FrameWork, unit_number: int) -> UnitFrame:
    links = task.runtime.physics
    done = unit(unit_number).step(work, links)
    if done.skipped:
        task.note_incomplete()
    task.after_done(lambda: _count(done, links))  # the frame is stepped: nobody waits
    return done


def _count(done: UnitFrame, links: Links) -> None:
    """Count what a frame contained, handed over, skipped, moved and rested, in Prometheus
    and (what is not counted every frame) in the running counts the report reads."""
    counts = Counter(f"anomalies.{a.kind}" for step in done.stepped for a in step.anomalies)
    counts.update(handed_over=len(done.released), skipped=len(done.skipped),
                  crossed=done.left)
    m = metrics()
    for name, amount in counts.items():
        if name.startswith("anomalies."):
            m.physics_anomalies.labels(name.partition(".")[2]).inc(amount)
    m.physics_handed_over.inc(len(done.released))
    m.physics_skipped.inc(len(done.skipped))
    m.physics_crossed.inc(done.left)
    m.physics_rested.inc(sum(step.rested for step in done.stepped))  # (not noted in Redis:
    # regions rest in most frames, and a frame with nothing else to note writes nothing)
    if any(counts.values()):  # rare: nothing to write on an ordinary frame
        links.notes.count({name: n for name, n in counts.items() if n})
