"""Validated request shapes of the client API (sessions, state updates, physics, AI,
background work).  Bad input raises InvalidRequest naming the field and the value; nothing
is enqueued."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from typing import Annotated, Any

from pydantic import Field, Strict, StrictInt

from app.ai.tiers import Tier
from app.errors import InvalidRequest
from app.physics.anomalies import Limits
from app.physics.world import MAX_RADIUS, World
from app.players.delta import POSITION_FIELD
from app.protocol.names import ANALYTICS_TASK, SNAPSHOT_TASK
from app.protocol.vocab import BackgroundKind, SessionType
from app.validation import (
    FRAME_MAX,
    ID_PATTERN,
    Id,
    Number,
    RegionId,
    StrictRequest,
    check_position,
    parse,
)

AI_BATCH_MAX = 4096  # decisions per AI batch
SEEN_MAX = 256  # players one NPC decision considers
BODIES_MAX = 4096  # bodies spawned or removed per call
MAX_SPEED = Limits().max_speed  # a faster body would be clamped at once
BACKGROUND_TASKS = {BackgroundKind.SNAPSHOT: SNAPSHOT_TASK,  # kind -> task
                    BackgroundKind.ANALYTICS: ANALYTICS_TASK}
_NUMBERS = (int, float)  # exactly: a bool is not a coordinate
_ID = re.compile(ID_PATTERN.removeprefix("^").removesuffix("$"))  # with fullmatch: no "a\n"
AiCall = (tuple[str, tuple[float, float], Sequence[tuple[float, float]]]
          | tuple[str, tuple[float, float], Sequence[tuple[float, float]], str])


class OpenSession(StrictRequest):
    """Open a session on this instance."""

    session_id: str = Id
    session_type: Annotated[SessionType, Strict(False)] = SessionType.CASUAL
    players: StrictInt = Field(default=1, ge=1, le=1000)
    region: str | None = Field(default=None, min_length=1, max_length=64)


class SessionChange(StrictRequest):
    """Change a session's priority factors: a match starts, players join or leave."""

    session_id: str = Id
    session_type: Annotated[SessionType, Strict(False)] | None = None
    players: StrictInt | None = Field(default=None, ge=1, le=1000)
    region: str | None = Field(default=None, min_length=1, max_length=64)


def session_move(session_id: Any, region: Any) -> tuple[str, str]:
    """A session's move to `region`, checked: ``(session_id, region)``, or InvalidRequest
    naming the field."""
    req = parse(SessionChange, {"session_id": session_id, "region": region})
    if req.region is None:
        raise InvalidRequest("region", region, "expected a region name")
    return req.session_id, req.region


class CloseSession(StrictRequest):
    """Close a session."""

    session_id: str = Id


class StateUpdate(StrictRequest):
    """One player's state change; `seq` grows per session."""

    session_id: str = Id
    seq: StrictInt = Field(ge=1)
    state: dict[str, Any]
    position: tuple[Number, Number] | None = None


class PhysicsStep(StrictRequest):
    """One frame of one region."""

    region: str = Id
    frame: StrictInt = Field(ge=0, le=FRAME_MAX)
    dt_ms: Number = Field(default=16.0, gt=0, le=100)
    bodies: StrictInt = Field(default=0, ge=0, le=5000)


class FrameStep(StrictRequest):
    """One frame of several regions: region -> bodies."""

    frame: StrictInt = Field(ge=0, le=FRAME_MAX)
    dt_ms: Number = Field(default=16.0, gt=0, le=100)
    regions: dict[RegionId, Annotated[StrictInt, Field(ge=0, le=5000)]] = Field(
        min_length=1, max_length=1024)


class BodySpec(StrictRequest):
    """A ball to spawn in a region: its id, where it is in world coordinates (inside the
    region: `check_bodies`), its velocity, radius and mass."""

    id: str = Id
    x: Number
    y: Number
    vx: Number = Field(default=0.0, ge=-MAX_SPEED, le=MAX_SPEED)
    vy: Number = Field(default=0.0, ge=-MAX_SPEED, le=MAX_SPEED)
    radius: Number = Field(default=10.0, gt=0, le=MAX_RADIUS)
    mass: Number = Field(default=1.0, gt=0, le=1e6)


class BodyChange(StrictRequest):
    """Bodies to spawn in a region and ids of bodies to remove from it."""

    region: str = Id
    spawn: list[BodySpec] = Field(default_factory=list, max_length=BODIES_MAX)
    remove: list[RegionId] = Field(default_factory=list, max_length=BODIES_MAX)


def check_bodies(change: BodyChange, world: World) -> None:
    """Raise InvalidRequest for a change that does nothing, spawns one id twice, or spawns
    a body outside its region (`world` says where the region is)."""
    if not change.spawn and not change.remove:
        raise InvalidRequest("spawn", [], "nothing to spawn or remove")
    bounds = world.bounds(change.region)
    seen: set[str] = set()
    for index, body in enumerate(change.spawn):
        if body.id in seen:
            raise InvalidRequest(f"spawn.{index}.id", body.id, "spawned twice in one call")
        seen.add(body.id)
        for axis, value, low, high in (("x", body.x, bounds.x0, bounds.x1),
                                       ("y", body.y, bounds.y0, bounds.y1)):
            if not low <= value <= high:
                raise InvalidRequest(f"spawn.{index}.{axis}", value,
                                     f"outside region {change.region} ({low:g} to {high:g})")


