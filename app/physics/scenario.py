"""Reproducible physics scenarios: a file of bodies, spawns and impulses over time, plus a
seed, stepped on pymunk to a final state and its hash.

A scenario is JSON::

    {"world_size": 1000, "duration_s": 5, "frame_hz": 60, "gravity": [0, 0],
     "bodies": [{"id": "crate-1", "position": [100, 100], "velocity": [5, 0],
                 "radius": 10, "mass": 1}],
     "spawns": [{"at_s": 1.0, "count": 50, "centre": [500, 500], "spread": 40,
                 "speed": 200, "radius": 5, "mass": 0.5}],
     "impulses": [{"at_s": 2.0, "body": "crate-1", "impulse": [0, 300]}]}

A spawn scatters `count` bodies around `centre`, up to `spread` away, each moving at up to
`speed` in a direction of its own: where and how fast come from the seed, so one file
gives many runs and each seed the same run every time.  Spawned bodies are named
``spawn-<spawn>-<k>`` from 0; an impulse for one not spawned yet does nothing.  The world
is walled in.  The hash (SHA-256) covers every body's id, position, velocity, angle and
angular velocity, exactly: the same file and seed give the same hash on every run of this
gamesched and pymunk version.

A replay runs on the fleet's own code: the world is cut into the quadtree's regions
``depth`` levels deep (0: one region, the whole world), spread over ``units`` physics
units (`app.physics.units`) in this process (or each in a process of its own:
`app.physics.lockstep`), and bodies cross borders and meet across them as in the fleet
(`app.physics.world`).  Every unit steps a frame before any sends what
crossed its borders, so a region always steps with its neighbours' halos of the frame
before: the hash is the same on one unit or several.  Under another partition the run is
not bit-for-bit the same (a contact across a border is solved in two spaces, not one), and
`compare` measures how far apart two runs end.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import random
import struct
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Protocol

import pymunk
from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidRequest
from app.physics.anomalies import Limits
from app.physics.engine import BodySpawn
from app.physics.handover import MemoryHandover
from app.physics.notes import MemoryRegionNotes
from app.physics.owners import MemoryOwnerMap
from app.physics.partition import QUARTERS, ROOT
from app.physics.units import FrameWork, Links, Unit
from app.physics.world import MAX_RADIUS, Leaves, World
from app.validation import ID_PATTERN, parse

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Radius = Annotated[float, Field(gt=0, le=MAX_RADIUS, allow_inf_nan=False)]
MAX_REPLAY_DEPTH = 4
MAX_REPLAY_UNITS = 16
Point = tuple[Finite, Finite]
BodyId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BodySpec(_Spec):
    """A body there from the start."""

    id: BodyId
    position: Point
    velocity: Point = (0.0, 0.0)
    radius: Radius = 10.0
    mass: Positive = 1.0


class Spawn(_Spec):
    """Bodies scattered by the seed at `at_s`."""

    at_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    count: Annotated[int, Field(ge=1, le=10_000)]
    centre: Point
    spread: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    speed: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    radius: Radius = 5.0
    mass: Positive = 1.0


class Impulse(_Spec):
    """A push given to one body at `at_s`."""

    at_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    body: BodyId
    impulse: Point


class Scenario(_Spec):
    """A whole scenario file."""

    world_size: Annotated[float, Field(ge=100, le=1e7, allow_inf_nan=False)] = 1000.0
    duration_s: Annotated[float, Field(gt=0, le=3600, allow_inf_nan=False)]
    frame_hz: Annotated[float, Field(gt=0, le=1000, allow_inf_nan=False)] = 60.0
    gravity: Point = (0.0, 0.0)
    bodies: list[BodySpec] = []
    spawns: list[Spawn] = []
    impulses: list[Impulse] = []


@dataclass(frozen=True)
class Replay:
    """What a run of a scenario ended with."""

    hash: str
    bodies: int
    frames: int


def load(path: Path) -> Scenario:
    """The scenario in the JSON file at `path`; InvalidRequest names what is wrong with it
    (``file`` when it is not JSON, else the field, such as ``bodies.2.mass``)."""
    try:
        data: Any = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest("file", str(path), f"not a readable JSON scenario: {exc}") from None
    if not isinstance(data, dict):
        raise InvalidRequest("file", str(path), "expected a JSON object")
    scenario = parse(Scenario, data)
    _check_references(scenario)
    return scenario


def run(scenario: Scenario, seed: int, depth: int = 0, units: int = 1) -> Replay:
    """Step `scenario` with `seed` to its end, on the quadtree `depth` levels deep spread
    over `units`; the final state's hash."""
    bodies = final_bodies(scenario, seed, depth, units)
    return Replay(state_hash(bodies), len(bodies), frames_of(scenario))


