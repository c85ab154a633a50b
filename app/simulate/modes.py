"""The systems a simulation compares: gamesched, and the two baselines it is judged by.

``naive`` is Celery as its documentation leads a team to write it: one task per state
update, physics region and NPC decision, sent as JSON to the default queue and applied in
Python, consumed by one prefork worker with a process per core at Celery's default prefetch
and early acks.  ``unscheduled`` is gamesched without its scheduling: gamesched's own
client (coalesced msgpack batches applied by the state script) and its per-role workers,
everything on the default queue at Celery's defaults: an ablation that shows what the
scheduling alone is worth.  ``unthrottled`` is gamesched with its game servers ignoring
the controller's AI tier cap: what AI would cost without throttling (the report's
``ai.reduction``).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from app.client.api import GameClient
from app.client.textbook import TextbookClient
from app.fleet.roles import WORKER_ROLES
from app.protocol.vocab import RoleName
from app.settings import Settings
from app.tasking.factory import GameschedCelery

# Nodes per role (one by default): a killed node's twin serves.  Two player processes also
# get twice the CPU share of one under contention, and players wait less
# (docs/measurements.md).
REPLICAS = {RoleName.TRANSACTIONS.value: 2, RoleName.PLAYER.value: 2}


@dataclass(frozen=True)
class Mode:
    """How one system is set up for a run."""

    name: str
    label: str
    roles: tuple[str, ...]
    naive: bool = False
    textbook: bool = False
    replicas: dict[str, int] = field(default_factory=lambda: dict(REPLICAS))
    overrides: dict[str, Any] = field(default_factory=dict)  # settings of its own

    def settings(self, base: Settings, **changes: Any) -> Settings:
        """`base` set up for this system, with `changes`."""
        return base.model_copy(update={"naive": self.naive, "textbook": self.textbook,
                                       **self.overrides, **changes})

    def client(self, app: GameschedCelery, settings: Settings) -> GameClient | TextbookClient:
        """The client a game server of this system calls."""
        return TextbookClient(app, settings) if self.textbook else GameClient(app, settings)


GAMESCHED = Mode("gamesched", "gamesched", (*WORKER_ROLES, RoleName.CONTROL))
MODES = {mode.name: mode for mode in (
    GAMESCHED,
    Mode("naive", "naive Celery", (RoleName.ALL.value,), naive=True, textbook=True,
         replicas={}),
    Mode("unscheduled", "gamesched unscheduled", WORKER_ROLES, naive=True),
    Mode("unthrottled", "gamesched, AI unthrottled", GAMESCHED.roles,
         overrides={"ai_throttle": False}),
)}
BASELINES = tuple(name for name in MODES if name != GAMESCHED.name)