def body_change(region: str, spawn: Sequence[Mapping[str, Any]], remove: Sequence[str],
                world_size: float) -> tuple[str, list[list[Any]], list[str]]:
    """A change of `region`'s bodies, checked (`check_bodies`), in its wire form: the region,
    ``[id, x, y, vx, vy, radius, mass]`` per spawn, and the ids to remove."""
    req = parse(BodyChange, {"region": region, "spawn": list(spawn), "remove": list(remove)})
    check_bodies(req, World(size=world_size))
    spawns = [[b.id, b.x, b.y, b.vx, b.vy, b.radius, b.mass] for b in req.spawn]
    return req.region, spawns, req.remove


class AiDecision(StrictRequest):
    """One NPC decision."""

    npc_id: str = Id
    position: tuple[Number, Number]
    players: list[tuple[Number, Number]] = Field(default_factory=list, max_length=SEEN_MAX)
    tier: Annotated[Tier, Strict(False)] | None = None


class BackgroundJob(StrictRequest):
    """Background work: a snapshot of sessions or a batch of analytics events."""

    kind: Annotated[BackgroundKind, Strict(False)]
    payload: list[Any] = Field(max_length=10_000)


def check_update(seq: Any, state: Any) -> dict[str, Any]:
    """A state update's fields (a copy of `state`), or InvalidRequest naming ``seq`` or
    ``state.<field>``: fast validation of the hot path (no model object per update)."""
    if not isinstance(seq, int) or isinstance(seq, bool) or seq < 1:
        raise InvalidRequest("seq", seq, "expected an integer >= 1")
    if not isinstance(state, dict):
        raise InvalidRequest("state", state, "expected a mapping of fields")
    for key, value in state.items():
        if not isinstance(key, str) or key == POSITION_FIELD:
            raise InvalidRequest(f"state.{key}", value, "field names are strings other "
                                 f"than {POSITION_FIELD!r} (use position=)")
        if isinstance(value, float) and not math.isfinite(value):
            raise InvalidRequest(f"state.{key}", value, "expected a finite number")
    return dict(state)


def check_decision(npc_id: Any, position: Any, players: Any, world: float,
                   tier: Any = None) -> list[Any]:
    """One NPC decision's task arguments, ``[npc_id, [x, y], [[x, y], ...]]`` and its
    tier when given (``full``, ``reduced``, ``minimal``: `app.ai.tiers`), every position
    inside the square `world`; or InvalidRequest naming the field."""
    if tier is None and (args := _plain_decision(npc_id, position, players, world)):
        return args
    req = parse(AiDecision, {"npc_id": npc_id, "position": position,
                             "players": players or [], "tier": tier})
    check_position("position", req.position, world)
    for i, p in enumerate(req.players):
        check_position(f"players.{i}", p, world)
    args = [req.npc_id, list(req.position), [list(p) for p in req.players]]
    return args if req.tier is None else [*args, req.tier.value]


def _plain_decision(npc_id: Any, position: Any, players: Any,
                    world: float) -> list[Any] | None:
    """`check_decision`'s arguments without a model object when every field is plainly
    valid, the AI loop's case each tick for every NPC; None for anything else, which the
    model then checks and names.  It accepts nothing `AiDecision` refuses: exact types
    only (an id `str`, a `tuple` per position, a `list` of players)."""
    if type(npc_id) is not str or len(npc_id) > 64 or _ID.fullmatch(npc_id) is None:
        return None
    if not _inside(position, world):
        return None
    if players is None:
        players = []
    elif type(players) is not list or len(players) > SEEN_MAX:
        return None
    seen = []
    for p in players:  # `_inside`, inlined: up to 256 a decision, every NPC every tick
        if type(p) is not tuple or len(p) != 2:
            return None
        x, y = p
        if (type(x) not in _NUMBERS or type(y) not in _NUMBERS
                or not (0.0 <= x <= world and 0.0 <= y <= world)):
            return None
        seen.append([x, y])
    return [npc_id, [position[0], position[1]], seen]


def _inside(point: Any, world: float) -> bool:
    """Whether `point` is a tuple of two plain numbers inside the square `world`."""
    if type(point) is not tuple or len(point) != 2:
        return False
    x, y = point
    return (type(x) in _NUMBERS and type(y) in _NUMBERS
            and 0.0 <= x <= world and 0.0 <= y <= world)  # NaN fails both comparisons


def check_decisions(decisions: Any, world: float) -> list[list[Any]]:
    """The task arguments of each ``(npc_id, position, players)`` of one AI tick (1 to
    AI_BATCH_MAX of them); a bad one raises InvalidRequest naming it
    (``decisions.3.position``)."""
    if isinstance(decisions, (str, bytes)) or not isinstance(decisions, Sequence):
        raise InvalidRequest("decisions", decisions, "expected a sequence of decisions")
    if not 1 <= len(decisions) <= AI_BATCH_MAX:
        raise InvalidRequest("decisions", len(decisions),
                             f"expected 1 to {AI_BATCH_MAX} decisions")
    return [decision_at(i, call, world) for i, call in enumerate(decisions)]


def decision_at(index: int, call: Any, world: float, field: str = "decisions") -> list[Any]:
    """`check_decision` of the `index`-th of a sequence (`field`): errors name it
    (``decisions.3.position``)."""
    if isinstance(call, (str, bytes)) or not isinstance(call, Sequence) or len(call) not in (3, 4):
        raise InvalidRequest(f"{field}.{index}", call,
                             "expected (npc_id, position, players) or with a tier")
    try:
        return check_decision(call[0], call[1], call[2], world,
                              call[3] if len(call) > 3 else None)
    except InvalidRequest as exc:
        raise InvalidRequest(f"{field}.{index}.{exc.field}", exc.value, exc.reason) from None
