"""Validating what callers send: strict request models, ids, positions.  Bad input raises
InvalidRequest naming the field and the value, before anything is enqueued or written."""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

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
Number = StrictInt | StrictFloat
FRAME_MAX = 2**63 - 1  # a frame counter is a signed 64-bit integer on the wire


class StrictRequest(BaseModel):
    """Base of request models: no unknown fields, no type coercion, immutable."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


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
