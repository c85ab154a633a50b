"""``gamesched demo``: a few hundred simulated sessions for a few seconds, then a table.

On the embedded default it runs every role in this process on the in-memory broker and
SQLite; with a Redis broker it starts real worker subprocesses.
"""

from __future__ import annotations

import contextlib
import random
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from app.client.api import GameClient
from app.db.migrate import upgrade
from app.fleet.fleets import EmbeddedFleet, ProcessFleet
from app.fleet.roles import WORKER_ROLES
from app.observe.recorder import Execution, Recorder
from app.observe.stats import QueueStats, by_queue, by_task
from app.protocol.names import BEAT_TASKS, SESSION_MOVES_TASK, SESSION_TASK, UPDATE_TASK
from app.protocol.vocab import RoleName
from app.settings import Settings
from app.simulate.population import World
from app.tasking.factory import create_app
from app.tasking.publish import send_tick

REGION_SIZE = 1000.0
PHYSICS_HZ = 20
AI_HZ = 2
UPDATE_HZ = 2.0
SNAPSHOT_EVERY_S = 1.0
PLAYER_PARTS = {UPDATE_TASK: "player: updates", SESSION_TASK: "player: sessions",
                SESSION_MOVES_TASK: "player: sessions"}


@dataclass
class DemoResult:
    """What the demo sent and what the workers reported back."""

    sent: int
    executions: list[Execution] = field(default_factory=list)
    drained: bool = True
    placed: dict[str, int] = field(default_factory=dict)  # sessions per server instance

    @property
    def stats(self) -> dict[str, QueueStats]:
        """Per-queue counts and latencies."""
        return by_queue(self.executions)

    @property
    def player_parts(self) -> list[QueueStats]:
        """The player queue split: state-update batches apart from session open and close
        (which commit to SQL, all at once as the demo's players join and leave)."""
        return by_task(self.executions, PLAYER_PARTS)


@contextlib.contextmanager
def _fleet(settings: Settings, instances: tuple[str, ...]) -> Iterator[None]:
    if settings.embedded:
        with EmbeddedFleet(settings, instances=instances):
            yield
    else:
        env = {"GAMESCHED_RECORD_LATENCY": "true"}
        roles = (*WORKER_ROLES, RoleName.CONTROL)
        with tempfile.TemporaryDirectory(prefix="gamesched-demo-") as logs, ProcessFleet(
            settings, roles=roles, env=env, log_dir=logs, instances=instances,
        ):
            yield


def run_demo(settings: Settings, sessions: int = 300, duration: float = 10.0,
             seed: int = 7, instances: int = 2) -> DemoResult:
    """Run the demo workload against a fleet of `instances` server instances ("i0", "i1",
    ...; 0: one shared player queue) and return what it measured."""
    settings = settings.model_copy(update={"record_latency": True})
    upgrade(settings.database_url)
    app = create_app(settings)
    with _fleet(settings, tuple(f"i{n}" for n in range(instances))):
        recorder = app.runtime.recorder
        recorder.drain()
        load = _DemoLoad(GameClient(app, settings), sessions, random.Random(seed))
        load.open_all()  # sessions open before play starts, as players join a server
        placed = Counter(str(load.client.instance_of(s)) for s in load.sessions)
        opened, _ = _drain(recorder, load.client.tasks_sent, timeout=60.0)
        load.run(duration)
        sent = load.client.tasks_sent
        played, drained = _drain(recorder, sent - counted(opened), timeout=30.0)
    return DemoResult(sent=sent, executions=opened + played, drained=drained,
                      placed=dict(sorted(placed.items())))


def counted(executions: list[Execution]) -> int:
    """Executions of the work the demo sent (on a Redis fleet beat sends the controller's
    ticks and the ledger's sweeps too)."""
    beat = frozenset(BEAT_TASKS.values())
    return sum(e.task not in beat for e in executions)


def _drain(recorder: Recorder, expected: int, timeout: float) -> tuple[list[Execution], bool]:
    got: list[Execution] = []
    deadline = time.monotonic() + timeout
    while counted(got) < expected and time.monotonic() < deadline:
        got.extend(recorder.drain())
        time.sleep(0.05)
    return got, counted(got) >= expected


def _regions(count: int) -> list[str]:
    """`count` regions of the smallest square quadtree grid holding them (names the
    physics director can place)."""
    per_side = 1
    while per_side * per_side < count:
        per_side *= 2
    world = World(float(per_side), per_side)
    return [world.name(i) for i in range(count)]


class _DemoLoad:
    """Seeded sessions that move, NPCs that watch them, regions that step."""

    def __init__(self, client: GameClient, sessions: int, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.tag = uuid.uuid4().hex[:6]
        self.sessions = [f"demo-{self.tag}-{i}" for i in range(sessions)]
        self.regions = _regions(max(1, sessions // 100))
        self.positions = {s: (rng.uniform(0, REGION_SIZE), rng.uniform(0, REGION_SIZE))
                          for s in self.sessions}
        self.seq = dict.fromkeys(self.sessions, 0)
        # Embedded, the demo stands in for beat; on Redis the fleet's controller ticks.
        self.tick_itself = client.settings.embedded

    def open_all(self) -> None:
        """Open every session."""
        for i, session in enumerate(self.sessions):
            region = self.regions[i % len(self.regions)]
            self.client.open_session(session, session_type="casual", region=region)

    def run(self, duration: float) -> None:
        """Drive the workload for `duration` seconds, then close every session."""
        start = time.monotonic()
        frame, next_snapshot = 0, start
        while (now := time.monotonic()) - start < duration:
            self._frame(frame, now >= next_snapshot)
            if now >= next_snapshot:
                next_snapshot += SNAPSHOT_EVERY_S
            frame += 1
            time.sleep(max(0.0, start + frame / PHYSICS_HZ - time.monotonic()))
        for session in self.sessions:
            self.client.close_session(session)
        self.client.close()

    def _frame(self, frame: int, snapshot: bool) -> None:
        for session in self.sessions:
            if self.rng.random() < UPDATE_HZ / PHYSICS_HZ:
                self._update(session)
        self.client.submit_physics_frame(frame, dict.fromkeys(self.regions, 40),
                                         1000 / PHYSICS_HZ)
        if frame % (PHYSICS_HZ // AI_HZ) == 0:  # a tick of the AI loop: those due, by tier
            seen = list(self.positions.values())[:8]
            self.client.ai_tick(frame // (PHYSICS_HZ // AI_HZ),
                                [(f"npc-{npc}", self._somewhere(), seen)
                                 for npc in range(len(self.regions) * 10)], tick_hz=AI_HZ)
        if snapshot and self.tick_itself:
            send_tick(self.client.app)
        if snapshot:
            self.client.submit_background("snapshot", self.sessions[:100])
            self.client.submit_background("analytics", [{"kind": "tick"}] * 50)

    def _update(self, session: str) -> None:
        x, y = self.positions[session]
        x = min(REGION_SIZE, max(0.0, x + self.rng.uniform(-5, 5)))
        y = min(REGION_SIZE, max(0.0, y + self.rng.uniform(-5, 5)))
        self.positions[session] = (x, y)
        self.seq[session] += 1
        state = {"x": round(x, 1), "y": round(y, 1), "hp": 100}
        self.client.submit_update(session, self.seq[session], state, (x, y))

    def _somewhere(self) -> tuple[float, float]:
        return (self.rng.uniform(0, REGION_SIZE), self.rng.uniform(0, REGION_SIZE))
