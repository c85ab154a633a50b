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

import multiprocessing
import random
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ledger.models import LedgerTransaction, Status, Wallet
from app.ledger.view import as_utc
from app.observe.stats import percentile
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
    bought: float = 0.0  # when the player bought (epoch seconds; 0: at its first send)


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
    """The outcome per unique purchase (report keys of the simulator's ``transactions``).

    `balance_drift` and `applied_twice` come from arithmetic: each wallet must hold its
    grants minus the prices of its committed purchases, counted once per key (None when the
    grants are not known).  `success_ratio` is committed over submitted less those rejected
    for insufficient funds (a final, correct answer to the player, not a failure)."""

    submitted: int
    sends: int
    committed: int
    rejected: int
    lost: int
    applied_twice: int | None
    success_ratio: float
    p99_commit_ms: float | None
    balance_drift: int | None = None
    rejected_for_funds: int = 0
    reject_reasons: dict[str, int] = field(default_factory=dict)
    # each committed purchase's transaction id -> (when the player bought it, the
    # committed_at its worker stamped before the COMMIT), epoch seconds
    committed_clock: dict[int, tuple[float, float]] = field(default_factory=dict)


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
              submissions: Sequence[Submission],
              grants: Mapping[str, int] | None = None) -> SurgeSummary:
    """What became of each planned purchase, read from SQL, and whether each wallet holds
    what `grants` (player -> amount granted before the surge) minus its committed purchases
    say it must."""
    keys = [p.key for p in plan]
    t = LedgerTransaction
    rows = db.execute(select(t.id, t.idempotency_key, t.status, t.committed_at,
                             t.reject_reason).where(t.idempotency_key.in_(keys))).all()
    status = {row.idempotency_key: row.status for row in rows}
    committed = sum(1 for s in status.values() if s == Status.COMMITTED)
    reasons = Counter(_reason(row.reject_reason) for row in rows
                      if row.status == Status.REJECTED)
    rejected = sum(reasons.values())
    funds = reasons.get(FUNDS, 0)
    clock = _committed_clock(rows, plan, submissions)
    drift, twice = (None, None) if grants is None else balance_check(
        db, plan, {k for k, s in status.items() if s == Status.COMMITTED}, grants)
    return SurgeSummary(
        submitted=len(plan), sends=len(submissions), committed=committed, rejected=rejected,
        lost=len(plan) - committed - rejected, applied_twice=twice,
        success_ratio=committed / (len(plan) - funds) if len(plan) > funds else 1.0,
        p99_commit_ms=_p99_commit_ms(clock), balance_drift=drift,
        rejected_for_funds=funds, reject_reasons=dict(reasons), committed_clock=clock,
    )


def _committed_clock(rows: Sequence[Any], plan: Sequence[PlannedPurchase],
                     submissions: Sequence[Submission]) -> dict[int, tuple[float, float]]:
    """Each committed purchase: (when the player bought it, or else its first send; the
    worker's committed_at)."""
    started = _first_sent(submissions) | {p.key: p.bought for p in plan if p.bought}
    return {row.id: (started[row.idempotency_key], as_utc(row.committed_at).timestamp())
            for row in rows
            if row.committed_at is not None and row.idempotency_key in started}


def _first_sent(submissions: Sequence[Submission]) -> dict[str, float]:
    first: dict[str, float] = {}
    for s in submissions:
        first[s.key] = min(s.sent_at, first.get(s.key, s.sent_at))
    return first


FUNDS = "insufficient funds"


def _reason(text: str | None) -> str:
    """A rejection's reason without its figures (``insufficient funds: balance 3 ...``)."""
    return (text or "no reason").split(":", 1)[0]


def balance_check(db: Session, plan: Sequence[PlannedPurchase], committed: set[str],
                  grants: Mapping[str, int]) -> tuple[int, int]:
    """(wallets whose balance differs from their grants minus the prices of their committed
    purchases, counted once per key; purchases whose debit those wallets show more than
    once).  A wallet debited once too often is short by that purchase's price."""
    currency = {p.currency for p in plan} or {"gold"}
    expected = dict(grants)
    prices: dict[str, list[int]] = {}
    for p in plan:
        if p.key in committed:
            expected[p.player_id] = expected.get(p.player_id, 0) - p.price
            prices.setdefault(p.player_id, []).append(p.price)
    w = Wallet
    actual = {row.player_id: row.balance for row in db.execute(
        select(w.player_id, w.balance).where(w.player_id.in_(list(expected)),
                                             w.currency.in_(currency)))}
    off = {player: value - actual.get(player, 0) for player, value in expected.items()
           if actual.get(player, 0) != value}
    return len(off), sum(_extra_debits(short, prices.get(player, []))
                         for player, short in off.items())


def _extra_debits(short: int, prices: list[int]) -> int:
    """How many of a wallet's purchase prices add up to what it is `short` of (at least
    one when it is short at all: a debit nothing planned explains)."""
    if short <= 0:
        return 0
    count = 0
    for price in sorted(prices, reverse=True):
        if price <= short:
            short, count = short - price, count + 1
    return max(count, 1)


def _p99_commit_ms(clock: dict[int, tuple[float, float]]) -> float | None:
    """From when each committed purchase was bought (its first send, unless the plan says)
    to the committed_at its worker stamped (the figure of the ledger's own tests; the
    simulator reports commit time after the COMMIT)."""
    latencies = [(committed - bought) * 1000.0 for bought, committed in clock.values()]
    return percentile(latencies, 99) if latencies else None
