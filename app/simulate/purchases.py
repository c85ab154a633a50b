"""Purchases during a simulation: a store front in processes of its own, so that its SQL
writes and sends (each intent is committed before its task is sent) cost the tick loop only
a hand-over on a pipe, and take none of its interpreter's time.

Buyers get a starting reward before play; each planned purchase is sent once, or two or
three times with the same key, its copies from different store processes so that they
really race; at the end the ledger says what became of each.
"""

from __future__ import annotations

import multiprocessing
import queue
import time
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.process import BaseProcess
from multiprocessing.queues import Queue

from sqlalchemy.exc import OperationalError

from app.client.api import GameClient
from app.db import transaction
from app.errors import GameschedError, InvalidRequest
from app.settings import Settings
from app.simulate.schedule import PurchaseRequest
from app.simulate.spawned import own_session
from app.simulate.surge import PlannedPurchase, Submission, SurgeSummary, drain, summarize
from app.tasking.factory import GameschedCelery, create_app

CURRENCY = "gold"
STARTING_GOLD = 1_000_000
PROCESSES = 2  # store processes; copies of one key go to different ones
THREADS = 8  # senders per store process: most of a send waits on SQL's commit
ATTEMPTS = 5  # calls per send when SQL fails, as a game server would retry with the same key
LEDGER_DRAIN_S = 60.0
RESULT_TIMEOUT_S = 120.0  # a store process reports this long after its last hand-over


class Store:
    """Sends purchases for the buyers ``ids[:buyers]`` from `processes` store processes of
    `threads` senders each, started at once (spawned: nothing inherited from the tick
    loop)."""

    def __init__(self, app: GameschedCelery, ids: list[str], buyers: int, tag: str, *,
                 processes: int = PROCESSES, threads: int = THREADS) -> None:
        self.app = app
        self.client = GameClient(app)
        self.buyers = ids[:buyers]
        self.tag = tag
        self.planned: list[PlannedPurchase] = []
        context = multiprocessing.get_context("spawn")
        self._results: Queue[list[Submission]] = context.Queue()
        self._inboxes: list[Queue[PlannedPurchase | None]] = [
            context.Queue() for _ in range(processes)]
        self._procs: list[BaseProcess] = [
            context.Process(target=serve, name=f"sim-store-{n}", daemon=True,
                            args=(app.runtime.settings, inbox, self._results, threads))
            for n, inbox in enumerate(self._inboxes)]
        for proc in self._procs:
            proc.start()

    @property
    def pids(self) -> list[int]:
        """The store processes' ids (game-server processes, for the CPU they use)."""
        return [p.pid for p in self._procs if p.pid is not None]

    def fund(self) -> bool:
        """Grant every buyer a starting reward and wait until the ledger applied them."""
        for i, player in enumerate(self.buyers):
            self.client.grant_reward(player, STARTING_GOLD, CURRENCY,
                                     f"sim-{self.tag}-grant-{i}", reason="starting gold")
        return drain(self.app.runtime.sessions, timeout=LEDGER_DRAIN_S)

    def submit(self, request: PurchaseRequest, bought: float = 0.0) -> int:
        """Hand every copy of `request`, which the player made at `bought` (epoch seconds),
        to the store processes; returns the copies."""
        planned = PlannedPurchase(f"sim-{self.tag}-buy-{request.number}",
                                  self.buyers[request.index % len(self.buyers)], request.sku,
                                  request.price, CURRENCY, request.copies, bought)
        self.planned.append(planned)
        for copy in range(request.copies):
            self._inboxes[(request.number + copy) % len(self._inboxes)].put(planned)
        return request.copies

    def finish(self) -> list[Submission]:
        """Wait until every store process sent all it was handed; every send's outcome."""
        for inbox in self._inboxes:
            inbox.put(None)
        submissions: list[Submission] = []
        for _ in self._procs:
            submissions += self._result()
        for proc in self._procs:
            proc.join()
        self.client.close()
        return submissions

    def summary(self, submissions: list[Submission]) -> SurgeSummary:
        """What became of each planned purchase, once nothing is pending (or after the
        deadline), read from the ledger."""
        drain(self.app.runtime.sessions, timeout=LEDGER_DRAIN_S)
        grants = dict.fromkeys(self.buyers, STARTING_GOLD)  # what `fund` granted each
        with transaction(self.app.runtime.sessions) as db:
            return summarize(db, self.planned, submissions, grants)

    def _result(self) -> list[Submission]:
        deadline = time.monotonic() + RESULT_TIMEOUT_S
        while True:
            try:
                return self._results.get(timeout=0.5)
            except queue.Empty:
                dead = [p.name for p in self._procs if p.exitcode not in (None, 0)]
                if dead or time.monotonic() > deadline:
                    raise GameschedError(f"store processes {dead or 'alive'} did not report "
                                         "their sends") from None


def serve(settings: Settings, inbox: Queue[PlannedPurchase | None],
          results: Queue[list[Submission]], threads: int) -> None:
    """A store process: send what `inbox` hands over from `threads` senders through a
    client of its own, until None; then put every send's outcome on `results`."""
    own_session()
    client = GameClient(create_app(settings), settings)
    sends: list[Future[Submission]] = []
    with ThreadPoolExecutor(threads, thread_name_prefix="sim-store") as pool:
        while (planned := inbox.get()) is not None:
            sends.append(pool.submit(send, client, planned))
    client.close()
    results.put([future.result() for future in sends])


def send(client: GameClient, p: PlannedPurchase) -> Submission:
    """One send of a planned purchase through the client API, called again with the same
    key when SQL fails (the intent may or may not be recorded)."""
    sent_at, error = time.time(), ""
    for _ in range(ATTEMPTS):
        try:
            handle = client.purchase(p.player_id, p.sku, p.price, p.currency, p.key)
        except OperationalError as exc:
            error = str(exc).splitlines()[0]
            continue
        except InvalidRequest as exc:  # refused: calling again would not help
            return Submission(p.key, None, False, sent_at, str(exc))
        return Submission(p.key, handle.transaction_id, handle.created, sent_at)
    return Submission(p.key, None, False, sent_at, error)
