"""A scenario's replay with every physics unit in a process of its own, in lockstep.

`run` starts one process per unit.  Each runs the same scenario with the same seed
(`app.physics.scenario.play`) but keeps only what falls in its own regions: the bodies and
spawns placed there, the impulses given to bodies it holds.  The units share what the
fleet's units share, through the Redis at `redis_url` (the owner map, the hand-over place,
the borders: halos and bodies crossing), read and written by the same code as in the
fleet.  Each frame, every unit steps once all of them have handed over the frame before,
and hands over once all of them have stepped (two barriers a frame), so every region
steps with its neighbours' halos of the frame before, as in one process: the final hash
is the same as `scenario.run` gives with as many units in one process.

At the end every unit puts the bodies still crossing into their spaces and sends its
bodies' exact states back; the hash covers them all.  The Redis must hold no other
replay's or fleet's physics keys: give it a database of its own (the command line starts
a private redis-server).
"""

from __future__ import annotations

import multiprocessing
import traceback
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from multiprocessing.process import BaseProcess
from threading import Barrier, BrokenBarrierError

import pymunk
import redis

from app.errors import GameschedError
from app.physics.borders import RedisBorders
from app.physics.engine import BodySpawn
from app.physics.handover import RedisHandover
from app.physics.notes import RedisRegionNotes
from app.physics.owners import RedisOwnerMap
from app.physics.scenario import (
    REPLAY_LIMITS,
    BodyState,
    Replay,
    Scenario,
    body_states,
    check_run,
    find_body,
    frames_of,
    named_bodies,
    play,
    replay_owners,
    replay_unit,
    replay_world,
    states_hash,
    unit_work,
)
from app.physics.units import FrameWork, Links
from app.physics.world import Leaves

BARRIER_TIMEOUT_S = 120.0  # a unit that falls this far behind the others is taken as lost


@dataclass(frozen=True)
class UnitJob:
    """What one unit's process replays."""

    scenario: Scenario
    seed: int
    depth: int
    units: int
    number: int
    redis_url: str
    epoch: int


def run(scenario: Scenario, seed: int, depth: int, units: int, redis_url: str) -> Replay:
    """Replay `scenario` with `seed` on the quadtree `depth` levels deep, each of `units`
    physics units in a process of its own exchanging through the Redis at `redis_url`;
    the final state's hash.  Raises GameschedError naming a unit that failed."""
    check_run(depth, units)
    epoch = publish_owners(redis_url, depth=depth, units=units)
    return run_units(scenario, seed, depth=depth, units=units, redis_url=redis_url,
                     epoch=epoch)


def publish_owners(redis_url: str, *, depth: int, units: int) -> int:
    """Publish the replay's owner map (`replay_owners`) in the Redis at `redis_url`; its
    epoch."""
    client = redis.Redis.from_url(redis_url)
    try:
        return RedisOwnerMap(client).publish(replay_owners(depth, units))
    finally:
        client.close()


def run_units(scenario: Scenario, seed: int, *, depth: int, units: int, redis_url: str,
              epoch: int) -> Replay:
    """`run`'s units, once the owner map of `epoch` is published: a process each."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(units, timeout=BARRIER_TIMEOUT_S)
    procs: list[tuple[BaseProcess, Connection]] = []
    try:
        for number in range(units):
            ours, theirs = context.Pipe(duplex=False)
            job = UnitJob(scenario, seed, depth, units, number, redis_url, epoch)
            proc = context.Process(target=serve, args=(job, barrier, theirs), daemon=True,
                                   name=f"replay-unit-{number}")
            proc.start()
            theirs.close()
            procs.append((proc, ours))
        results = _gather(procs, barrier)
    finally:
        for started, pipe in procs:
            started.join(timeout=10.0)
            if started.is_alive():
                started.kill()
            pipe.close()
    failed = [r for r in results if isinstance(r, UnitFailed)]
    if failed:  # the unit that failed first, not those it left waiting at a barrier
        raise GameschedError(min(failed, key=lambda f: f.waiting).message)
    states = {body: state for result in results if not isinstance(result, UnitFailed)
              for body, state in result.items()}
    return Replay(states_hash(states), len(states), frames_of(scenario))


@dataclass(frozen=True)
class UnitFailed:
    """A unit's process that failed: why, and whether it only gave up waiting for another."""

    message: str
    waiting: bool = False


