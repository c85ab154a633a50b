"""An instance saying it is alive: a thread that heartbeats to the registry."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from app.instances.base import Registry

log = logging.getLogger(__name__)


class Heartbeat:
    """Joins `registry` as `instance` (its fencing token in `token`, and given to
    `on_join`), then tells it every `period_s` that the instance is alive and takes
    `capacity` sessions, from a daemon thread, until `stop`.  A heartbeat the registry
    cannot take (its Redis away) is logged and the next one tried: the instance looks
    silent meanwhile, and gets no new session.  One the registry refuses because the
    instance was taken over (fenced) stops the beats, writes the new token into the
    instance's hot store (its writes there are refused from then on, even when the
    takeover could not reach that store), sets `fenced` and calls `on_fenced` (a worker
    starts again, and joins anew).  `hot_url` is the Redis the instance keeps session
    state on, and `hot_name` that store's name on SQL's state log, both recorded in the
    registry as it joins."""

    def __init__(self, registry: Registry, instance: str, capacity: int,  # noqa: PLR0917
                 period_s: float, on_fenced: Callable[[], None] | None = None,
                 on_join: Callable[[int], None] | None = None, hot_url: str = "",
                 hot_name: str = "") -> None:
        self.registry, self.instance = registry, instance
        self.capacity, self.period_s, self.hot_url = capacity, period_s, hot_url
        self.hot_name = hot_name
        self.on_fenced, self.on_join = on_fenced, on_join
        self.token: int | None = None
        self.fenced = threading.Event()
        self._noticed = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self, **_: object) -> None:
        """Join now, then beat every period (a Celery signal's receiver too)."""
        if self._thread is not None:
            return
        try:  # back in service, after a drain or a takeover too
            self.token = self.registry.join(self.instance, self.capacity, self.hot_url,
                                            self.hot_name)
            if self.on_join is not None:
                self.on_join(self.token)
        except Exception as exc:  # noqa: BLE001 - the beats that follow try again
            log.warning("instance %s: join not recorded (%s)", self.instance, exc)
        self._thread = threading.Thread(target=self._run, name="gamesched-heartbeat",
                                        daemon=True)
        self._thread.start()

    def beat(self) -> bool:
        """One heartbeat; True if the registry took it."""
        try:
            taken = self.registry.heartbeat(self.instance, self.capacity, self.token)
        except Exception as exc:  # noqa: BLE001 - the next beat tries again
            log.warning("instance %s: heartbeat not recorded (%s)", self.instance, exc)
            return False
        if not taken:
            self.notice_fenced()
        return taken

    def notice_fenced(self) -> None:
        """The instance was taken over (a heartbeat or a write refused): stop beating, copy
        its new token into its hot store, set `fenced` and call `on_fenced`, once."""
        with self._noticed:
            if self.fenced.is_set():
                return
            self.fenced.set()
        try:  # its writes are refused from now on, wherever its hot store is
            self.registry.copy_token(self.instance)
        except Exception as exc:  # noqa: BLE001 - it stops taking work all the same
            log.warning("instance %s: fenced token not copied (%s)", self.instance, exc)
        log.warning("instance %s was taken over while silent (fenced): its writes are "
                    "refused until it starts again", self.instance)
        self._stop.set()
        if self.on_fenced is not None:
            self.on_fenced()

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