def frames_of(scenario: Scenario) -> int:
    """How many frames `scenario` runs."""
    return math.ceil(scenario.duration_s * scenario.frame_hz - 1e-9)


def final_bodies(scenario: Scenario, seed: int, depth: int = 0,
                 units: int = 1) -> dict[str, pymunk.Body]:
    """Every body, by id, once `scenario` has run to its end with `seed` (see `run`)."""
    check_run(depth, units)
    world = replay_world(scenario)
    links = Links(MemoryOwnerMap(), MemoryHandover(), MemoryRegionNotes(), units,
                  limits=REPLAY_LIMITS, world=world)
    return play(_Fleet(scenario, depth, units, links), scenario, seed)


def check_run(depth: int, units: int) -> None:
    """Raise InvalidRequest unless a replay can run `depth` levels deep on `units`."""
    if not 0 <= depth <= MAX_REPLAY_DEPTH:
        raise InvalidRequest("depth", depth, f"expected 0 to {MAX_REPLAY_DEPTH}")
    if not 1 <= units <= MAX_REPLAY_UNITS:
        raise InvalidRequest("units", units, f"expected 1 to {MAX_REPLAY_UNITS}")


class ReplayFleet(Protocol):
    """What a replay steps: every unit of it in this process (`_Fleet`), or one unit of
    several in processes of their own (`app.physics.lockstep`)."""

    def spawn(self, spec: BodySpawn) -> None:
        """Put a new body into its region (where that region's unit runs)."""

    def find(self, body_id: str) -> pymunk.Body | None:
        """The body of that id, if it is in a space here."""

    def step(self, frame: int) -> None:
        """Step every region one frame, then hand over what crossed their borders."""

    def settle(self) -> dict[str, pymunk.Body]:
        """Every body here by id, those still crossing put where they were going."""


def play(fleet: ReplayFleet, scenario: Scenario, seed: int) -> dict[str, pymunk.Body]:
    """Run `scenario` with `seed` on `fleet` to its end: its bodies, spawns and impulses
    frame by frame; what `fleet.settle` returns at the end."""
    for spec in scenario.bodies:
        fleet.spawn(_body(spec))
    rng = random.Random(seed)
    for frame in range(frames_of(scenario)):
        due = _due_in(frame, scenario.frame_hz)
        for number, spawn in enumerate(scenario.spawns):
            if due(spawn.at_s):
                for spec in _spawned(spawn, f"spawn-{number}", rng, scenario.world_size):
                    fleet.spawn(_body(spec))
        for push in scenario.impulses:
            body = fleet.find(push.body) if due(push.at_s) else None
            if body is not None:
                body.apply_impulse_at_local_point(push.impulse)
        fleet.step(frame)
    return fleet.settle()


REPLAY_LIMITS = Limits(step_budget_ms=1e9)  # a slow step is never contained: same run anywhere


def replay_world(scenario: Scenario) -> World:
    """The walled world a replay of `scenario` steps in."""
    return World(size=scenario.world_size, gravity=scenario.gravity, wall_radius=1.0,
                 wall_elasticity=0.5, wall_friction=0.0, sleep_after_s=math.inf, damping=1.0)


