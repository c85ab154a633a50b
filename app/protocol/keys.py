"""Every Redis key and channel gamesched writes in the hot store, in one place.

All of them start with ``gamesched:``, so one pattern finds (and the simulator clears) them.
"""

from __future__ import annotations

PREFIX = "gamesched:"
ALL = PREFIX + "*"  # every key below: hot state, counters, claims and execution records

# Sessions' hot state: a hash per session with ``seq`` and one ``.<name>`` field per state
# field (the state script computes these keys from the session ids).
STATE_PREFIX = PREFIX + "state:"
DELTA_CHANNEL = PREFIX + "deltas"  # each applied batch's delta message is published here
# Sessions whose hot state changed since it was last written to SQL (a set, marked by the
# state script); the marks a snapshot round is writing (the set renamed when a round
# starts), the last state-log row that round covers, and the lease of the one process
# writing them (app.players.durable).
DIRTY = PREFIX + "state-marks"
DIRTY_TAKING = PREFIX + "state-marks:taking"
DIRTY_CUT = PREFIX + "state-marks:cut"
DIRTY_LEASE = PREFIX + "state-dirty:lease"
DIRTY_LAST = PREFIX + "state-dirty:last"  # the last round: when, sessions written, its ms (JSON)
# Set once this hot store holds every state the state log in SQL holds (replayed after the
# store was found empty: app.players.statelog); snapshot rounds wait for it.
# A session's state frozen as it moved to an instance with another hot store (the hash as
# it was, kept `HANDED_TTL_S`): while it is there the state script refuses the session's
# updates ("moved away") and the worker sends them on to its instance.
STATE_HANDED_PREFIX = PREFIX + "state-handed:"
HANDED_UPDATES = PREFIX + "state-handover:updates"  # updates a copy carried onto its new store
HANDED_BYTES = PREFIX + "state-handover:bytes"
HANDED_STALE = PREFIX + "state-handover:stale"
STATE_RECOVERED = PREFIX + "state-recovered"
STATE_RECOVERING = PREFIX + "state-recovering"  # the claim of the one process replaying
# The processes writing this store's state log: when each last began a flush that wrote
# everything it held (the store's clock, µs; a sorted set).
STATE_LOG_FLUSHES = PREFIX + "state-log:flushes"
REPLAYED_UPDATES = PREFIX + "state-log:replayed"  # updates the replay applied again
REPLAYED_BYTES = PREFIX + "state-log:replayed_bytes"
REPLAYED_STALE = PREFIX + "state-log:replayed_stale"  # replayed updates already there

# Network counters: applied updates, their delta bytes, and the full-state cost of a sample.
NET_UPDATES = PREFIX + "net:updates"
NET_DELTA_BYTES = PREFIX + "net:delta_bytes"
NET_STALE = PREFIX + "net:stale"  # updates a newer one of their session overtook
NET_REJECTED = PREFIX + "net:rejected"  # updates refused: malformed, or of no known session
NET_FULL_UPDATES = PREFIX + "net:full_updates"  # the updates whose full state was sized
NET_FULL_BYTES = PREFIX + "net:full_bytes"  # as JSON
NET_FULL_MSGPACK_BYTES = PREFIX + "net:full_msgpack_bytes"  # in the deltas' encoding

# The controller's last decision, and the late player batches it reads each tick.
CONTROL_DECISION = PREFIX + "control:decision"
CONTROL_PLAYER_SLOW = PREFIX + "control:player-slow"
CONTROL_PLAYER_LATE = PREFIX + "control:player-late"  # batches past the product's p99 bar

# The ledger sweeper's last run: when, the pending intents it saw, and how many it re-sent
# (JSON, for `gamesched status`).
LEDGER_SWEPT = PREFIX + "ledger:swept"

EXECUTIONS = PREFIX + "executions"  # execution records (demo, simulator, tests)

