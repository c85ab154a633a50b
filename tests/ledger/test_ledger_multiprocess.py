"""The same idempotency key sent from several processes at once resolves to one
transaction; with different parameters, exactly one request wins."""

from __future__ import annotations

import multiprocessing
from collections import defaultdict
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from tests.ledger.helpers import assert_ledger_holds, fund, racing_purchases, row_counts, settle

PROCESSES = 4


def race(url: str, jobs: list[tuple[list[str], int]]) -> list[tuple[str, Any]]:
    """Run `racing_purchases` for each (keys, price) job in its own process, all at once.

    Children fork from a forkserver that has imported the ledger once, so they start fast;
    none of them inherits this process's threads or connections."""
    context = multiprocessing.get_context("forkserver")  # preloaded in conftest
    start = context.Barrier(len(jobs))
    results = context.Queue()
    procs = [context.Process(target=_run_job, args=(url, keys, price, start, results))
             for keys, price in jobs]
    for proc in procs:
        proc.start()
    collected = [results.get(timeout=120) for _ in procs]
    for proc in procs:
        proc.join(timeout=30)
        assert proc.exitcode == 0
    return [item for result in collected for item in result]


def _run_job(url: str, keys: list[str], price: int, start: Any, results: Any) -> None:
    results.put(racing_purchases(url, keys, price, start))


def test_one_key_from_several_processes_is_one_transaction(
        db_url: str, sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 10_000)
    keys = [f"order-{i}" for i in range(12)]
    outcomes: dict[str, list[tuple[int, bool]]] = defaultdict(list)
    for key, outcome in race(db_url, [(keys, 7)] * PROCESSES):
        outcomes[key].append(outcome)
    for key in keys:
        ids = {transaction_id for transaction_id, _ in outcomes[key]}
        created = [c for _, c in outcomes[key]]
        assert len(outcomes[key]) == PROCESSES and len(ids) == 1, key
        assert created.count(True) == 1, key
    assert row_counts(sessions)["ledger_transactions"] == len(keys) + 1
    for key in keys:
        settle(sessions, outcomes[key][0][0])
    assert_ledger_holds(sessions)


def test_one_key_with_different_prices_from_two_processes_lets_one_win(
        db_url: str, sessions: sessionmaker[Session]) -> None:
    fund(sessions, "p1", 10_000)
    keys = [f"contested-{i}" for i in range(12)]
    per_key: dict[str, list[Any]] = defaultdict(list)
    for key, outcome in race(db_url, [(keys, 5), (keys, 6)]):
        per_key[key].append(outcome)
    for key in keys:
        winners = [o for o in per_key[key] if isinstance(o, tuple)]
        assert len(winners) == 1 and winners[0][1] is True, per_key[key]
        assert per_key[key].count("idempotency_key") == 1
    assert row_counts(sessions)["ledger_transactions"] == len(keys) + 1
