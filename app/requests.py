"""Validated request shapes for the client API.  Bad input raises InvalidRequest naming the
field and the value; nothing is enqueued."""

from __future__ import annotations

from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StringConstraints,
    ValidationError,
)

from app.errors import InvalidRequest

ID_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
Id = Field(min_length=1, max_length=64, pattern=ID_PATTERN)
RegionId = Annotated[str, StringConstraints(min_length=1, max_length=64, pattern=ID_PATTERN)]
SessionType = Literal["ranked", "casual", "coop", "spectator", "lobby"]
Number = StrictInt | StrictFloat
FRAME_MAX = 2**63 - 1  # a frame counter is a signed 64-bit integer on the wire


class _Request(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class OpenSession(_Request):
    """Open a session on this instance."""

    session_id: str = Id
    session_type: SessionType = "casual"
    players: StrictInt = Field(default=1, ge=1, le=1000)
    region: str | None = Field(default=None, min_length=1, max_length=64)


class SessionChange(_Request):
    """Change a session's priority factors: a match starts, players join or leave."""

    session_id: str = Id
    session_type: SessionType | None = None
    players: StrictInt | None = Field(default=None, ge=1, le=1000)
    region: str | None = Field(default=None, min_length=1, max_length=64)


class CloseSession(_Request):
    """Close a session."""

    session_id: str = Id


class StateUpdate(_Request):
    """One player's state change; `seq` grows per session."""

    session_id: str = Id
    seq: StrictInt = Field(ge=1)
    state: dict[str, Any]
    position: tuple[Number, Number] | None = None


class PhysicsStep(_Request):
    """One frame of one region."""

    region: str = Id
    frame: StrictInt = Field(ge=0, le=FRAME_MAX)
    dt_ms: Number = Field(default=16.0, gt=0, le=100)
    bodies: StrictInt = Field(default=0, ge=0, le=5000)


class FrameStep(_Request):
    """One frame of several regions: region -> bodies."""

    frame: StrictInt = Field(ge=0, le=FRAME_MAX)
    dt_ms: Number = Field(default=16.0, gt=0, le=100)
    regions: dict[RegionId, Annotated[StrictInt, Field(ge=0, le=5000)]] = Field(
        min_length=1, max_length=1024)


class AiDecision(_Request):
    """One NPC decision."""

    npc_id: str = Id
    position: tuple[Number, Number]
    players: list[tuple[Number, Number]] = Field(default_factory=list, max_length=256)


class Purchase(_Request):
    """A purchase: the player pays `price` of `currency` for `sku`."""

    player_id: str = Id
    sku: str = Id
    price: StrictInt = Field(gt=0, le=10**9)
    currency: str = Field(min_length=1, max_length=16)
    idempotency_key: str = Field(min_length=1, max_length=128)


class BackgroundJob(_Request):
    """Background work: a snapshot of sessions or a batch of analytics events."""

    kind: Literal["snapshot", "analytics"]
    payload: list[Any] = Field(max_length=10_000)


R = TypeVar("R", bound=BaseModel)


def parse(model: type[R], data: dict[str, Any]) -> R:
    """Build `model` from `data`, or raise InvalidRequest naming the first bad field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(part) for part in error["loc"]) or model.__name__
        raise InvalidRequest(field, error.get("input"), error["msg"]) from None


def check_position(field: str, position: Any, world: float) -> None:
    """Raise InvalidRequest unless `position` is an (x, y) pair inside the square world."""
    if position is None:
        return
    try:
        x, y = position
    except (TypeError, ValueError):
        raise InvalidRequest(field, position, "expected an (x, y) pair of numbers") from None
    if type(x) not in (int, float) or type(y) not in (int, float):
        raise InvalidRequest(field, position, "expected an (x, y) pair of numbers")
    if not (0.0 <= x <= world and 0.0 <= y <= world):  # NaN fails both comparisons
        raise InvalidRequest(field, position, f"outside the world [0, {world}]")
