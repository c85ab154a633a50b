"""``gamesched drain INSTANCE``: move every session off a server instance."""

from __future__ import annotations

from collections import Counter

from rich.console import Console

from app.cli.failures import require_redis
from app.settings import Settings
from app.tasking.arrivals import send_arrivals
from app.tasking.factory import create_app


def show(console: Console, settings: Settings, instance: str) -> bool:
    """Drain `instance` and print what moved where; False when it holds sessions no other
    instance could take (they stay on it).  Raises ServiceUnavailable when the broker's
    Redis does not answer."""
    if settings.embedded:
        console.print("The embedded fleet's instances live inside one process; set "
                      "GAMESCHED_BROKER_URL=redis://... to drain an instance of a fleet.")
        return False
    require_redis(settings)
    app = create_app(settings)
    registry = app.runtime.instances
    known = {state.name: state for state in registry.instances()}
    if instance not in known:
        console.print(f"no instance {instance!r} in the registry "
                      f"(registered: {', '.join(sorted(known)) or 'none'})", markup=False)
        return False
    moves = registry.drain(instance)
    send_arrivals(app, moves)  # the instances they go to take their state at once
    targets = Counter(move.target for move in moves)
    left = {state.name: state for state in registry.instances()}[instance].sessions
    console.print(f"{instance}: draining; {len(moves)} sessions moved"
                  + (": " + ", ".join(f"{n} to {t}" for t, n in sorted(targets.items()))
                     if moves else ""), markup=False)
    if left:
        console.print(f"{left} sessions stayed on {instance}: no other live instance has "
                      "room for them", markup=False)
    else:
        console.print(f"{instance} holds no session: it can be stopped; started again, it "
                      "takes sessions again", markup=False)
    return left == 0
