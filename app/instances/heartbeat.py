"""An instance saying it is alive: a thread that heartbeats to the registry."""

from __future__ import annotations

import logging
import threading

from app.instances.registry import Registry

log = logging.getLogger(__name__)


class Heartbeat:
    """Tells `registry` every `period_s` that `instance` is alive and takes `capacity`
    sessions, from a daemon thread, until `stop`.  A heartbeat the registry refuses (its
    Redis away) is logged and the next one tried: the instance looks silent meanwhile, and
    gets no new session."""

    def __init__(self, registry: Registry, instance: str, capacity: int,
                 period_s: float) -> None:
        self.registry, self.instance = registry, instance
        self.capacity, self.period_s = capacity, period_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, **_: object) -> None:
        """Say it now, then every period (a Celery signal's receiver too)."""
        if self._thread is not None:
            return
        try:  # back in service, after a drain too
            self.registry.join(self.instance, self.capacity)
        except Exception as exc:  # noqa: BLE001 - the beats that follow try again
            log.warning("instance %s: join not recorded (%s)", self.instance, exc)
        self._thread = threading.Thread(target=self._run, name="gamesched-heartbeat",
                                        daemon=True)
        self._thread.start()

    def beat(self) -> bool:
        """One heartbeat; True if the registry took it."""
        try:
            self.registry.heartbeat(self.instance, self.capacity)
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            log.warning("instance %s: heartbeat not recorded (%s)", self.instance, exc)
            return False
        return True

    def stop(self, **_: object) -> None:
        """Stop beating (the instance goes silent)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def leave(self, **_: object) -> None:
        """Stop beating and take the instance out of the registry: it gets no new session
        from now on (its sessions stay placed).  A Celery signal's receiver too."""
        self.stop()
        self.registry.leave(self.instance)

    def _run(self) -> None:
        while not self._stop.wait(self.period_s):
            self.beat()
