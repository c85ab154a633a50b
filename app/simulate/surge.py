"""A purchase surge: many purchases from several processes, some sent two or three times
with the same key, and what became of them.  The simulator's ``purchase-surge`` scenario and
the fault tests drive the ledger through this module.

    plan = plan_surge(players, n=10_000, duplicate_ratio=0.1)
    submissions = run_purchase_surge(settings, plan, processes=4)
    drain(sessions, timeout=60)
    summary = summarize(db, plan, submissions)

Copies of one key go to different processes at the same position of their share, and the
processes start together, so duplicates really race.  A submitting process that meets an
operational SQL error calls again with the same key, as a game server should.
"""

from __future__ import annotations

import math
import multiprocessing
import random
import time
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ledger.models import LedgerEntry, LedgerTransaction, Status
from app.ledger.view import as_utc
from app.settings import Settings
from app.simulate.sqlfaults import sql_faults

CLIENT_ATTEMPTS = 20  # calls per send before a submitting process gives up on it


@dataclass(frozen=True)
class PlannedPurchase:
    """One purchase of the surge, to be sent `copies` times with one key."""

    key: str
    player_id: str
    sku: str
    price: int
    currency: str
    copies: int


@dataclass(frozen=True)
class Submission:
    """One send of a planned purchase: the transaction it resolved to (None when every
    attempt failed), whether it created it, and when the first attempt began."""

    key: str
    transaction_id: int | None
    created: bool
    sent_at: float
    error: str | None = None


@dataclass(frozen=True)
class SurgeSummary:
    """The outcome per unique purchase (report keys of the simulator's ``transactions``)."""

    submitted: int
    sends: int
    committed: int
    rejected: int
    lost: int
    applied_twice: int
    success_ratio: float
    p99_commit_ms: float | None


def plan_surge(players: Sequence[str], n: int, duplicate_ratio: float = 0.1, *,
               currency: str = "gold", max_price: int = 50, seed: int = 0,
               prefix: str = "surge") -> list[PlannedPurchase]:
    """`n` purchases by random `players`; a share `duplicate_ratio` of them is sent two or
    three times with the same key."""
    rng = random.Random(seed)
    plan = []
    for i in range(n):
        copies = rng.choice((2, 3)) if rng.random() < duplicate_ratio else 1
        plan.append(PlannedPurchase(f"{prefix}-{seed}-{i}", rng.choice(players),
                                    f"sku-{rng.randrange(20)}", rng.randint(1, max_price),
                                    currency, copies))
    return plan


def run_purchase_surge(settings: Settings, plan: Sequence[PlannedPurchase],
                       processes: int = 2, sql_error_rate: float = 0.0,
                       start_method: str = "spawn") -> list[Submission]:
    """Send every copy of every planned purchase through the client API from `processes`
    processes (1: this process), with `sql_error_rate` of their SQL statements failing.

    Processes start with `start_method` (``spawn``: nothing inherited from this process)."""
    shares: list[list[PlannedPurchase]] = [[] for _ in range(processes)]
    for i, purchase in enumerate(plan):
        for copy in range(purchase.copies):
            shares[(i + copy) % processes].append(purchase)
    if processes == 1:
        return submit_share(settings, shares[0], sql_error_rate)
    context = multiprocessing.get_context(start_method)
    start = context.Barrier(processes + 1)  # every submitting process, and this one
    with context.Pool(processes, initializer=_wait_for_all, initargs=(start,)) as pool:
        pending = pool.starmap_async(submit_share, [(settings, s, sql_error_rate)
                                                    for s in shares])
        _wait_for_all(start)  # released together once every process has started
        results = pending.get()
    return [submission for result in results for submission in result]


def _wait_for_all(start: Any) -> None:
    start.wait(timeout=120)


def submit_share(settings: Settings, share: Sequence[PlannedPurchase],
                 sql_error_rate: float = 0.0) -> list[Submission]:
    """Send `share` in order from this process through its own app and client."""
    from app.client.api import GameClient
    from app.tasking.factory import create_app

    client = GameClient(create_app(settings))
    with ExitStack() as stack:
        stack.callback(client.close)
        if sql_error_rate > 0:
            stack.enter_context(sql_faults(Engine, sql_error_rate))
        return [_submit_one(client, purchase) for purchase in share]


def _submit_one(client: Any, p: PlannedPurchase) -> Submission:
    sent_at = time.time()
    error = ""
    for _ in range(CLIENT_ATTEMPTS):
        try:
            handle = client.purchase(p.player_id, p.sku, p.price, p.currency, p.key)
        except OperationalError as exc:  # the intent may or may not be recorded: call again
            error = str(exc).splitlines()[0]
            continue
        return Submission(p.key, handle.transaction_id, handle.created, sent_at)
    return Submission(p.key, None, False, sent_at, error)


def drain(sessions: sessionmaker[Session], timeout: float, interval: float = 0.05) -> bool:
    """Wait until nothing is pending; False when `timeout` passes first."""
    deadline = time.monotonic() + timeout
    while True:
        with transaction(sessions) as db:
            pending = db.execute(select(func.count()).select_from(LedgerTransaction)
                                 .where(LedgerTransaction.status == Status.PENDING.value)
                                 ).scalar_one()
        if pending == 0:
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(interval)


def summarize(db: Session, plan: Sequence[PlannedPurchase],
              submissions: Sequence[Submission]) -> SurgeSummary:
    """What became of each planned purchase, read from SQL."""
    keys = [p.key for p in plan]
    t = LedgerTransaction
    rows = db.execute(select(t.id, t.idempotency_key, t.status, t.committed_at)
                      .where(t.idempotency_key.in_(keys))).all()
    status = {row.idempotency_key: row.status for row in rows}
    committed = sum(1 for s in status.values() if s == Status.COMMITTED)
    rejected = sum(1 for s in status.values() if s == Status.REJECTED)
    return SurgeSummary(
        submitted=len(plan), sends=len(submissions), committed=committed, rejected=rejected,
        lost=len(plan) - committed - rejected,
        applied_twice=_applied_twice(db, [row.id for row in rows]),
        success_ratio=(committed + rejected) / len(plan) if plan else 1.0,
        p99_commit_ms=_p99_commit_ms(rows, submissions),
    )


def _applied_twice(db: Session, transaction_ids: list[int]) -> int:
    e = LedgerEntry
    per_transaction = (select(e.transaction_id).where(e.transaction_id.in_(transaction_ids),
                                                      e.account == "player")
                       .group_by(e.transaction_id).having(func.count() > 1).subquery())
    return int(db.execute(select(func.count()).select_from(per_transaction)).scalar_one())


def _p99_commit_ms(rows: Sequence[Any], submissions: Sequence[Submission]) -> float | None:
    first_sent: dict[str, float] = {}
    for s in submissions:
        first_sent[s.key] = min(s.sent_at, first_sent.get(s.key, s.sent_at))
    latencies = sorted(
        (as_utc(row.committed_at).timestamp() - first_sent[row.idempotency_key]) * 1000.0
        for row in rows if row.committed_at is not None and row.idempotency_key in first_sent
    )
    if not latencies:
        return None
    return latencies[max(0, math.ceil(0.99 * len(latencies)) - 1)]
