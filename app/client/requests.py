"""Validated request shapes of the client API (sessions, state updates, physics, AI,
background work).  Bad input raises InvalidRequest naming the field and the value; nothing
is enqueued."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import Field, Strict, StrictInt

from app.protocol.vocab import BackgroundKind, SessionType
from app.validation import FRAME_MAX, Id, Number, RegionId, StrictRequest


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


class AiDecision(StrictRequest):
    """One NPC decision."""

    npc_id: str = Id
    position: tuple[Number, Number]
    players: list[tuple[Number, Number]] = Field(default_factory=list, max_length=256)


class BackgroundJob(StrictRequest):
    """Background work: a snapshot of sessions or a batch of analytics events."""

    kind: Annotated[BackgroundKind, Strict(False)]
    payload: list[Any] = Field(max_length=10_000)
