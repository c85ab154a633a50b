"""Typed settings: the only source of configuration (environment prefix ``GAMESCHED_``).

Nested values use ``__``: ``GAMESCHED_PLAYER__CONCURRENCY=8``.  An invalid or unknown value
stops start-up with a ConfigError naming the variable and the value.
"""

from __future__ import annotations

import json
import os
import socket
from functools import lru_cache
from typing import Annotated, Any, Literal
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    Field,
    StringConstraints,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_settings import BaseSettings, SettingsConfigDict
from sqlalchemy import make_url
from sqlalchemy.exc import ArgumentError

from app.errors import ConfigError
from app.protocol.queues import INSTANCE_NAME
from app.protocol.vocab import CpuPolicy, SessionType

ENV_PREFIX = "GAMESCHED_"
# How much a session of each type weighs in its work's priority (GAMESCHED_SESSION_WEIGHTS).
DEFAULT_SESSION_WEIGHTS: dict[str, float] = {
    SessionType.RANKED.value: 1.0,
    SessionType.COOP.value: 0.8,
    SessionType.CASUAL.value: 0.6,
    SessionType.SPECTATOR.value: 0.3,
    SessionType.LOBBY.value: 0.2,
}


class RoleBudget(BaseModel):
    """Concurrency, memory budget, CPU niceness and CPU scheduling policy of one role.

    The worker's OS scheduling niceness is raised to `nice`: when the machine runs out of
    CPU, the kernel gives it to the player-facing roles (nice 0) before the AI and
    background roles.  `cpu_policy` is the Linux scheduling policy: ``batch`` never
    preempts a running process when it wakes; ``idle`` runs only on CPU time nothing else
    wants and gives the CPU up when a normal process wakes, so background work yields to
    the players' (it still shares caches, memory bandwidth and the hot store with them).
    """

    concurrency: int = Field(ge=1, le=256)
    memory_mb: int = Field(ge=32, le=65536)
    nice: int = Field(default=0, ge=0, le=19)
    cpu_policy: CpuPolicy = CpuPolicy.NORMAL


