"""What a worker process needs at run time, created lazily (after any fork)."""

from __future__ import annotations

from functools import cached_property, partial
from typing import TYPE_CHECKING

import redis
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker
from app.instances.registry import Registry, registry_for
from app.observe.recorder import Recorder, recorder_for
from app.players.hotstore import HotStore, RedisHotStore, hot_store_for
from app.players.storenames import recorded_store
from app.settings import Settings, store_name
from app.tasking.hotstores import HotStores

if TYPE_CHECKING:
    from app.ai import TreeBrain
    from app.physics.units import Links


class Runtime:
    """Settings plus the connections built from them, one set per process."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    @cached_property
    def engine(self) -> Engine:
        """The SQL engine."""
        return make_engine(self.settings.database_url)

    @cached_property
    def sessions(self) -> sessionmaker[Session]:
        """The SQL session factory."""
        return make_sessionmaker(self.engine)

    @cached_property
    def hot(self) -> HotStore:
        """The hot-state store."""
        return hot_store_for(self.settings.hot_store_url)

    @cached_property
    def fleet(self) -> HotStore:
        """The store of what the whole fleet shares beside session state: the controller's
        decision, the player batches' latency notes it reads, the tasks' claims, the
        sweeper's last run.  The hot store on the broker's Redis; this process's own hot
        store when that is the same (an instance with a hot Redis of its own keeps only
        its sessions' state there)."""
        settings = self.settings
        if store_name(settings.hot_store_url) == store_name(settings.broker_url):
            return self.hot
        return hot_store_for(settings.broker_url)

    @cached_property
    def hot_stores(self) -> HotStores:
        """This process's hot store and every instance's, by the URL each recorded in the
        registry (a session's state lives in its instance's store)."""
        return HotStores(self.hot, self.settings.hot_store_url, self.instances,
                         own_store=self.settings.hot_store_name,
                         recorded=partial(recorded_store, self.sessions))

    @cached_property
    def broker(self) -> redis.Redis:
        """A client of the broker's Redis (with a Redis broker), beside kombu's own: for
        the player workers to gather waiting state batches (`app.tasking.gather`).  A
        command is not retried on a lost connection: a pop whose reply was lost must not
        run again."""
        return redis.Redis.from_url(self.settings.broker_url)

    @cached_property
    def instances(self) -> Registry:
        """The instance registry: on the broker's Redis (every instance and game server
        shares it), or in this process on the embedded default."""
        return registry_for(self.settings.broker_url, self.settings.instance_ttl_s)

    @cached_property
    def physics(self) -> Links:
        """What this process's physics units share: the owner map and the hand-over place
        (in the hot store's Redis, or in this process on the embedded default).  The
        baselines' shared queue has no units: any worker steps any region, as unit 0.
        Imported here: pymunk and numpy are for the processes that step the world."""
        from app.physics import attention, borders, handover, notes, owners, slowed, units
        from app.physics.world import World

        world = World(size=self.settings.world_size)
        count = 1 if self.settings.naive else self.settings.physics_units
        hot = self.hot
        if not isinstance(hot, RedisHotStore):
            return units.Links(owners.MEMORY_OWNER_MAP, handover.MEMORY_HANDOVER,
                               notes.MEMORY_REGION_NOTES, count,
                               players=attention.MEMORY_PLAYER_COUNTS,
                               borders=units.MEMORY_BORDERS, world=world,
                               slowed=slowed.MEMORY_SLOWED_REGIONS)
        client = hot.client
        return units.Links(owners.RedisOwnerMap(client), handover.RedisHandover(client),
                           notes.RedisRegionNotes(client), count,
                           players=attention.RedisPlayerCounts(client),
                           borders=borders.RedisBorders(client), world=world,
                           slowed=slowed.RedisSlowedRegions(client))

    @cached_property
    def brain(self) -> TreeBrain:
        """The NPCs' default brain, on the navigation grid of GAMESCHED_AI_MAP (an open
        world without one)."""
        from app.ai import NavGrid, TreeBrain  # AI workers only: see app.ai
        from app.ai.navgrid import load_map

        size, cell = self.settings.world_size, self.settings.ai_cell_size
        path = self.settings.ai_map
        return TreeBrain(load_map(path, size, cell) if path else NavGrid(size, cell))

    @cached_property
    def recorder(self) -> Recorder:
        """Where execution records go."""
        return recorder_for(self.settings.broker_url)

    def after_fork(self) -> None:
        """Drop connections inherited from a parent process."""
        if "engine" in self.__dict__:
            self.engine.dispose(close=False)
        for name in ("engine", "sessions", "hot", "fleet", "hot_stores", "broker", "instances",
                     "physics", "brain", "recorder"):
            self.__dict__.pop(name, None)
