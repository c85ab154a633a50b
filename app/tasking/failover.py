"""Taking over from server instances that went silent (stopped, crashed, or cut off).

Each controller tick, every registered instance not heard from within
`GAMESCHED_INSTANCE_TTL_S` is drained: its sessions move where they would be placed
without it (game servers follow within a fraction of a second, `GameClient.follow_moves`;
their new instances take their state, `app.tasking.arrivals`),
and whatever waits in its queue is forwarded to the shared player queue, which every
instance serves.  Forwarded updates may be applied after newer ones of their sessions; the
state store keeps each field's newest value, so none is lost.  An instance silent for
`FORGET_AFTER_S` with nothing left is forgotten.  An instance taken over is fenced first
(`Registry.fence`): when it comes back, its heartbeats and its writes to session state are
refused (and counted) until it starts again, as its worker then does by itself.
"""

from __future__ import annotations

from dataclasses import dataclass

from app.instances.base import InstanceState
from app.protocol.queues import INSTANCE_QUEUES, instance_queue
from app.tasking.arrivals import send_arrivals
from app.tasking.broker import forward, waiting
from app.tasking.factory import GameschedCelery

FORGET_AFTER_S = 60.0


@dataclass(frozen=True)
class Takeover:
    """What was taken from one silent instance."""

    state: InstanceState  # as the takeover found it
    moved: int  # sessions moved to other instances
    stayed: int  # sessions no other instance had room for
    forwarded: int  # messages moved from its queues to the shared ones

    @property
    def instance(self) -> str:
        """The instance taken over."""
        return self.state.name

    @property
    def why(self) -> str:
        """Why it was taken over: it left (a warm shutdown), or how long it was silent."""
        return "left" if self.state.left else f"silent for {self.state.silent_s:.1f} s"


def take_over(app: GameschedCelery) -> list[Takeover]:
    """Drain every silent instance and forward what waits in its queues; returns what was
    taken, instance by instance (none when every instance answers)."""
    registry = app.runtime.instances
    taken = []
    for state in registry.instances():
        if state.live:
            continue
        queues = [(instance_queue(q, state.name), q.value) for q in INSTANCE_QUEUES]
        if state.sessions or any(waiting(app, source).messages for source, _ in queues):
            registry.fence(state.name)  # back, its writes are refused until it restarts
        moves = registry.drain(state.name) if state.sessions else []
        send_arrivals(app, moves)  # their new instances take their state at once
        moved = len(moves)
        forwarded = sum(forward(app, source, target) for source, target in queues)
        if moved or forwarded or state.sessions:
            taken.append(Takeover(state, moved, state.sessions - moved, forwarded))
        elif _forgettable(state):
            registry.forget(state.name)
    return taken


def _forgettable(state: InstanceState) -> bool:
    return state.sessions == 0 and state.silent_s > FORGET_AFTER_S
