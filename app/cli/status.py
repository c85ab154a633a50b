"""``gamesched status``: queue depths, server instances, live workers, purchases still
settling and the sweeper's last run, the controller's last decision."""

from __future__ import annotations

import json
import time

from rich.console import Console
from rich.table import Table
from sqlalchemy.exc import SQLAlchemyError

from app.cli.failures import require_redis
from app.control.controller import read_decision
from app.db import utcnow
from app.instances.registry import InstanceState
from app.ledger.sweeper import pending_health
from app.physics.slowed import describe
from app.players import statelog
from app.players.durable import last_round
from app.players.hotstore import HotStore
from app.protocol import keys
from app.settings import Settings, redact, store_name
from app.tasking.broker import live_workers, queue_depths
from app.tasking.factory import GameschedCelery, create_app


def show(console: Console, settings: Settings) -> None:
    """Print the fleet's state as seen through the configured broker.  Raises
    ServiceUnavailable when the broker or the hot-state Redis does not answer."""
    if settings.embedded:
        console.print("The embedded broker lives inside one process; set "
                      "GAMESCHED_BROKER_URL=redis://... to inspect a running fleet.")
        return
    require_redis(settings)
    app = create_app(settings)
    depths = queue_depths(app)
    table = Table(title=f"queues on {redact(settings.broker_url)}")
    table.add_column("queue")
    table.add_column("waiting", justify="right")
    for queue, depth in depths.items():
        table.add_row(queue, str(depth))
    console.print(table)
    _instances(console, app.runtime.instances.instances())
    workers = live_workers(app)
    console.print(f"workers answering: {len(workers)}")
    for name, queues in sorted(workers.items()):
        console.print(f"  {name}: {', '.join(queues)}")
    _ledger(console, app)
    _write_behind(console, app)
    decision = read_decision(app.runtime.fleet)
    if decision is None:
        console.print("controller: no decision yet")
    else:
        age = time.time() - decision.at
        console.print(f"controller ({age:.1f}s ago): ai_level={decision.ai_level} "
                      f"ai_tier={decision.ai_tier} ai_slots={decision.ai_slots} "
                      f"background_level={decision.background_level} "
                      f"background_slots={decision.background_slots} "
                      f"physics_detail={decision.physics_detail} "
                      f"cpu={decision.cpu:.2f} shed_background={decision.shed_background}")
    slowed = app.runtime.physics.slowed.read()
    if slowed:
        console.print("physics regions slowed (too costly for a frame, unable to split): "
                      + describe(slowed), markup=False)


def _instances(console: Console, instances: list[InstanceState]) -> None:
    """The server instances in the registry (none: one shared player queue)."""
    if not instances:
        console.print("instances: none registered (sessions share the player queue)")
        return
    table = Table(title="server instances")
    for column in ("instance", "live", "sessions", "capacity", "load", "last heartbeat",
                   "refused"):
        table.add_column(column, justify="left" if column == "instance" else "right")
    for state in instances:
        live = "draining" if state.draining else "yes" if state.live else "no"
        table.add_row(state.name, live, str(state.sessions),
                      str(state.capacity), f"{state.load:g}",
                      "left" if state.left else f"{state.silent_s:.1f}s ago",
                      str(state.refused))
    console.print(table)


def _write_behind(console: Console, app: GameschedCelery) -> None:
    """Sessions whose state is not in SQL's snapshots yet, the last snapshot round, and the
    state log's rows: of each hot store (this one, and each an instance recorded)."""
    try:
        logged = f"{statelog.row_count(app.runtime.sessions)} batches in the state log"
    except SQLAlchemyError as exc:
        logged = f"the database did not answer ({type(exc).__name__})"
    stores = _hot_stores(app)
    for name, hot in stores.items():
        where = f" ({name})" if len(stores) > 1 else ""
        waiting = hot.states.dirty_count()
        last = last_round(hot)
        if last is None:
            console.print(f"write-behind{where}: no snapshot round yet ({waiting} sessions "
                          f"changed since SQL's snapshots have them; {logged})", markup=False)
            continue
        console.print(f"write-behind{where}: snapshots of {last['written']:.0f} sessions in "
                      f"{last['ms']:.0f} ms, {time.time() - last['at']:.1f}s ago; {waiting} "
                      f"changed since; {logged}", markup=False)


def _hot_stores(app: GameschedCelery) -> dict[str, HotStore]:
    """This process's hot store and each other one an instance recorded, by store name."""
    runtime = app.runtime
    stores = {store_name(runtime.settings.hot_store_url): runtime.hot}
    for url in sorted(set(runtime.instances.hot_urls().values()) - {""}):
        stores.setdefault(store_name(url), runtime.hot_stores.of_url(url))
    return stores


def _ledger(console: Console, app: GameschedCelery) -> None:
    """Purchases and rewards still settling (SQL), and the sweeper's last run (hot store)."""
    try:
        with app.runtime.sessions() as db:
            health = pending_health(db, utcnow())
        console.print(f"ledger: {health.pending} pending ({health.stale} stale, oldest "
                      f"{health.oldest_seconds:.1f}s)")
    except SQLAlchemyError as exc:
        console.print(f"ledger: the database did not answer ({type(exc).__name__})")
    raw = app.runtime.fleet.get(keys.LEDGER_SWEPT)
    if raw is None:
        console.print("sweeper: no run yet (the controller runs it every period)")
        return
    swept = json.loads(raw)
    console.print(f"sweeper: last ran {time.time() - swept['at']:.1f}s ago, saw "
                  f"{swept['pending']} pending, re-sent {swept['resent']}")
