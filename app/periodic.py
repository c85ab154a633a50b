"""A call repeated in a daemon thread, started on demand."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

log = logging.getLogger(__name__)


class Periodic:
    """Calls `call` every `period_s` in a daemon thread from `start` until `stop` (and once
    as it starts, with `at_start`); a call that raises is logged (the first of a run of
    failures) and the next one made."""

    def __init__(self, call: Callable[[], object], period_s: float, name: str,
                 at_start: bool = False) -> None:
        self._call, self._period_s, self._name = call, period_s, name
        self._at_start = at_start
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread, unless it runs already."""
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None and not self._stop.is_set():
                self._thread = threading.Thread(target=self._run, name=self._name,
                                                daemon=True)
                self._thread.start()

    def stop(self) -> None:
        """Stop the thread after its call in progress."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _run(self) -> None:
        failing = False
        wait = 0.0 if self._at_start else self._period_s
        while not self._stop.wait(wait):
            wait = self._period_s
            try:
                self._call()
            except Exception:  # the next period tries again
                if not failing:  # once per outage, not once per period
                    log.exception("%s failed; retrying every %.2fs", self._name,
                                  self._period_s)
                failing = True
            else:
                if failing:
                    log.info("%s works again", self._name)
                failing = False
