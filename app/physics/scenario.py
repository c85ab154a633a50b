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
gamesched and pymunk version.  Stepping is one space for the whole world; across the
partition's regions and units is the next step of spatial physics.
"""

from __future__ import annotations

import hashlib
import json
import math
import random
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import pymunk
from pydantic import BaseModel, ConfigDict, Field

from app.errors import InvalidRequest
from app.validation import ID_PATTERN, parse

Finite = Annotated[float, Field(allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Point = tuple[Finite, Finite]
BodyId = Annotated[str, Field(min_length=1, max_length=64, pattern=ID_PATTERN)]


class _Spec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class BodySpec(_Spec):
    """A body there from the start."""

    id: BodyId
    position: Point
    velocity: Point = (0.0, 0.0)
    radius: Positive = 10.0
    mass: Positive = 1.0


class Spawn(_Spec):
    """Bodies scattered by the seed at `at_s`."""

    at_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    count: Annotated[int, Field(ge=1, le=10_000)]
    centre: Point
    spread: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    speed: Annotated[float, Field(ge=0, allow_inf_nan=False)] = 0.0
    radius: Positive = 5.0
    mass: Positive = 1.0


class Impulse(_Spec):
    """A push given to one body at `at_s`."""

    at_s: Annotated[float, Field(ge=0, allow_inf_nan=False)]
    body: BodyId
    impulse: Point


class Scenario(_Spec):
    """A whole scenario file."""

    world_size: Positive = 1000.0
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


def run(scenario: Scenario, seed: int) -> Replay:
    """Step `scenario` with `seed` to its end; the final state's hash."""
    bodies = final_bodies(scenario, seed)
    return Replay(state_hash(bodies), len(bodies), frames_of(scenario))


def frames_of(scenario: Scenario) -> int:
    """How many frames `scenario` runs."""
    return math.ceil(scenario.duration_s * scenario.frame_hz - 1e-9)


def final_bodies(scenario: Scenario, seed: int) -> dict[str, pymunk.Body]:
    """Every body, by id, once `scenario` has run to its end with `seed`."""
    space, bodies = _world(scenario), {}
    for spec in scenario.bodies:
        bodies[spec.id] = _add(space, spec)
    rng = random.Random(seed)
    dt = 1.0 / scenario.frame_hz
    for frame in range(frames_of(scenario)):
        due = _due_in(frame, scenario.frame_hz)
        for number, spawn in enumerate(scenario.spawns):
            if due(spawn.at_s):
                for spec in _spawned(spawn, f"spawn-{number}", rng, scenario.world_size):
                    bodies[spec.id] = _add(space, spec)
        for push in scenario.impulses:
            if due(push.at_s) and push.body in bodies:
                bodies[push.body].apply_impulse_at_local_point(push.impulse)
        space.step(dt)
    return bodies


def state_hash(bodies: dict[str, pymunk.Body]) -> str:
    """SHA-256 of every body's id and exact state, in id order."""
    digest = hashlib.sha256()
    for body_id in sorted(bodies):
        body = bodies[body_id]
        digest.update(body_id.encode() + b"\0")
        digest.update(struct.pack("<6d", *body.position, *body.velocity, body.angle,
                                  body.angular_velocity))
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


def _world(scenario: Scenario) -> pymunk.Space:
    space = pymunk.Space()
    space.gravity = scenario.gravity
    size = scenario.world_size
    corners = [(0.0, 0.0), (size, 0.0), (size, size), (0.0, size)]
    for a, b in zip(corners, corners[1:] + corners[:1], strict=True):
        wall = pymunk.Segment(space.static_body, a, b, 1.0)
        wall.elasticity = 0.5
        space.add(wall)
    return space


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


def _add(space: pymunk.Space, spec: BodySpec) -> pymunk.Body:
    body = pymunk.Body(spec.mass, pymunk.moment_for_circle(spec.mass, 0.0, spec.radius))
    body.position, body.velocity = spec.position, spec.velocity
    body.gs_id = spec.id
    shape = pymunk.Circle(body, spec.radius)
    shape.friction, shape.elasticity = 0.5, 0.5
    space.add(body, shape)
    return body
