"""The purchase-surge scenario: its volume, its ``db-errors`` fault, and the store
processes that send its purchases to a real fleet (two transactions nodes and the
controller) on a real broker and PostgreSQL."""

from __future__ import annotations

import os
import signal
import uuid
from pathlib import Path

import psutil
import pytest
from sqlalchemy import select

from app.db import transaction
from app.db.migrate import upgrade
from app.fleet.fleets import ProcessFleet
from app.ledger.models import LedgerTransaction
from app.settings import load_settings
from app.simulate.faults import SQL_ERROR_RATE, SQL_FAULT_ROLES, launchers, parse_faults
from app.simulate.purchases import Store
from app.simulate.redisserver import PrivateRedis
from app.simulate.scenarios import SCENARIOS
from app.simulate.schedule import PurchaseRequest, Schedule
from app.simulate.sqlfaults import FAULT_MESSAGE
from app.tasking.factory import create_app
from tests.services import private_postgres_database

SURGE = SCENARIOS["purchase-surge"]


def test_the_surge_plans_ten_thousand_purchases_in_thirty_seconds_at_5000_players() -> None:
    schedule = Schedule(SURGE, 5000, seed=3, duration_s=30.0)
    schedule.initial_sessions()
    assert schedule.purchase_rate() * 30.0 >= 10_000


def test_db_errors_starts_the_ledgers_workers_under_the_sql_fault_wrapper() -> None:
    assert parse_faults("kill-worker,db-errors") == ("kill-worker", "db-errors")
    assert launchers(("kill-worker",), seed=1) == {}
    wrapped = launchers(("db-errors",), seed=7)
    assert set(wrapped) == set(SQL_FAULT_ROLES) == {"transactions", "control"}
    for argv in wrapped.values():
        assert argv[:2] == ["-m", "app.cli.sqlfaults"] and argv[-1] == "--"
        assert argv[argv.index("--sql-error-rate") + 1] == str(SQL_ERROR_RATE)
        assert argv[argv.index("--seed") + 1] == "7"


def test_store_processes_send_every_copy_and_each_purchase_settles_once_while_sql_fails_and_a_node_dies(  # noqa: E501
        tmp_path: Path, postgres_server: str, redis_server_binary: str) -> None:
    faulty = [*launchers(("db-errors",), seed=5)["transactions"]]
    faulty[faulty.index("--sql-error-rate") + 1] = "0.2"  # many faults in a short run
    with (PrivateRedis(redis_server_binary) as server,
          private_postgres_database(postgres_server) as url):
        upgrade(url)
        settings = load_settings(broker_url=server.url, database_url=url,
                                 instance_id=f"surge-{uuid.uuid4().hex[:6]}")
        app = create_app(settings)
        with ProcessFleet(settings, roles=("transactions", "control"), env=settings.to_env(),
                          log_dir=str(tmp_path), launchers={"transactions": faulty},
                          replicas={"transactions": 2}) as fleet:
            assert set(fleet.procs) == {"transactions", "transactions-2", "control"}
            # beat keeps its schedule with the fleet's logs, not in the shared temp folder
            controller = psutil.Process(fleet.procs["control"].pid).cmdline()
            assert controller[controller.index("--schedule") + 1].startswith(str(tmp_path))
            store = Store(app, [f"buyer-{i}" for i in range(20)], 20, "t", processes=2,
                          threads=3)
            assert store.fund()
            requests = [PurchaseRequest(n, n, "potion", 20, 1 + (n % 10 == 0) + (n % 20 == 0))
                        for n in range(300)]
            copies = sum(store.submit(r) for r in requests[:150])
            os.killpg(fleet.procs["transactions"].pid, signal.SIGKILL)  # its twin serves on
            copies += sum(store.submit(r) for r in requests[150:])
            submissions = store.finish()
            summary = store.summary(submissions)
        with transaction(app.runtime.sessions) as db:
            errors = db.execute(select(LedgerTransaction.last_error)
                                .where(LedgerTransaction.last_error.is_not(None))).scalars().all()
        app.close()
    assert len(submissions) == copies == 300 + 30 + 15
    assert all(s.transaction_id is not None for s in submissions)
    assert sum(s.created for s in submissions) == 300  # one send per key created it
    assert (summary.submitted, summary.committed, summary.lost, summary.applied_twice) == (
        300, 300, 0, 0)
    assert any(FAULT_MESSAGE in e for e in errors)  # the workers ran under the wrapper


def test_a_store_process_that_dies_is_reported(tmp_path: Path) -> None:
    from app.errors import GameschedError

    settings = load_settings(broker_url="redis://127.0.0.1:1/0",
                             database_url=f"sqlite:///{tmp_path / 'g.db'}")
    store = Store(create_app(settings), ["p"], 1, "dead", processes=1, threads=1)
    store._procs[0].kill()  # the failure under test
    store._procs[0].join()
    with pytest.raises(GameschedError, match="did not report"):
        store.finish()
