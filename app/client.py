"""The client API a game server imports: sessions, state updates, physics, AI, purchases.

Every call validates its input (InvalidRequest names the field; nothing is enqueued),
classifies the work and routes it to its queue at its priority.
"""

from __future__ import annotations

import threading
import time
from typing import Any

from celery import Celery
from celery.result import AsyncResult

from app.coalesce import Coalescer
from app.metrics import metrics
from app.priority import Route, route
from app.requests import (
    AiDecision,
    BackgroundJob,
    CloseSession,
    OpenSession,
    PhysicsStep,
    StateUpdate,
    check_position,
    parse,
)
from app.settings import Settings
from app.tasking import HANDOFF_HEADER


class GameClient:
    """What a game server calls.  One per process; thread-safe."""

    def __init__(self, app: Celery, settings: Settings | None = None) -> None:
        self.app = app
        self.settings: Settings = settings or app.runtime.settings
        self.tasks_sent = 0
        self._count_lock = threading.Lock()
        self._updates = Coalescer(self._send_updates, self.settings.tick_ms / 1000.0)

    def close(self) -> None:
        """Send the updates still buffered and stop the coalescing thread."""
        self._updates.close()

    def flush(self) -> int:
        """Send the buffered state updates now; returns how many went."""
        return self._updates.flush()

    def open_session(self, session_id: str, **spec: Any) -> AsyncResult:
        """Open a session on this instance (idempotent on the worker)."""
        req = parse(OpenSession, {"session_id": session_id, **spec})
        body = req.model_dump(exclude={"session_id"}) | {"instance_id": self.settings.instance_id}
        return self._send(route("gamesched.player.session_op"), ["open", session_id, body])

    def close_session(self, session_id: str) -> AsyncResult:
        """Close a session (idempotent on the worker)."""
        parse(CloseSession, {"session_id": session_id})
        return self._send(route("gamesched.player.session_op"), ["close", session_id, {}])

    def submit_update(self, session_id: str, seq: int, state: dict[str, Any],
                      position: tuple[float, float] | None = None) -> None:
        """Accept one state update of a session; it leaves with this tick's batch and is
        applied in `seq` order per session."""
        req = parse(StateUpdate, {"session_id": session_id, "seq": seq, "state": state,
                                  "position": position})
        check_position("position", req.position, self.settings.world_size)
        self._updates.add({"session": req.session_id, "seq": req.seq, "state": req.state})

    def _send_updates(self, batch: list[dict[str, Any]], oldest: float) -> None:
        self._send(route("gamesched.player.apply_updates", critical=True), [batch], oldest)

    def submit_physics(self, region: str, frame: int, dt_ms: float = 16.0,
                       bodies: int = 0) -> AsyncResult:
        """Send one frame of one region to the physics fleet."""
        req = parse(PhysicsStep, {"region": region, "frame": frame, "dt_ms": dt_ms,
                                  "bodies": bodies})
        args = [req.region, req.frame, float(req.dt_ms), req.bodies]
        return self._send(route("gamesched.physics.step_region"), args)

    def submit_ai(self, npc_id: str, position: tuple[float, float],
                  players: list[tuple[float, float]] | None = None) -> AsyncResult:
        """Send one NPC decision to the AI fleet."""
        req = parse(AiDecision, {"npc_id": npc_id, "position": position,
                                 "players": players or []})
        check_position("position", req.position, self.settings.world_size)
        for i, p in enumerate(req.players):
            check_position(f"players.{i}", p, self.settings.world_size)
        args = [req.npc_id, list(req.position), [list(p) for p in req.players]]
        return self._send(route("gamesched.ai.decide"), args)

    def submit_background(self, kind: str, payload: list[Any]) -> AsyncResult:
        """Send background work (``snapshot`` of session ids, or ``analytics`` events)."""
        req = parse(BackgroundJob, {"kind": kind, "payload": payload})
        return self._send(route(f"gamesched.background.{req.kind}"), [req.payload])

    def _send(self, where: Route, args: list[Any], handoff: float | None = None) -> AsyncResult:
        headers = {HANDOFF_HEADER: handoff or time.time()}
        if self.settings.naive:  # the baseline sends as plain Celery would
            result = self.app.send_task(where.task, args=args, headers=headers)
        else:
            result = self.app.send_task(where.task, args=args, queue=where.queue.value,
                                        priority=where.priority, headers=headers)
        metrics().enqueued.labels(where.queue.value).inc()
        with self._count_lock:
            self.tasks_sent += 1
        return result