class Settings(BaseSettings):
    """Everything gamesched can be told, with defaults that run on a fresh machine."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        nested_model_default_partial_update=True,
        extra="forbid",
        frozen=True,
    )

    broker_url: str = "memory://"
    # The Redis of hot session state, control decisions, claims and counters; the broker's
    # when unset.  A Redis of its own runs the state scripts without delaying deliveries.
    hot_url: str | None = None
    # The hot store's name in SQL's state log, whose rows each belong to the store their
    # batch was applied to (unset: `hot_store_name` derives it from the hot store's URL).
    # Every worker of one hot store must use the same; set it to keep a hot Redis's log
    # rows when that Redis moves to another address.
    hot_store: str | None = Field(default=None, min_length=1, max_length=255,
                                  pattern=r"^\S(.*\S)?$")
    result_backend: str | None = None
    database_url: str = "sqlite:///gamesched.db"
    # This server instance's name: its player queue is ``player.<instance_id>``.
    instance_id: str = Field(default_factory=socket.gethostname, min_length=1, max_length=64,
                             pattern=INSTANCE_NAME)
    # Server instances (app.instances): the sessions one takes, how often its player worker
    # says it is alive, and how long a silent one keeps getting new sessions.
    instance_capacity: int = Field(default=5000, ge=1, le=1_000_000)
    instance_heartbeat_s: float = Field(default=1.0, gt=0.0, le=60.0)
    instance_ttl_s: float = Field(default=3.0, gt=0.0, le=600.0)
    # How often each player worker writes the batches it applied to SQL's state log: an
    # applied update is durable within about this plus one write; and how often the
    # changed sessions' state is written to SQL as snapshots, after which the log rows they
    # cover are deleted (app.players.durable).
    write_behind_ms: int = Field(default=1000, ge=10, le=60_000)
    snapshot_ms: int = Field(default=10_000, ge=10, le=600_000)
    # The state log rows of a hot store that has logged nothing this long (its instance
    # gone for good) are deleted by another store's round; 0 keeps them.
    state_log_retention_s: int = Field(default=86_400, ge=0)

    player: RoleBudget = RoleBudget(concurrency=4, memory_mb=256)
    physics: RoleBudget = RoleBudget(concurrency=2, memory_mb=512)
    # Physics units: worker processes with a queue each (physics.0, physics.1, ...), among
    # which the owner map shares the world's regions; a region's space lives on its unit.
    physics_units: int = Field(default=2, ge=1, le=64)
    # How long a game server's client keeps the owner map before reading it again: after a
    # move, its frames may reach the unit a region left for this long (skipped there).
    physics_map_ttl_ms: float = Field(default=100.0, ge=0.0, le=10_000.0)
    # Level of detail (app.physics.detail): the game server's physics frame rate, at which
    # regions with players step; regions within `near_hops` of them step at `near_hz`, the
    # others at `far_hz` (0: not at all until a player comes near).
    physics_frame_hz: float = Field(default=60.0, gt=0.0, le=1000.0)
    physics_near_hz: float = Field(default=20.0, ge=0.0, le=1000.0)
    physics_far_hz: float = Field(default=2.0, ge=0.0, le=1000.0)
    physics_near_hops: int = Field(default=1, ge=0, le=16)
    # AI at the players' CPU priority: the controller bounds its CPU (tiers, slots), and a
    # lower niceness starved its guaranteed minimum on a busy machine (measurements.md).
    ai: RoleBudget = RoleBudget(concurrency=2, memory_mb=384)
    transactions: RoleBudget = RoleBudget(concurrency=8, memory_mb=256)  # applies wait on commits
    background: RoleBudget = RoleBudget(concurrency=1, memory_mb=256, nice=10,
                                        cpu_policy="idle")
    # The controller (beat and the control worker), and one process that runs every role
    # (``gamesched worker --role all``, and the embedded fleet with the command using it).
    control: RoleBudget = RoleBudget(concurrency=1, memory_mb=256)
    all: RoleBudget = RoleBudget(concurrency=6, memory_mb=1024)

    cpu_cap: float = Field(default=0.80, gt=0.0, le=1.0)
    # A state batch later than this (hand-off to applied) slows background work down.
    player_target_ms: float = Field(default=20.0, gt=0.0, le=10_000.0)
    # A state batch later than this (hand-off to applied) counts as late for the
    # controller's ladder: a run of ticks with late batches degrades AI and physics detail
    # even with CPU to spare.  30 ms: the product's 50 ms from the player's act, less the
    # batch window (20 ms) an update may wait in the game server first.
    player_late_ms: float = Field(default=30.0, gt=0.0, le=60_000.0)
    # What CPU the controller reads: the server's processes on its machine (workers,
    # controller, Redis, PostgreSQL), or the whole machine's (a host whose game servers
    # share it with the fleet: throttling the fleet makes room for them).
    controller_cpu: Literal["server", "machine"] = "server"
    tick_ms: float = Field(default=5.0, gt=0.0, le=1000.0)
    # A batch leaves early when it holds this many updates: Redis runs one batch's script at
    # a time and serves nobody else meanwhile, so a bounded batch bounds that wait.
    batch_max_updates: int = Field(default=256, ge=1, le=10_000)
    # A client's batch waits at least this long for more updates (never less than a tick):
    # a batch task costs the workers and the game server about as much for ten updates as
    # for a hundred, so fewer, fuller tasks leave CPU to everything else
    # (docs/measurements.md#headroom-issue-17-where-an-updates-microseconds-go).
    batch_window_min_ms: float = Field(default=20.0, ge=0.0, le=1000.0)
    # While the player queue has batches waiting, the window doubles from its floor up to
    # this; it halves back once a send finds the queue empty.
    batch_window_max_ms: float = Field(default=20.0, gt=0.0, le=1000.0)
    # Above 1, a player worker whose state batch waited in its queue takes the batches
    # waiting behind it, up to this many in all, and applies them in the same task
    # (`app.tasking.gather`): Celery's cost per message is paid once for them.  Off by
    # default: it drains a backlog on less CPU, but took player p99 up at steady load
    # (docs/measurements.md#state-batches-gathered-on-the-worker-issue-17-2026-12-07-afternoon).
    state_batches_per_task: int = Field(default=1, ge=1, le=64)
    # How a player worker takes its messages off a Redis broker: "celery" through Celery's
    # and kombu's consumer, "direct" with threads of its own that pop and run them
    # (`app.tasking.direct`), less CPU per message.  Other roles, and other brokers, always
    # go through Celery's.
    player_consumer: Literal["celery", "direct"] = "celery"
    # Purchases and rewards committed during one transaction tick leave as one apply_batch
    # message: a longer tick than the state updates' so that a surge settles in few large
    # SQL transactions (a Celery message costs a worker CPU and its wallet locks, an intent
    # in a batch a fraction of that), and the workers keep up with a store surge that a
    # shorter tick fell behind (docs/measurements.md).
    transaction_tick_ms: float = Field(default=100.0, gt=0.0, le=1000.0)
    controller_period_s: float = Field(default=1.0, ge=0.5, le=60.0)
    visibility_timeout_s: int = Field(default=120, ge=10, le=86400)
    default_priority: int = Field(default=5, ge=0, le=9)
    # The world's side: positions, NPCs and physics bodies lie in [0, size] on both axes, and
    # the quadtree's regions (app.physics.partition) split it.
    world_size: float = Field(default=10_000.0, ge=100.0, le=10_000_000.0)
    # The NPCs' navigation grid (app.ai.navgrid): the world in square cells of this side
    # (at most 2,048 of them along a side).
    ai_cell_size: float = Field(default=100.0, gt=0.0, le=10_000_000.0)
    # A map of the ground NPCs cannot walk (app.ai.navgrid.load_map): a JSON file of
    # blocked rectangles; none, an open world.
    ai_map: str | None = None
    # Game servers keep the controller's AI tier cap (`GameClient.ai_tick`); off, every NPC
    # gets the tier the players it sees give it, whatever the load.
    ai_throttle: bool = True
    session_weights: dict[str, float] = Field(
        default_factory=lambda: dict(DEFAULT_SESSION_WEIGHTS))
    record_latency: bool = False
    naive: bool = False  # the baseline: Celery as configured by default (one queue, no priority)
    # With `naive`, the textbook plain-Celery baseline: one task per state update, physics
    # region and NPC decision, sent as JSON to the default queue and applied in Python, one
    # prefork worker of the machine's cores at Celery's default prefetch and early acks
    # (`app.client.textbook`, `workers.textbook`).  Ignored without `naive`.
    textbook: bool = False
    # Currencies the ledger accepts (GAMESCHED_CURRENCIES='["gold", "gems"]').
    currencies: tuple[Annotated[str, StringConstraints(pattern=r"^[a-z][a-z0-9_]{0,15}$")], ...] = (
        Field(default=("gold", "gems"), min_length=1))

    @field_validator("batch_window_max_ms")
    @classmethod
    def _window_max_over_min(cls, value: float, info: ValidationInfo) -> float:
        return _bounded(value, info, "batch_window_min_ms", "the window's floor", least=True)

    @field_validator("physics_near_hz")
    @classmethod
    def _near_within_frame(cls, value: float, info: ValidationInfo) -> float:
        return _bounded(value, info, "physics_frame_hz", "the frame rate", least=False)

    @field_validator("physics_far_hz")
    @classmethod
    def _far_within_near(cls, value: float, info: ValidationInfo) -> float:
        return _bounded(value, info, "physics_near_hz", "the near rate", least=False)

    @field_validator("broker_url")
    @classmethod
    def _known_broker(cls, value: str) -> str:
        scheme = value.split("://", 1)[0]
        if scheme not in {"memory", "redis", "rediss", "sqla+sqlite", "sqla+postgresql"}:
            raise ValueError("expected memory://, redis://, rediss:// or sqla+<database url>")
        return value

    @field_validator("hot_url")
    @classmethod
    def _redis_hot_store(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://")):
            raise ValueError("expected redis:// or rediss://, or unset for the broker's")
        return value

    @field_validator("session_weights")
    @classmethod
    def _weights_cover_types(cls, value: dict[str, float]) -> dict[str, float]:
        missing = {t.value for t in SessionType} - set(value)
        if missing:
            raise ValueError(f"missing weights for {', '.join(sorted(missing))}")
        if not all(0.0 <= w <= 1.0 for w in value.values()):
            raise ValueError("weights lie in 0..1")
        return value

    @field_validator("database_url")
    @classmethod
    def _known_database(cls, value: str) -> str:
        if not value.startswith(("sqlite://", "postgresql://", "postgresql+psycopg://")):
            raise ValueError("expected sqlite:///PATH or postgresql+psycopg://...")
        return value

    @property
    def uses_redis(self) -> bool:
        """True when the broker is Redis (real worker subprocesses, Redis hot state)."""
        return self.broker_url.startswith(("redis://", "rediss://"))

    @property
    def hot_store_url(self) -> str:
        """Where hot state lives: `hot_url`, or else the broker."""
        return self.hot_url or self.broker_url

    @property
    def hot_store_name(self) -> str:
        """The hot store's name in SQL's state log: `hot_store`, or else derived from
        `hot_store_url` (`store_name`)."""
        return self.hot_store or store_name(self.hot_store_url)

    @property
    def embedded(self) -> bool:
        """True on the embedded default: in-process broker and workers."""
        return self.broker_url.startswith("memory://")

    def to_env(self) -> dict[str, str]:
        """These settings as GAMESCHED_ variables, so subprocesses run with the same."""
        env: dict[str, str] = {}
        for name, value in self.model_dump(mode="json").items():
            if value is None:
                continue
            if isinstance(value, dict) and name != "session_weights":
                for key, inner in value.items():
                    env[f"{ENV_PREFIX}{name.upper()}__{key.upper()}"] = str(inner)
            elif isinstance(value, dict | list | bool):
                env[f"{ENV_PREFIX}{name.upper()}"] = json.dumps(value)
            else:
                env[f"{ENV_PREFIX}{name.upper()}"] = str(value)
        return env

    def budget(self, role: str) -> RoleBudget:
        """The concurrency and memory budget of a worker role."""
        budget = getattr(self, role, None)
        if not isinstance(budget, RoleBudget):
            raise ConfigError(f"{ENV_PREFIX}{role.upper()}__CONCURRENCY", role, "no such role")
        return budget


def _bounded(value: float, info: ValidationInfo, other: str, what: str, *,
             least: bool) -> float:
    """`value`, or ValueError if it is below (`least`) or above the setting `other`, `what`
    that setting is, validated before it."""
    bound = info.data.get(other)
    if bound is not None and (value < bound if least else value > bound):
        raise ValueError(f"must be at {'least' if least else 'most'} {what}, {other} "
                         f"({bound:g})")
    return value


def load_settings(**overrides: Any) -> Settings:
    """Read settings from the environment (and `overrides`), or raise ConfigError."""
    _reject_unknown_variables()
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise _config_error(exc) from None


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once."""
    return load_settings()


