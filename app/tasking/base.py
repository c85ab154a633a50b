"""The Task base class: timing, metrics and execution records for every gamesched task."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from celery import Task

from app.control import dilation
from app.control.controller import read_decision
from app.observe.metrics import metrics
from app.observe.recorder import Execution
from app.protocol import keys
from app.protocol.names import CLAIM_HEADER, HANDOFF_HEADER, SENT_HEADER

if TYPE_CHECKING:
    from app.tasking.factory import GameschedCelery
    from app.tasking.gather import Gathered
    from app.tasking.runtime import Runtime

CLAIM_TTL_S = 3600
_AFTER_DONE = "gs_after_done"
_ITEMS = "gs_items"
_INCOMPLETE = "gs_incomplete"
_GATHERED = "gs_gathered"
log = logging.getLogger(__name__)


class GameTask(Task):  # type: ignore[misc]
    """Base of every gamesched task; task bodies stay free of cross-cutting code.

    Task options: ``tracks_latency`` counts runs later than the player target for the
    controller, ``dilatable`` pauses after each run at the controller's background level
    (`app.control.dilation`)."""

    abstract = True
    typing = True
    tracks_latency = False
    dilatable = False

    @property
    def runtime(self) -> Runtime:
        """The worker process's runtime (settings, SQL, hot store)."""
        app: GameschedCelery = self.app
        return app.runtime

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        if header(self.request, CLAIM_HEADER) and not self._claim():
            return None  # another copy of this task id (raised in priority) ran first
        return self._timed(args, kwargs)

    def after_done(self, fn: Callable[[], None]) -> None:
        """Run `fn` once this run is stamped done: follow-up work that whoever waits for
        the task's effect need not wait for (a measurement, say).  It runs in the same
        worker thread, before the run's execution record is written (so whoever waits for
        the record finds the follow-up done too, and the record's time excludes it) and
        before the message is acknowledged; an error in it is logged, not raised."""
        pending: list[Callable[[], None]] | None = getattr(self.request, _AFTER_DONE, None)
        if pending is None:
            pending = []
            setattr(self.request, _AFTER_DONE, pending)
        pending.append(fn)

    def note_items(self, items: Sequence[int]) -> None:
        """Name what this run made durable (the transactions it committed), for its
        execution record: the simulator times each purchase to the end of the run that
        committed it, after the COMMIT."""
        setattr(self.request, _ITEMS, tuple(items))

    def note_incomplete(self) -> None:
        """This run did part of its work and returns normally (a physics frame with a region
        still in transit): it is counted failed and recorded as not done, so nobody takes
        it for the whole."""
        setattr(self.request, _INCOMPLETE, True)

    def note_gathered(self, gathered: Sequence[Gathered]) -> None:
        """Name the messages this run took from its queue to run after its own
        (`app.tasking.gather`): each is counted and recorded as a run of its own, started
        when it was taken and done with this one; failed when this one fails or it says it
        failed (`Gathered.ok`, read once this run is done: the sequence may change)."""
        setattr(self.request, _GATHERED, gathered)

    def _claim(self) -> bool:
        claimed = self.runtime.fleet.claim(keys.claim(str(self.request.id)), CLAIM_TTL_S)
        if not claimed:
            metrics().skipped.labels(_queue_of(self.request)).inc()
        return claimed

    def _timed(self, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        queue = _queue_of(self.request)
        handoff = _handoff_of(self.request)
        started = time.time()
        m = metrics()
        m.started.labels(queue).inc()
        m.wait_seconds.labels(queue).observe(max(0.0, started - handoff))
        ok = False
        try:
            result = self.run(*args, **kwargs)
            ok = not getattr(self.request, _INCOMPLETE, False)
            return result
        finally:
            done = time.time()
            (m.succeeded if ok else m.failed).labels(queue).inc()
            m.latency_seconds.labels(queue).observe(max(0.0, done - handoff))
            self._run_after_done()
            if self.runtime.settings.record_latency:
                self._record(queue, handoff, started, done, ok)
            gathered = self._account_gathered(queue, done, ok)
            self._settle(done - handoff, done - started, gathered)

    def _run_after_done(self) -> None:
        pending = getattr(self.request, _AFTER_DONE, None) or []
        setattr(self.request, _AFTER_DONE, None)
        for fn in pending:
            try:
                fn()
            except Exception:
                log.exception("follow-up of task %s failed", self.request.id)

    def _settle(self, latency_s: float, run_s: float, gathered: Sequence[float] = ()) -> None:
        """Feed the controller (this run's latency and those of the messages it gathered),
        then slow down as it asked (after done: nobody waits)."""
        try:
            if self.tracks_latency:
                settings = self.runtime.settings
                dilation.note_latencies(self.runtime.fleet, (latency_s, *gathered),
                                        settings.player_target_ms / 1000.0,
                                        settings.player_late_ms / 1000.0)
            if self.dilatable:
                decision = read_decision(self.runtime.fleet)
                dilation.dilate(run_s, decision.background_level if decision else 1.0)
        except Exception:  # the hot store may be away; the task's work is done
            log.warning("task %s could not reach the controller's state", self.request.id,
                        exc_info=True)

    def _account_gathered(self, queue: str, done: float, ok: bool) -> list[float]:
        """Count and record the messages this run gathered; returns their latencies."""
        gathered: Sequence[Gathered] = getattr(self.request, _GATHERED, None) or ()
        setattr(self.request, _GATHERED, None)
        m, record = metrics(), self.runtime.settings.record_latency
        for one in gathered:
            good = ok and one.ok
            m.started.labels(queue).inc()
            m.wait_seconds.labels(queue).observe(max(0.0, one.taken - one.handoff))
            (m.succeeded if good else m.failed).labels(queue).inc()
            m.latency_seconds.labels(queue).observe(max(0.0, done - one.handoff))
            if record:
                self.runtime.recorder.record(Execution(
                    task_id=one.task_id, task=self.name, queue=queue,
                    hostname=str(self.request.hostname or ""), handoff=one.handoff,
                    started=one.taken, done=done, ok=good, sent=one.sent, gathered=True))
        return [done - one.handoff for one in gathered]

    def on_retry(self, exc: Exception, task_id: str, args: Any, kwargs: Any, einfo: Any) -> None:
        """Count the retry."""
        metrics().retried.labels(_queue_of(self.request)).inc()

    def _record(self, queue: str, handoff: float, started: float, done: float, ok: bool) -> None:
        self.runtime.recorder.record(
            Execution(
                task_id=str(self.request.id),
                task=self.name,
                queue=queue,
                hostname=str(self.request.hostname or ""),
                handoff=handoff,
                started=started,
                done=done,
                ok=ok,
                sent=float(header(self.request, SENT_HEADER) or 0.0),
                items=getattr(self.request, _ITEMS, None) or (),
            )
        )


def _queue_of(request: Any) -> str:
    info = getattr(request, "delivery_info", None) or {}
    return str(info.get("routing_key") or "eager")


def header(request: Any, name: str) -> Any:
    """The message header `name` of a task's `request` (None when it has none)."""
    value = getattr(request, name, None)
    if value is None:
        value = (getattr(request, "headers", None) or {}).get(name)
    return value


def _handoff_of(request: Any) -> float:
    value = header(request, HANDOFF_HEADER)
    return float(value) if value is not None else time.time()
