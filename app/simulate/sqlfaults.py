"""SQL fault injection, for the fault tests and the simulator's ``db-errors`` fault.

A listener on SQLAlchemy's ``do_execute`` events makes a share of SQL statements fail with
the driver's own ``OperationalError`` before they reach the database, so the failure takes
exactly the path a real one would (wrapped by SQLAlchemy, the transaction rolled back).

In this process::

    with sql_faults(engine, rate=0.01): ...

In a worker subprocess (every engine of the process, prefork children included)::

    python -m app.cli.sqlfaults --sql-error-rate 0.01 [--seed N] -- worker --role transactions

Never switched on by settings: production code paths carry no fault hooks.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, event

FAULT_MESSAGE = "gamesched injected fault"
EVENTS = ("do_execute", "do_execute_no_params", "do_executemany")

Target = Engine | type[Engine]


class SqlFaults:
    """Fails a share `rate` of statements, at most `limit` of them (None: no limit), once
    `after` statements have gone through."""

    def __init__(self, rate: float, seed: int | None = None, limit: int | None = None,
                 after: int = 0) -> None:
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must lie in 0..1, not {rate}")
        self.rate = rate
        self.limit = limit
        self.after = after
        self.seen = 0
        self.injected = 0
        self._seed = seed
        self._lock = threading.Lock()
        self._pid = -1
        self._rng = random.Random()

    def fire(self) -> bool:
        """Decide whether the next statement fails (thread-safe; reseeded after a fork)."""
        with self._lock:
            if os.getpid() != self._pid:  # each forked child draws its own sequence
                self._pid = os.getpid()
                self._rng = random.Random(None if self._seed is None
                                          else f"{self._seed}:{self._pid}")
            self.seen += 1
            if self.seen <= self.after:
                return False
            if self.limit is not None and self.injected >= self.limit:
                return False
            if self._rng.random() >= self.rate:
                return False
            self.injected += 1
            return True

    def listener(self, *args: Any) -> None:
        """The ``do_execute*`` listener: raise the driver's OperationalError, or pass."""
        if self.fire():
            context = args[-1]
            raise context.dialect.loaded_dbapi.OperationalError(
                f"{FAULT_MESSAGE} ({self.injected})")


def install(target: Target, faults: SqlFaults) -> SqlFaults:
    """Attach `faults` to an engine, or to every engine when `target` is the Engine class."""
    for name in EVENTS:
        event.listen(target, name, faults.listener)
    return faults


def uninstall(target: Target, faults: SqlFaults) -> None:
    """Detach `faults` from `target`."""
    for name in EVENTS:
        event.remove(target, name, faults.listener)


@contextmanager
def sql_faults(target: Target, rate: float, seed: int | None = None,
               limit: int | None = None, after: int = 0) -> Iterator[SqlFaults]:
    """Inject faults into `target` for the duration of the block."""
    faults = install(target, SqlFaults(rate, seed, limit, after))
    try:
        yield faults
    finally:
        uninstall(target, faults)