def _reject_unknown_variables() -> None:
    fields = {name.upper() for name in Settings.model_fields}
    for name, value in os.environ.items():
        if not name.startswith(ENV_PREFIX):
            continue
        head = name[len(ENV_PREFIX) :].split("__", 1)[0]
        if head not in fields:
            raise ConfigError(name, value, "unknown setting")


def _config_error(exc: ValidationError) -> ConfigError:
    first = exc.errors()[0]
    loc = [str(part) for part in first["loc"]]
    variable = ENV_PREFIX + "__".join(part.upper() for part in loc)
    value = first.get("input")
    env_value = os.environ.get(variable)
    if env_value is not None and not isinstance(value, str | int | float):
        value = env_value
    return ConfigError(variable, value, first["msg"])


def store_name(url: str) -> str:
    """The name of the hot store at `url`: a Redis URL's scheme, host, port and db
    (``redis://127.0.0.1:6379/0``; never its user or password, and the same however the
    URL spells the defaults), ``memory://`` for anything else (process memory)."""
    parts = urlsplit(url)
    if parts.scheme not in {"redis", "rediss"}:
        return "memory://"
    host = (parts.hostname or "localhost").lower()
    if ":" in host:  # IPv6
        host = f"[{host}]"
    db = parts.path.strip("/") or dict(parse_qsl(parts.query)).get("db") or "0"
    return f"{parts.scheme}://{host}:{_port(parts) or 6379}/{db}"


def _port(parts: SplitResult) -> int | None:
    try:
        return parts.port
    except ValueError:  # not a number: connecting will say so
        return None


def redact(url: str) -> str:
    """`url` with its password shown as ``***`` (SQLAlchemy's rendering for databases)."""
    if url.startswith("sqla+"):
        return "sqla+" + redact(url.removeprefix("sqla+"))
    if url.startswith(("sqlite", "postgresql")):
        try:
            return make_url(url).render_as_string(hide_password=True)
        except ArgumentError:
            pass
    parts = urlsplit(url)
    userinfo, at, hostport = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        parts = parts._replace(netloc=f"{userinfo.split(':', 1)[0]}:***@{hostport}")
    query = parse_qsl(parts.query, keep_blank_values=True)
    if any(key == "password" for key, _ in query):
        hidden = [(k, "***" if k == "password" else v) for k, v in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)