def _gather(procs: list[tuple[BaseProcess, Connection]],
            barrier: Barrier) -> list[dict[str, BodyState] | UnitFailed]:
    """Each unit's bodies once it has replayed, or how it failed, in unit order.  A process
    that died without a word breaks `barrier`, so the others stop waiting for it."""
    results: dict[int, dict[str, BodyState] | UnitFailed] = {}
    while len(results) < len(procs):
        pending = [n for n in range(len(procs)) if n not in results]
        ready = wait([procs[n][1] for n in pending] + [procs[n][0].sentinel for n in pending])
        for number in pending:
            proc, pipe = procs[number]
            got = _received(number, pipe) if pipe in ready or pipe.poll(0) else None
            if got is not None:
                results[number] = got
            elif proc.sentinel in ready or pipe.closed or not proc.is_alive():
                barrier.abort()
                proc.join(timeout=5.0)  # (its exit code)
                results[number] = UnitFailed(f"replay unit {number} (pid {proc.pid}) stopped "
                                             f"(exit code {proc.exitcode})")
    return [results[n] for n in range(len(procs))]


def _received(number: int, pipe: Connection) -> dict[str, BodyState] | UnitFailed | None:
    """What unit `number` sent: its bodies, or how it failed; None when it ended without
    a word (its pipe closed)."""
    try:
        kind, body = pipe.recv()
    except EOFError:
        pipe.close()
        return None
    if kind == "done":
        states: dict[str, BodyState] = body
        return states
    return UnitFailed(f"replay unit {number} failed: {body}", waiting=kind == "waiting")


def serve(job: UnitJob, barrier: Barrier, pipe: Connection) -> None:
    """One unit's process: replay its share of the scenario, send its bodies' states."""
    try:
        client = redis.Redis.from_url(job.redis_url)
        fleet = UnitFleet(job, _links(job, client), barrier)
        pipe.send(("done", body_states(play(fleet, job.scenario, job.seed))))
    except BrokenBarrierError:
        pipe.send(("waiting", "another unit failed or fell behind"))
    except Exception as exc:  # noqa: BLE001 - the caller reports it
        barrier.abort()  # the others stop waiting for this one
        traceback.print_exc()  # on the caller's stderr, which this process shares
        pipe.send(("error", f"{type(exc).__name__}: {exc}"))
    finally:
        pipe.close()


def _links(job: UnitJob, client: redis.Redis) -> Links:
    """What the units share, in Redis, as the fleet's units share it."""
    return Links(RedisOwnerMap(client), RedisHandover(client), RedisRegionNotes(client),
                 job.units, limits=REPLAY_LIMITS, borders=RedisBorders(client),
                 world=replay_world(job.scenario))


class UnitFleet:
    """The replay as one unit's process sees it (`app.physics.scenario.ReplayFleet`): its
    own regions, and the others' work in step with its own through `barrier`."""

    def __init__(self, job: UnitJob, links: Links, barrier: Barrier) -> None:
        self.job, self.links, self.barrier = job, links, barrier
        self.owners = replay_owners(job.depth, job.units)
        self.unit = replay_unit(job.number)
        self.leaves = Leaves(frozenset(self.owners), links.world)
        self.work = unit_work(self.owners, job.number, 1000.0 / job.scenario.frame_hz)

    def spawn(self, spec: BodySpawn) -> None:
        """Put the body into its region when that region is this unit's."""
        region = self.leaves.find(*spec.position)
        if region is None:
            raise GameschedError(f"body {spec.body_id} spawned outside the world at "
                                 f"{spec.position}")
        if self.owners[region] == self.job.number:
            self.unit.change(region, [spec], [], self.job.epoch, self.links)

    def find(self, body_id: str) -> pymunk.Body | None:
        """The body of that id in this unit's spaces (None elsewhere or crossing)."""
        return find_body([self.unit], body_id)

    def step(self, frame: int) -> None:
        """Step once every unit has handed over the frame before; hand over once every
        unit has stepped."""
        work = FrameWork(frame, self.work, self.job.epoch)
        self._together()
        _, outgoing = self.unit.advance(work, self.links)
        self._together()
        self.unit.send(outgoing, self.links)

    def settle(self) -> dict[str, pymunk.Body]:
        """This unit's bodies, once every unit has handed over the last frame."""
        self._together()
        self.unit.receive(self.links)
        return named_bodies([self.unit])

    def _together(self) -> None:
        self.barrier.wait()  # BrokenBarrierError: another unit failed or fell behind