def replay_owners(depth: int, units: int) -> dict[str, int]:
    """The quadtree's regions `depth` levels deep, in runs of about equal length per unit."""
    regions = [ROOT + "".join(p) for p in itertools.product(QUARTERS, repeat=depth)]
    return {r: k * units // len(regions) for k, r in enumerate(regions)}


def replay_unit(number: int) -> Unit:
    """Physics unit `number` as a replay runs it."""
    unit = Unit(number)
    unit.drain_every_s = 0.0  # every frame: a replay's steps never depend on the clock
    return unit


def unit_work(owners: dict[str, int], unit: int, dt_ms: float) -> list[tuple[str, int, float]]:
    """One frame's work of `unit`: every region it owns, advancing `dt_ms`."""
    return [(region, 0, dt_ms) for region, owner in owners.items() if owner == unit]


def named_bodies(units: Iterable[Unit]) -> dict[str, pymunk.Body]:
    """Every named body in the spaces of `units`, by id."""
    return {b.gs_id: b for u in units for space in u.spaces.values() for b in space.bodies
            if getattr(b, "gs_id", None) is not None}


def find_body(units: Iterable[Unit], body_id: str) -> pymunk.Body | None:
    """The body named `body_id` in the spaces of `units` (None when none holds it)."""
    return next((b for u in units for space in u.spaces.values() for b in space.bodies
                 if getattr(b, "gs_id", None) == body_id), None)


class _Fleet:
    """The units a replay runs on, in this process (see the module)."""

    def __init__(self, scenario: Scenario, depth: int, units: int, links: Links) -> None:
        self.links = links
        self.owners = replay_owners(depth, units)
        self.epoch = self.links.owners.publish(self.owners)
        self.units = [replay_unit(n) for n in range(units)]
        self.leaves = Leaves(frozenset(self.owners), links.world)
        dt_ms = 1000.0 / scenario.frame_hz
        self.work = [unit_work(self.owners, n, dt_ms) for n in range(units)]

    def spawn(self, spec: BodySpawn) -> None:
        region = self.leaves.find(*spec.position)
        assert region is not None  # spawns are clamped into the world
        self.units[self.owners[region]].change(region, [spec], [], self.epoch, self.links)

    def find(self, body_id: str) -> pymunk.Body | None:
        return find_body(self.units, body_id)

    def step(self, frame: int) -> None:
        advanced = [u.advance(FrameWork(frame, self.work[u.number], self.epoch), self.links)
                    for u in self.units]
        for unit, (_, outgoing) in zip(self.units, advanced, strict=True):
            unit.send(outgoing, self.links)

    def settle(self) -> dict[str, pymunk.Body]:
        """Every body by id, those still crossing a border put where they were going."""
        for unit in self.units:
            unit.receive(self.links)
        return named_bodies(self.units)


BodyState = tuple[float, float, float, float, float, float]  # x, y, vx, vy, angle, spin


def state_hash(bodies: dict[str, pymunk.Body]) -> str:
    """SHA-256 of every body's id and exact state, in id order."""
    return states_hash(body_states(bodies))


def body_states(bodies: dict[str, pymunk.Body]) -> dict[str, BodyState]:
    """Each body's exact state by id."""
    return {body_id: (*body.position, *body.velocity, body.angle, body.angular_velocity)
            for body_id, body in bodies.items()}


def states_hash(states: dict[str, BodyState]) -> str:
    """SHA-256 of every body's id and exact state (`body_states`), in id order."""
    digest = hashlib.sha256()
    for body_id in sorted(states):
        digest.update(body_id.encode() + b"\0")
        digest.update(struct.pack("<6d", *states[body_id]))
    return digest.hexdigest()


def _check_references(scenario: Scenario) -> None:
    known: set[str] = set()
    for index, spec in enumerate(scenario.bodies):
        if spec.id in known:
            raise InvalidRequest(f"bodies.{index}.id", spec.id, "a second body with this id")
        known.add(spec.id)
    timed = [(f"spawns.{i}.at_s", e.at_s) for i, e in enumerate(scenario.spawns)]
    timed += [(f"impulses.{i}.at_s", e.at_s) for i, e in enumerate(scenario.impulses)]
    for field, at_s in timed:
        if at_s >= scenario.duration_s:
            raise InvalidRequest(field, at_s,
                                 f"after the scenario's end ({scenario.duration_s:g} s)")
    known |= {f"spawn-{n}-{k}" for n, s in enumerate(scenario.spawns) for k in range(s.count)}
    for index, push in enumerate(scenario.impulses):
        if push.body not in known:
            raise InvalidRequest(f"impulses.{index}.body", push.body, "no such body")


def _due_in(frame: int, frame_hz: float) -> Any:
    start, end = frame / frame_hz, (frame + 1) / frame_hz
    return lambda at_s: start <= at_s < end


def _spawned(spawn: Spawn, name: str, rng: random.Random, size: float) -> list[BodySpec]:
    specs = []
    for k in range(spawn.count):
        angle, reach = rng.uniform(0, 2 * math.pi), spawn.spread * math.sqrt(rng.random())
        x = min(size, max(0.0, spawn.centre[0] + reach * math.cos(angle)))
        y = min(size, max(0.0, spawn.centre[1] + reach * math.sin(angle)))
        heading, speed = rng.uniform(0, 2 * math.pi), spawn.speed * rng.random()
        specs.append(BodySpec(id=f"{name}-{k}", position=(x, y),
                              velocity=(speed * math.cos(heading), speed * math.sin(heading)),
                              radius=spawn.radius, mass=spawn.mass))
    return specs


def _body(spec: BodySpec) -> BodySpawn:
    return BodySpawn(spec.id, spec.position, spec.velocity, spec.radius, spec.mass)
