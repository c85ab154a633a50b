"""A consumer of gamesched's own for a player worker's queues: threads that pop kombu's
Redis lists themselves and run each message through Celery's tracer
(`app.tasking.deliveries`), beside the Celery worker that hosts the process (its signals,
remote control, memory guard and shutdown) and consumes nothing of these queues.

Why: what a state batch costs a player worker is mostly Celery's and kombu's consuming
loop (re-arming BRPOP on every turn, the envelope, the strategy and the request, the
hand-off to the pool), whatever the batch carries; a consumer that pops and runs in the
same thread took 36-69 % less of the worker's CPU (docs/measurements.md, "What a
consumer outside kombu's loop would save").  Chosen with ``GAMESCHED_PLAYER_CONSUMER=
direct``; the wire, the queues and the tasks do not change.

What it keeps of a Celery worker's delivery:

- **Priority and prefetch 1.**  Each of `threads` threads pops one message at a time with
  one BRPOP over the queues' lists, highest priority step first (the order kombu's
  BRPOP names them), and runs it before it pops again: no thread holds a message it is not
  running, so a message sent later at a higher step is taken first.
- **Acknowledgement.**  A message taken is held in memory and written to kombu's
  unacknowledged set only once it has been held `RECORD_AFTER_S` (as
  `app.tasking.transport` does for Celery's workers); Redis gives such a message back to
  its queue after the visibility timeout if this process dies holding it.  One done
  sooner costs Redis nothing, and a kill while running it loses it (as there).
- **ETA.**  A message whose ETA is later (a retry's countdown) is held, and pushed back to
  the head of its list when due; on stop, at once.  An expired one is dropped, logged.
- **Stop.**  `stop` lets each thread finish its run, pushes the ETA messages back, removes
  the records of what it held, and returns.
- **A broker away.**  A failed pop is logged and tried again after 0.1 s, then 0.3 ...
  at most every 2 s (`app.tasking.transport.RECONNECT`'s waits).
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable, Sequence

import redis
from kombu.transport.redis import Channel as RedisChannel
from kombu.utils.json import dumps

from app.protocol.queues import PRIORITY_STEPS
from app.tasking.broker import step_key
from app.tasking.deliveries import BadMessage, Delivery, Runner, delivery
from app.tasking.transport import RECONNECT, RECORD_AFTER_S

log = logging.getLogger(__name__)

POP_TIMEOUT_S = 1  # how long one BRPOP blocks: a stop is seen within about this
HOUSEKEEPING_S = 0.1  # how often held messages are recorded and due ETAs pushed back
HOUSEKEEPER = "direct-held"  # the thread that records held messages and pushes ETAs back


def pop_keys(queues: Sequence[str]) -> list[str]:
    """The lists of `queues` in the order one BRPOP takes from them: every queue's step 0,
    then every queue's step 1 ... (kombu's order), the queues in the order given."""
    return [step_key(queue, step) for step in PRIORITY_STEPS for queue in queues]


class Held:
    """The messages taken and not yet done, recorded in kombu's unacknowledged set once
    held `record_after_s`; thread-safe."""

    def __init__(self, client: redis.Redis, record_after_s: float = RECORD_AFTER_S) -> None:
        self._client = client
        self.record_after_s = record_after_s
        self._held: dict[str, Delivery] = {}
        self._recorded: set[str] = set()
        self._stale: set[str] = set()  # done, their records still to remove
        self._lock = threading.Lock()

    def hold(self, one: Delivery) -> None:
        with self._lock:
            self._held[one.tag] = one

    def release(self, one: Delivery) -> None:
        """`one` is done (or back in its queue): forget it, and its record if it has one.
        A record Redis does not take away now (it is away) is tried again by `unrecord`;
        until then, Redis would give the message back after the visibility timeout."""
        with self._lock:
            self._held.pop(one.tag, None)
            if one.tag in self._recorded:
                self._recorded.discard(one.tag)
                self._stale.add(one.tag)
        try:
            self.unrecord()
        except redis.RedisError as exc:
            log.warning("the record of a message done stays in Redis for now (%s)", exc)

    def unrecord(self) -> int:
        """Remove the records of messages done since; returns how many."""
        with self._lock:
            tags = list(self._stale)
        if not tags:
            return 0
        with self._client.pipeline(transaction=False) as pipe:
            pipe.zrem(RedisChannel.unacked_index_key, *tags)
            pipe.hdel(RedisChannel.unacked_key, *tags)
            pipe.execute()
        with self._lock:
            self._stale.difference_update(tags)
        return len(tags)

    def record_due(self, now: float | None = None) -> int:
        """Record what has been held `record_after_s` by `now`, as kombu records a delivered
        message; returns how many were recorded."""
        ceil = (time.time() if now is None else now) - self.record_after_s
        with self._lock:
            due = [one for tag, one in self._held.items()
                   if tag not in self._recorded and one.taken <= ceil]
            if not due:
                return 0
            with self._client.pipeline(transaction=False) as pipe:
                for one in due:
                    pipe.zadd(RedisChannel.unacked_index_key, {one.tag: one.taken})
                    pipe.hset(RedisChannel.unacked_key, one.tag,
                              dumps([one.message, one.exchange,  # type: ignore[no-untyped-call]
                                     one.routing_key]))
                pipe.execute()
            self._recorded.update(one.tag for one in due)
        return len(due)

    def __len__(self) -> int:
        return len(self._held)


class DirectConsumer:
    """`threads` threads consuming `queues` on the broker Redis `client` and running their
    messages with `runner`; `start` once, `stop` once.  A thread takes no more messages
    once `should_stop` says so (the process was asked to stop: the host worker's warm
    shutdown)."""

    def __init__(self, client: redis.Redis, queues: Sequence[str], runner: Runner,
                 threads: int, *, pop_timeout_s: float = POP_TIMEOUT_S,
                 record_after_s: float = RECORD_AFTER_S,
                 should_stop: Callable[[], bool] = lambda: False) -> None:
        if threads < 1:
            raise ValueError(f"threads: expected at least 1, got {threads}")
        self._client, self._runner, self._threads = client, runner, threads
        self.queues = list(queues)
        self._keys = pop_keys(queues)
        self._queue_of = {step_key(q, s): q for q in queues for s in PRIORITY_STEPS}
        self._pop_timeout_s = pop_timeout_s
        self.held = Held(client, record_after_s)
        self._later: list[tuple[float, int, Delivery]] = []
        self._later_lock = threading.Lock()
        self._order = itertools.count()
        self._stopping = threading.Event()
        self._should_stop = should_stop  # asked elsewhere (a warm shutdown): take no more
        self._workers: list[threading.Thread] = []
        self.ran = 0  # messages run (not dropped, not held for later)

    def start(self, **_: object) -> None:
        """Start consuming (a ``worker_ready`` receiver)."""
        if self._workers:
            return
        names = [f"direct-{i}" for i in range(self._threads)]
        self._workers = [threading.Thread(target=self._consume, name=name, daemon=True)
                         for name in names]
        self._workers.append(threading.Thread(target=self._housekeep, name=HOUSEKEEPER,
                                              daemon=True))
        for thread in self._workers:
            thread.start()
        log.info("consuming %s directly on %d threads", ", ".join(self.queues), self._threads)

    def consuming(self) -> int:
        """How many of its threads are still taking messages."""
        return sum(t.is_alive() for t in self._workers if t.name != HOUSEKEEPER)

    def stop(self, timeout_s: float = 60.0, **_: object) -> None:
        """Stop consuming: each thread finishes its run; the messages held for their ETA go
        back to their queues (a ``worker_shutdown`` receiver)."""
        self._stopping.set()
        deadline = time.monotonic() + timeout_s
        for thread in self._workers:
            thread.join(max(0.0, deadline - time.monotonic()))
        try:
            self._push_back(everything=True)
            self.held.unrecord()
        except redis.RedisError as exc:
            log.error("%d messages held for their ETA not pushed back, or records of "
                      "messages done not removed (%s): those recorded come back after the "
                      "visibility timeout, the others held are lost", len(self._later), exc)

    def _consume(self) -> None:
        failures = 0
        while not self._stopping.is_set() and not self._should_stop():
            try:
                popped = self._client.brpop(self._keys, timeout=self._pop_timeout_s)
            except redis.RedisError as exc:
                failures = self._wait_after(exc, failures)
                continue
            failures = 0
            if popped is not None:
                key, raw = popped
                self._take(_text(key), raw if isinstance(raw, bytes) else raw.encode())

    def _wait_after(self, exc: redis.RedisError, failures: int) -> int:
        wait = min(RECONNECT["interval_start"] + RECONNECT["interval_step"] * failures,
                   RECONNECT["interval_max"])
        if failures == 0:
            log.warning("the broker did not answer a pop (%s); trying again", exc)
        self._stopping.wait(wait)
        return failures + 1

    def _take(self, key: str, raw: bytes) -> None:
        try:
            one = delivery(key, self._queue_of[key], raw)
            eta = one.eta()
            expired = one.expired(one.taken)
        except BadMessage as exc:
            log.error("a message on %s is not a task (%s); it is dropped", key, exc)
            return
        if expired:
            log.info("task %s (id %s) expired before it ran; it is dropped",
                     one.headers["task"], one.task_id)
            return
        self.held.hold(one)
        if eta is not None and eta > time.time():
            with self._later_lock:
                heapq.heappush(self._later, (eta, next(self._order), one))
            return
        try:
            if self._runner.run(one):
                self.ran += 1
        except Exception:  # the tracer catches the task's; this is a fault of its own
            log.exception("task %s (id %s) could not be run", one.headers["task"],
                          one.task_id)
        finally:
            self.held.release(one)

    def _housekeep(self) -> None:
        while not self._stopping.wait(HOUSEKEEPING_S):
            try:
                self.held.unrecord()
                self.held.record_due()
                self._push_back()
            except redis.RedisError as exc:
                log.warning("held messages not recorded, or due ones not pushed back (%s)",
                            exc)

    def _push_back(self, everything: bool = False) -> int:
        """Push the ETA messages due by now (all with `everything`) back to the head of
        their lists, to be taken next; returns how many."""
        now = time.time()
        with self._later_lock:
            due = []
            while self._later and (everything or self._later[0][0] <= now):
                due.append(heapq.heappop(self._later)[2])
        if not due:
            return 0
        try:
            with self._client.pipeline(transaction=False) as pipe:
                for one in due:
                    pipe.rpush(one.key, one.raw)
                pipe.execute()
        except redis.RedisError:
            with self._later_lock:  # held again: pushed back on the next try
                for one in due:
                    heapq.heappush(self._later, (0.0, next(self._order), one))
            raise
        for one in due:
            self.held.release(one)
        return len(due)


def _text(key: bytes | str) -> str:
    return key.decode() if isinstance(key, bytes) else key
