"""What a worker process needs at run time, created lazily (after any fork)."""

from __future__ import annotations

from functools import cached_property

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from app.ai import NavGrid, TreeBrain
from app.ai.navgrid import load_map
from app.db import make_engine, make_sessionmaker
from app.instances.registry import Registry, registry_for
from app.observe.recorder import Recorder, recorder_for
from app.physics.attention import MEMORY_PLAYER_COUNTS, PlayerCounts, RedisPlayerCounts
from app.physics.borders import Borders, RedisBorders
from app.physics.handover import MEMORY_HANDOVER, Handover, RedisHandover
from app.physics.notes import MEMORY_REGION_NOTES, RedisRegionNotes, RegionNotes
from app.physics.owners import MEMORY_OWNER_MAP, OwnerMap, RedisOwnerMap
from app.physics.slowed import MEMORY_SLOWED_REGIONS, RedisSlowedRegions, SlowedRegions
from app.physics.units import MEMORY_BORDERS, Links
from app.physics.world import World
from app.players.hotstore import HotStore, RedisHotStore, hot_store_for
from app.settings import Settings, store_name
from app.tasking.hotstores import HotStores


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
        return HotStores(self.hot, self.settings.hot_store_url, self.instances)

    @cached_property
    def instances(self) -> Registry:
        """The instance registry: on the broker's Redis (every instance and game server
        shares it), or in this process on the embedded default."""
        return registry_for(self.settings.broker_url, self.settings.instance_ttl_s)

    @cached_property
    def physics(self) -> Links:
        """What this process's physics units share: the owner map and the hand-over place
        (in the hot store's Redis, or in this process on the embedded default).  The
        baselines' shared queue has no units: any worker steps any region, as unit 0."""
        hot = self.hot
        owners: OwnerMap = MEMORY_OWNER_MAP
        handover: Handover = MEMORY_HANDOVER
        notes: RegionNotes = MEMORY_REGION_NOTES
        players: PlayerCounts = MEMORY_PLAYER_COUNTS
        borders: Borders = MEMORY_BORDERS
        slowed: SlowedRegions = MEMORY_SLOWED_REGIONS
        if isinstance(hot, RedisHotStore):
            owners, handover = RedisOwnerMap(hot.client), RedisHandover(hot.client)
            notes, players = RedisRegionNotes(hot.client), RedisPlayerCounts(hot.client)
            borders = RedisBorders(hot.client)
            slowed = RedisSlowedRegions(hot.client)
        units = 1 if self.settings.naive else self.settings.physics_units
        return Links(owners, handover, notes, units, players=players, borders=borders,
                     world=World(size=self.settings.world_size), slowed=slowed)

    @cached_property
    def brain(self) -> TreeBrain:
        """The NPCs' default brain, on the navigation grid of GAMESCHED_AI_MAP (an open
        world without one)."""
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
        for name in ("engine", "sessions", "hot", "fleet", "hot_stores", "instances", "physics",
                     "brain", "recorder"):
            self.__dict__.pop(name, None)