# Which physics unit owns each region (a hash, region to unit), and the owner map's epoch,
# raised by every publish (app.physics.owners).
PHYSICS_OWNERS = PREFIX + "physics:owners"
PHYSICS_EPOCH = PREFIX + "physics:epoch"
# Regions in transit between units (a hash, region to the unit it leaves), written with the
# owner map and cleared by the receiving unit; a region's packed space waits in a list of
# its own until its new owner takes it; each region's last step, as its unit saw it.
PHYSICS_MOVING = PREFIX + "physics:moving"
PHYSICS_HANDOVER_PREFIX = PREFIX + "physics:handover:"
PHYSICS_REGIONS = PREFIX + "physics:regions"
# Regions stepped at a fraction of their rate: too costly to fit a frame, and unable to
# split (app.physics.slowed): a hash, region to factor.
PHYSICS_SLOWED = PREFIX + "physics:slowed"
# Players per region as each game server reports them: a hash, a field per game server.
PHYSICS_PLAYERS = PREFIX + "physics:players"
# Running counts of the physics units and the director: regions moved, skipped, handed
# over, and anomalies by kind (``anomalies.<kind>``), a hash of counters.
PHYSICS_TOTALS = PREFIX + "physics:totals"
# What crosses a border between regions (app.physics.borders): each region's halo (the
# bodies near its border), and a list of the bodies arriving in it.
PHYSICS_HALO_PREFIX = PREFIX + "physics:halo:"
PHYSICS_ARRIVALS_PREFIX = PREFIX + "physics:arrivals:"


def physics_handover(region: str) -> str:
    """The list where `region`'s packed space waits for its new owner."""
    return PHYSICS_HANDOVER_PREFIX + region


def physics_halo(region: str) -> str:
    """The key of `region`'s halo."""
    return PHYSICS_HALO_PREFIX + region


def physics_arrivals(region: str) -> str:
    """The list of the bodies arriving in `region` from its neighbours."""
    return PHYSICS_ARRIVALS_PREFIX + region


def handed(session_id: str) -> str:
    """The key of a session's state frozen as it moved to another hot store."""
    return STATE_HANDED_PREFIX + session_id


def state(session_id: str) -> str:
    """The key of a session's state hash."""
    return STATE_PREFIX + session_id


def claim(task_id: str) -> str:
    """The key a task copy sets to claim its run (the first copy of a raised task runs)."""
    return f"{PREFIX}claim:{task_id}"

# The instance registry (app.instances.registry): when each instance last said it was alive
# (Redis time, seconds) and how many sessions it takes; each placed session's instance and
# weight; each instance's load (milli-weights) and sessions.  On the broker's Redis: every
# instance and every game server shares it.
INSTANCES_SEEN = PREFIX + "instances:seen"
INSTANCES_CAPACITY = PREFIX + "instances:capacity"
PLACEMENT_OWNER = PREFIX + "placement:owner"
PLACEMENT_WEIGHT = PREFIX + "placement:weight"
PLACEMENT_LOAD = PREFIX + "placement:load"
PLACEMENT_COUNT = PREFIX + "placement:count"
# Instances being drained (a set: they get no new session and give theirs away), and the
# placement epoch, raised whenever a placed session moves: a game server's client reads it
# to learn that some of its sessions run elsewhere now.
INSTANCES_DRAINING = PREFIX + "instances:draining"
PLACEMENT_EPOCH = PREFIX + "placement:epoch"
PLACEMENT_MOVED = PREFIX + "placement:moved"  # sessions moved, by why (drain, rebalance)
# Each instance's fencing token (a hash, instance to a number raised by every start and
# every takeover: writes carrying an older one are refused), and the writes refused (a hash
# of counters).
INSTANCES_TOKEN = PREFIX + "instances:token"
INSTANCES_REFUSED = PREFIX + "instances:refused"
# Each instance's hot store (a hash, instance to the Redis URL its workers keep session
# state on): the state of its sessions lives there, and so does a copy of its token, where
# the state script checks it (the same hash name, INSTANCES_TOKEN, on that Redis).
INSTANCES_HOT = PREFIX + "instances:hot"
# Each instance's hot store's name (a hash, instance to `GAMESCHED_HOT_STORE` of its
# workers): the name its rows of SQL's state log carry, found by when that store is gone.
INSTANCES_HOT_NAME = PREFIX + "instances:hot-name"
# The instance each moved session came from (a hash), until its new instance has taken its
# state from that instance's hot store (app.tasking.arrivals).
PLACEMENT_FROM = PREFIX + "placement:from"
# The registry's generation: a random token the first instance to join sets; a new one
# means the registry started again empty (its Redis restarted) and lost its placements.
INSTANCES_GENERATION = PREFIX + "instances:generation"
