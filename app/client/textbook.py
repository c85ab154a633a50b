"""The textbook baseline's client: Celery as its documentation leads a team to use it.

Every call sends at once with ``app.send_task``: one task per state update, per physics
region of a frame and per NPC decision, as JSON, to the default queue (the app's
configuration names it: ``celery`` under ``GAMESCHED_NAIVE`` and ``GAMESCHED_TEXTBOOK``),
without a priority, coalescing, session affinity or priority inheritance.  Input is checked
as `app.client.api.GameClient` checks it (InvalidRequest names the field; nothing is sent),
and every message carries the hand-off header, so the workers time it as they time
gamesched's.  The method surface is the one the simulator's load driver calls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from celery.result import AsyncResult
from kombu.exceptions import EncodeError

from app.ai.tiers import Tier
from app.client.npcs import AI_TICK_HZ, AiLoop
from app.client.requests import (
    BACKGROUND_TASKS,
    AiCall,
    BackgroundJob,
    CloseSession,
    FrameStep,
    OpenSession,
    SessionChange,
    body_change,
    check_decisions,
    check_update,
    session_move,
)
from app.errors import InvalidRequest
from app.players import sessions, wire
from app.protocol.names import (
    AI_TASK,
    HANDOFF_HEADER,
    PHYSICS_BODIES_TASK,
    PHYSICS_REGION_TASK,
    SENT_HEADER,
    SESSION_TASK,
    STATE_TASK,
)
from app.protocol.vocab import SessionOp
from app.settings import Settings
from app.tasking.factory import GameschedCelery
from app.tasking.publish import connect
from app.validation import check_position, parse


class TextbookClient:
    """What a game server written from Celery's documentation calls.  Thread-safe."""

    def __init__(self, app: GameschedCelery, settings: Settings | None = None) -> None:
        self.app = app
        self.settings: Settings = settings or app.runtime.settings
        self.tasks_sent = 0
        self.move_tasks_sent = 0  # the tasks `move_session` sent
        # Called with each update's task id and ``[entry]`` once it is sent (entry[0] the
        # session, entry[1] the seq), as GameClient calls it per batch.
        self.batch_listener: Callable[[str, list[wire.Entry]], None] | None = None
        self.ai_listener: Callable[[str, list[list[Any]]], None] | None = None  # as GameClient's
        self._lock = threading.Lock()

    @property
    def send_failures(self) -> int:
        """Sends that failed without raising: none here, every send raises its failure."""
        return 0

    @property
    def first_send_failure(self) -> str:
        """The first of `send_failures`: none here."""
        return ""

    def connect(self) -> None:
        """Connect to the broker at boot, as `GameClient.connect` does."""
        connect(self.app)

    def close(self) -> None:
        """Nothing to send or stop: every call has sent its work."""

    def flush(self) -> int:
        """Nothing is buffered; returns 0."""
        return 0

    # sessions ---------------------------------------------------------------------------

    def open_session(self, session_id: str, **spec: Any) -> AsyncResult:
        """Open a session: its hot state is ready for updates at once; the worker records
        it in SQL and restores its last snapshot.  Idempotent."""
        req = parse(OpenSession, {"session_id": session_id, **spec})
        sessions.ensure_state(self.app.runtime.hot, session_id)
        body = req.model_dump(exclude={"session_id"}) | {"instance_id": self.settings.instance_id}
        return self._send(SESSION_TASK, [SessionOp.OPEN.value, session_id, body])

    def adopt_session(self, session_id: str, **spec: Any) -> None:
        """Take over a session already open on the fleet: nothing to track or send here
        (this client keeps no session table); the spec is checked as `open_session` does."""
        parse(OpenSession, {"session_id": session_id, **spec})

    def release_sessions(self, session_ids: Sequence[str]) -> int:
        """Hand sessions over to another game server: nothing to forget here (this client
        keeps no session table); returns 0."""
        return 0

    def update_session(self, session_id: str, **changes: Any) -> AsyncResult:
        """Change a session's type, players or region in SQL."""
        req = parse(SessionChange, {"session_id": session_id, **changes})
        body = req.model_dump(exclude={"session_id"}, exclude_none=True)
        return self._send(SESSION_TASK, [SessionOp.UPDATE.value, session_id, body])

    def move_session(self, session_id: str, region: str) -> None:
        """A session's players are now in `region`: one session update task, at once."""
        session_id, region = session_move(session_id, region)
        self._send(SESSION_TASK, [SessionOp.UPDATE.value, session_id, {"region": region}])
        with self._lock:
            self.move_tasks_sent += 1

    def close_session(self, session_id: str) -> AsyncResult:
        """Close a session.  Idempotent on the worker."""
        parse(CloseSession, {"session_id": session_id})
        return self._send(SESSION_TASK, [SessionOp.CLOSE.value, session_id, {}])

    # work -------------------------------------------------------------------------------

    def submit_update(self, session_id: str, seq: int, state: dict[str, Any],
                      position: tuple[float, float] | None = None) -> AsyncResult:
        """Send one state update as a task of its own; the worker skips it if a newer one
        of its session was applied first."""
        parse(CloseSession, {"session_id": session_id})  # the session id's checks
        fields = check_update(seq, state)
        where = None
        if position is not None:
            check_position("position", position, self.settings.world_size)
            where = [float(position[0]), float(position[1])]
        try:
            result = self._send(STATE_TASK, [session_id, seq, fields, where])
        except EncodeError as exc:
            raise InvalidRequest("state", state, f"expected JSON values ({exc})") from None
        listener = self.batch_listener
        if listener is not None:
            listener(str(result.id), [[session_id, seq]])
        return result

    def submit_physics_frame(self, frame: int, regions: Mapping[str, int],
                             dt_ms: float = 16.0) -> list[AsyncResult]:
        """Send one frame as one task per region (region -> bodies); their handles in
        the order of `regions`."""
        if not isinstance(regions, Mapping):
            raise InvalidRequest("regions", regions, "expected a mapping of region to bodies")
        req = parse(FrameStep, {"frame": frame, "dt_ms": dt_ms, "regions": dict(regions)})
        handoff = time.time()
        return [self._send(PHYSICS_REGION_TASK, [region, req.frame, float(req.dt_ms), bodies],
                           handoff)
                for region, bodies in req.regions.items()]

    def change_bodies(self, region: str, spawn: Sequence[Mapping[str, Any]] = (),
                      remove: Sequence[str] = ()) -> AsyncResult:
        """Send one change of a region's bodies (checked as `GameClient.change_bodies`
        checks it), to whichever physics worker takes it."""
        args = body_change(region, spawn, remove, self.settings.world_size)
        return self._send(PHYSICS_BODIES_TASK, list(args))

    def submit_ai_batch(self, decisions: Sequence[AiCall]) -> list[AsyncResult]:
        """Send the decisions of one AI tick, ``(npc_id, position, players)`` each, as one
        task per decision; their handles in order.  A bad decision raises InvalidRequest
        naming it (``decisions.3.position``); nothing is sent."""
        calls = check_decisions(decisions, self.settings.world_size)
        handoff = time.time()
        return [self._send(AI_TASK, args, handoff) for args in calls]

    def ai_tick(self, tick: int, npcs: Sequence[AiCall], *,
                tick_hz: float = AI_TICK_HZ) -> list[AsyncResult]:
        """One tick of the game server's AI loop, given all its NPCs: each is decided about
        once a second (the minimal tier's rate), whoever sees it, one task per decision;
        their handles.
        Checked as `GameClient.ai_tick` checks them."""
        calls = AiLoop(lambda: Tier.MINIMAL, self.settings.world_size).due(tick, npcs, tick_hz)
        handoff = time.time()
        sent = []
        for args in (args for batch in calls for args in batch):
            sent.append(handle := self._send(AI_TASK, args[:3], handoff))
            if (listener := self.ai_listener) is not None:
                listener(str(handle.id), [args])
        return sent

    def submit_background(self, kind: str, payload: list[Any]) -> AsyncResult:
        """Send background work (``snapshot`` of session ids, or ``analytics`` events)."""
        req = parse(BackgroundJob, {"kind": kind, "payload": payload})
        try:
            return self._send(BACKGROUND_TASKS[req.kind], [req.payload])
        except EncodeError as exc:
            raise InvalidRequest("payload", payload, f"expected JSON values ({exc})") from None

    # sending --------------------------------------------------------------------------

    def _send(self, task: str, args: list[Any], handoff: float | None = None) -> AsyncResult:
        """Send `task` by name with the app's defaults, stamped with when the work was
        handed over (now unless given) and when it was sent."""
        handoff = time.time() if handoff is None else handoff
        headers = {HANDOFF_HEADER: handoff, SENT_HEADER: time.time()}
        result = self.app.send_task(task, args=args, headers=headers)
        with self._lock:
            self.tasks_sent += 1
        return result
