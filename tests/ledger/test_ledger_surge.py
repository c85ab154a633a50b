"""The purchase surge: planned duplicates, submissions from several processes, the summary
the simulator reports, and waiting for the drain."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.ledger.handle import TransactionTimeout
from app.ledger.models import Wallet
from app.settings import Settings, load_settings
from app.simulate import surge
from app.simulate.sqlfaults import FAULT_MESSAGE
from app.simulate.surge import (
    PlannedPurchase,
    Submission,
    drain,
    plan_surge,
    run_purchase_surge,
    summarize,
)
from tests.ledger.helpers import assert_ledger_holds, buy, fund, settle

PLAYERS = ["p1", "p2", "p3"]
GRANTS = dict.fromkeys(PLAYERS, 300)  # what `funded` grants each


@pytest.fixture
def funded(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    for player in PLAYERS:
        fund(sessions, player, 300)
    return sessions


def settings_for(db_url: str) -> Settings:
    return load_settings(database_url=db_url, instance_id="surge-test")


def settle_pending(sessions: sessionmaker[Session], submissions: list[Submission]) -> None:
    for transaction_id in sorted({s.transaction_id for s in submissions if s.transaction_id}):
        settle(sessions, transaction_id)


def test_a_plan_repeats_a_share_of_its_purchases_with_one_key() -> None:
    plan = plan_surge(PLAYERS, 2000, duplicate_ratio=0.1, seed=4)
    assert plan == plan_surge(PLAYERS, 2000, duplicate_ratio=0.1, seed=4)
    assert len({p.key for p in plan}) == 2000
    copies = Counter(p.copies for p in plan)
    assert set(copies) == {1, 2, 3}
    assert 150 <= copies[2] + copies[3] <= 250
    assert {p.player_id for p in plan} == set(PLAYERS)
    assert all(1 <= p.price <= 50 and p.currency == "gold" for p in plan)


def test_a_surge_in_this_process_resolves_every_copy_to_one_transaction(
        db_url: str, funded: sessionmaker[Session]) -> None:
    plan = plan_surge(PLAYERS, 40, duplicate_ratio=0.5, seed=1)
    submissions = run_purchase_surge(settings_for(db_url), plan, processes=1)
    assert len(submissions) == sum(p.copies for p in plan)
    by_key: dict[str, set[Any]] = {}
    for s in submissions:
        by_key.setdefault(s.key, set()).add(s.transaction_id)
    assert all(len(ids) == 1 and None not in ids for ids in by_key.values())
    assert sum(s.created for s in submissions) == len(plan)
    settle_pending(funded, submissions)
    with transaction(funded) as db:
        summary = summarize(db, plan, submissions, GRANTS)
    assert (summary.submitted, summary.sends) == (40, len(submissions))
    assert summary.committed + summary.rejected == 40
    assert summary.rejected == summary.rejected_for_funds  # the only reason a price is refused
    assert (summary.lost, summary.balance_drift, summary.applied_twice) == (0, 0, 0)
    assert summary.success_ratio == 1.0  # committed, of all that funds could pay for
    assert summary.p99_commit_ms is not None and summary.p99_commit_ms > 0
    assert_ledger_holds(funded)


def test_duplicates_race_from_two_processes(pg_url: str,
                                            pg_sessions: sessionmaker[Session]) -> None:
    for player in PLAYERS:
        fund(pg_sessions, player, 300)
    plan = plan_surge(PLAYERS, 20, duplicate_ratio=1.0, seed=2)
    submissions = run_purchase_surge(settings_for(pg_url), plan, processes=2,
                                     start_method="forkserver")
    created = Counter(s.key for s in submissions if s.created)
    assert created == Counter({p.key: 1 for p in plan})
    assert len({(s.key, s.transaction_id) for s in submissions}) == len(plan)


def test_a_submitter_calls_again_with_the_same_key_after_an_sql_error(
        db_url: str, funded: sessionmaker[Session]) -> None:
    plan = plan_surge(PLAYERS, 60, duplicate_ratio=0.0, seed=3)
    submissions = run_purchase_surge(settings_for(db_url), plan, processes=1,
                                     sql_error_rate=0.05)
    assert all(s.transaction_id is not None for s in submissions)
    assert len({s.transaction_id for s in submissions}) == len(plan)


def test_a_submitter_gives_up_after_its_attempts(db_url: str,
                                                 funded: sessionmaker[Session]) -> None:
    plan = plan_surge(PLAYERS, 2, duplicate_ratio=0.0, seed=3)
    submissions = run_purchase_surge(settings_for(db_url), plan, processes=1,
                                     sql_error_rate=1.0)
    assert [s.transaction_id for s in submissions] == [None, None]
    assert all(s.error and FAULT_MESSAGE in s.error for s in submissions)
    assert surge.CLIENT_ATTEMPTS > 1


def test_the_summary_counts_lost_purchases(funded: sessionmaker[Session]) -> None:
    handle = buy(funded, "p1", 5, "sent")
    plan = [PlannedPurchase("sent", "p1", "sword", 5, "gold", 1),
            PlannedPurchase("never-recorded", "p1", "sword", 5, "gold", 1)]
    sends = [Submission("sent", handle.transaction_id, True, 0.0)]
    with transaction(funded) as db:
        summary = summarize(db, plan, sends)
    assert (summary.committed, summary.rejected, summary.lost) == (0, 0, 2)
    assert summary.success_ratio == 0.0 and summary.p99_commit_ms is None
    with transaction(funded) as db:
        assert summarize(db, [], []).success_ratio == 1.0


def bought(sessions: sessionmaker[Session], plan: list[PlannedPurchase]) -> list[Submission]:
    """Buy and settle each of `plan` once; the sends."""
    sends = [Submission(p.key, buy(sessions, p.player_id, p.price, p.key).transaction_id,
                        True, 0.0) for p in plan]
    settle_pending(sessions, sends)
    return sends


def test_a_wallet_debited_twice_shows_as_drift_and_as_applied_twice(
        funded: sessionmaker[Session]) -> None:
    plan = [PlannedPurchase("a", "p1", "sword", 40, "gold", 1),
            PlannedPurchase("b", "p2", "shield", 25, "gold", 1)]
    sends = bought(funded, plan)
    with transaction(funded) as db:
        clean = summarize(db, plan, sends, GRANTS)
    assert (clean.committed, clean.balance_drift, clean.applied_twice) == (2, 0, 0)
    with transaction(funded) as db:  # p1's purchase takes effect a second time
        wallet = db.scalars(select(Wallet).where(Wallet.player_id == "p1")).one()
        wallet.balance -= 40
    with transaction(funded) as db:
        twice = summarize(db, plan, sends, GRANTS)
    assert (twice.balance_drift, twice.applied_twice) == (1, 1)
    with transaction(funded) as db:  # and a credit nothing planned
        wallet = db.scalars(select(Wallet).where(Wallet.player_id == "p2")).one()
        wallet.balance += 7
    with transaction(funded) as db:
        off = summarize(db, plan, sends, GRANTS)
    assert (off.balance_drift, off.applied_twice) == (2, 1)
    with transaction(funded) as db:
        assert summarize(db, plan, sends).balance_drift is None  # grants unknown: no claim


def test_a_purchase_refused_for_funds_is_an_answer_not_a_failure(
        funded: sessionmaker[Session]) -> None:
    plan = [PlannedPurchase("fits", "p1", "sword", 200, "gold", 1),
            PlannedPurchase("too-dear", "p1", "castle", 250, "gold", 1)]
    sends = bought(funded, plan)
    with transaction(funded) as db:
        summary = summarize(db, plan, sends, GRANTS)
    assert (summary.committed, summary.rejected, summary.rejected_for_funds) == (1, 1, 1)
    assert summary.reject_reasons == {"insufficient funds": 1}
    assert summary.success_ratio == 1.0 and summary.balance_drift == 0


def test_drain_waits_for_nothing_pending(funded: sessionmaker[Session]) -> None:
    assert drain(funded, timeout=1)
    handle = buy(funded, "p1", 5, "k")
    assert not drain(funded, timeout=0.1, interval=0.02)
    with pytest.raises(TransactionTimeout, match="still pending") as caught:
        handle.wait(timeout=0.1, interval=0.02)
    assert caught.value.view.status == "pending"
    settle(funded, handle.transaction_id)
    assert drain(funded, timeout=1)
    assert handle.wait(timeout=0.1).status == "committed"
