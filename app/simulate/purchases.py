"""Purchases during a simulation: a store front with its own client, so that its SQL writes
(each intent is committed before its task is sent) run beside the tick loop, not in it.

Buyers get a starting reward before play; each planned purchase is sent once, or two or
three times with the same key; at the end the ledger says what became of each.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

from sqlalchemy.exc import OperationalError

from app.celery_app import GameschedCelery
from app.client import GameClient
from app.db import transaction
from app.errors import InvalidRequest
from app.ledger.surge import PlannedPurchase, Submission, SurgeSummary, drain, summarize
from app.simulate.schedule import PurchaseRequest

CURRENCY = "gold"
STARTING_GOLD = 1_000_000
THREADS = 4
ATTEMPTS = 5  # calls per send when SQL fails, as a game server would retry with the same key
LEDGER_DRAIN_S = 60.0


class Store:
    """Sends purchases for the buyers ``ids[:buyers]`` from a few threads."""

    def __init__(self, app: GameschedCelery, ids: list[str], buyers: int, tag: str) -> None:
        self.app = app
        self.client = GameClient(app)
        self.buyers = ids[:buyers]
        self.tag = tag
        self.planned: list[PlannedPurchase] = []
        self._pool = ThreadPoolExecutor(THREADS, thread_name_prefix="sim-store")
        self._sends: list[Future[Submission]] = []

    def fund(self) -> bool:
        """Grant every buyer a starting reward and wait until the ledger applied them."""
        for i, player in enumerate(self.buyers):
            self.client.grant_reward(player, STARTING_GOLD, CURRENCY,
                                     f"sim-{self.tag}-grant-{i}", reason="starting gold")
        return drain(self.app.runtime.sessions, timeout=LEDGER_DRAIN_S)

    def submit(self, request: PurchaseRequest) -> int:
        """Send every copy of `request` (from the pool); returns the copies."""
        planned = PlannedPurchase(f"sim-{self.tag}-buy-{request.number}",
                                  self.buyers[request.index % len(self.buyers)], request.sku,
                                  request.price, CURRENCY, request.copies)
        self.planned.append(planned)
        self._sends += [self._pool.submit(self._send, planned) for _ in range(request.copies)]
        return request.copies

    def finish(self) -> list[Submission]:
        """Wait for every send to return."""
        self._pool.shutdown(wait=True)
        self.client.close()
        return [future.result() for future in self._sends]

    def summary(self, submissions: list[Submission]) -> SurgeSummary:
        """What became of each planned purchase, once nothing is pending (or after the
        deadline), read from the ledger."""
        drain(self.app.runtime.sessions, timeout=LEDGER_DRAIN_S)
        with transaction(self.app.runtime.sessions) as db:
            return summarize(db, self.planned, submissions)

    def _send(self, p: PlannedPurchase) -> Submission:
        sent_at, error = time.time(), ""
        for _ in range(ATTEMPTS):
            try:
                handle = self.client.purchase(p.player_id, p.sku, p.price, p.currency, p.key)
            except OperationalError as exc:  # the intent may or may not be recorded
                error = str(exc).splitlines()[0]
                continue
            except InvalidRequest as exc:  # refused: calling again would not help
                return Submission(p.key, None, False, sent_at, str(exc))
            return Submission(p.key, handle.transaction_id, handle.created, sent_at)
        return Submission(p.key, None, False, sent_at, error)
