"""What the ledger's fault tests start and break: a private redis-server, a database of
their own, and worker subprocesses killed by their own process ids."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import redis
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session, sessionmaker

from app.db import make_engine, make_sessionmaker, transaction
from app.db.migrate import upgrade
from app.fleet.fleets import stop_process_groups
from app.ledger import audit
from app.ledger.models import LedgerEntry, LedgerTransaction, Status, Wallet
from app.protocol.names import APPLY_BATCH_TASK
from app.settings import Settings, load_settings
from app.simulate.redisserver import PrivateRedis
from app.simulate.surge import PlannedPurchase, Submission, summarize
from app.tasking.broker import live_workers, queue_depths
from app.tasking.factory import create_app
from tests.services import private_postgres_database
from tests.waiting import wait_for

FUNDS = 400  # gold granted to each player before a surge


@dataclass
class Fleet:
    """Worker subprocesses owned by one test, each in its own process group."""

    settings: Settings
    log_dir: Path
    sql_error_rate: float = 0.0
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def _spawn(self, name: str, args: Sequence[str]) -> subprocess.Popen[bytes]:
        prefix = ["-m", "app.cli"]
        if self.sql_error_rate:
            prefix = ["-m", "app.cli.sqlfaults", "--sql-error-rate", str(self.sql_error_rate),
                      "--"]
        env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESCHED_")}
        env |= self.settings.to_env()
        with open(self.log_dir / f"{name}.log", "ab") as log:
            proc = subprocess.Popen([sys.executable, *prefix, *args], env=env, stdout=log,
                                    stderr=subprocess.STDOUT, start_new_session=True)
        self.procs.append(proc)
        return proc

    def start_transactions(self, concurrency: int = 2) -> subprocess.Popen[bytes]:
        """Start the transactions worker and wait until it answers the broker."""
        node, proc = self._spawn_transactions(concurrency)
        self.wait_ready(node, proc)
        return proc

    def start_all(self) -> Callable[[], subprocess.Popen[bytes]]:
        """Start the controller (beat, which sends the sweeper every period, and the
        ``control`` worker that runs it) and the transactions worker side by side, without
        waiting; call the returned function to wait until both answer (it returns the
        transactions worker)."""
        controller = self._spawn("controller", ["controller"])
        node, worker = self._spawn_transactions(2)

        def ready() -> subprocess.Popen[bytes]:
            self.wait_ready(f"controller@{self.settings.instance_id}", controller)
            self.wait_ready(node, worker)
            return worker

        return ready

    def start_controller(self) -> subprocess.Popen[bytes]:
        """Start the controller alone and wait until it answers."""
        proc = self._spawn("controller", ["controller"])
        self.wait_ready(f"controller@{self.settings.instance_id}", proc)
        return proc

    def _spawn_transactions(self, concurrency: int) -> tuple[str, subprocess.Popen[bytes]]:
        node = f"transactions@{self.settings.instance_id}"
        return node, self._spawn("transactions", [
            "worker", "--role", "transactions", "--hostname", node,
            "--concurrency", str(concurrency)])

    def wait_ready(self, node: str, proc: subprocess.Popen[bytes]) -> None:
        """Wait until `node` answers a broadcast over the broker."""
        app = create_app(self.settings)

        def answers() -> bool:
            assert proc.poll() is None, f"{node} exited with {proc.returncode}"
            return node in live_workers(app, timeout=0.5)

        wait_for(answers, timeout=90, what=f"worker {node} to answer")

    @staticmethod
    def kill9(proc: subprocess.Popen[bytes]) -> None:
        """SIGKILL a worker and its pool children (its own process group)."""
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=20)

    def stop(self) -> None:
        """Stop every worker this fleet started: SIGTERM, then SIGKILL if need be."""
        stop_process_groups(self.procs)


@dataclass
class LiveLedger:
    """A private broker, a private database, and the workers of one fault test."""

    settings: Settings
    sessions: sessionmaker[Session]
    broker: PrivateRedis
    fleet: Fleet

    def pending(self) -> int:
        """Intents not settled yet."""
        return self._count(LedgerTransaction.status == Status.PENDING.value)

    def committed(self) -> int:
        """Intents committed so far."""
        return self._count(LedgerTransaction.status == Status.COMMITTED.value)

    def _count(self, condition: object) -> int:
        with transaction(self.sessions) as db:
            return int(db.execute(select(func.count()).select_from(LedgerTransaction)
                                  .where(condition)).scalar_one())  # type: ignore[arg-type]

    def queued(self) -> int:
        """Messages waiting in the transactions queue of the private broker."""
        return queue_depths(create_app(self.settings)).get("transactions", 0)

    def queued_intents(self) -> int:
        """Intents named by the messages waiting in the transactions queue (a batch message
        names many; an intent sent twice counts twice)."""
        return sum(len(ids) for ids in self._queued())

    def queued_ids(self) -> set[int]:
        """The distinct intents named by the messages waiting in the transactions queue."""
        return {i for ids in self._queued() for i in ids}

    def _queued(self) -> list[list[int]]:
        """The intent ids of each waiting message, read from the broker's lists: one per
        priority step."""
        client = redis.Redis.from_url(self.settings.broker_url)
        try:
            return [_intents(raw) for key in client.scan_iter(match="transactions*")
                    if client.type(key) == b"list" for raw in client.lrange(key, 0, -1)]
        finally:
            client.close()


def _intents(raw: bytes) -> list[int]:
    message = json.loads(raw)
    args = json.loads(base64.b64decode(message["body"]))[0]
    return list(args[0]) if message["headers"]["task"] == APPLY_BATCH_TASK else [args[0]]


@contextmanager
def live_ledger(tmp_path: Path, players: Sequence[str], *, postgres_server: str,
                redis_server_binary: str, sql_error_rate: float = 0.0) -> Iterator[LiveLedger]:
    """Start a private redis-server (with `redis_server_binary`) and a database of its own
    (on `postgres_server`), fund `players`, and yield; everything started here is stopped
    afterwards (workers are started by the test)."""
    instance = f"ledger-live-{uuid.uuid4().hex[:8]}"
    broker = PrivateRedis(redis_server_binary)
    with private_postgres_database(postgres_server) as url, broker:
        upgrade(url)
        # a short transaction tick: many small batches, many statements for faults to hit
        settings = load_settings(broker_url=broker.url, database_url=url, instance_id=instance,
                                 transaction_tick_ms=5.0)
        fleet = Fleet(settings, tmp_path, sql_error_rate)
        engine = make_engine(url)
        sessions = make_sessionmaker(engine)
        try:
            _fund(sessions, players)
            yield LiveLedger(settings, sessions, broker, fleet)
        finally:
            fleet.stop()
            engine.dispose()
            for leftover in Path(tempfile.gettempdir()).glob(f"gamesched-beat-{instance}*"):
                leftover.unlink()


@contextmanager
def wallets_held(database_url: str) -> Iterator[None]:
    """Hold every wallet row locked (``FOR NO KEY UPDATE``, as an applier does) for the
    block: workers block on their first purchase and new messages wait in the broker,
    while game servers can still record intents."""
    engine = make_engine(database_url)
    try:
        with engine.connect() as conn:
            conn.execute(text("BEGIN"))
            conn.execute(text("SELECT id FROM ledger_wallets FOR NO KEY UPDATE"))
            try:
                yield
            finally:
                conn.execute(text("ROLLBACK"))
    finally:
        engine.dispose()


def _fund(sessions: sessionmaker[Session], players: Sequence[str]) -> None:
    from tests.ledger.helpers import fund

    for player in players:
        fund(sessions, player, FUNDS, key=f"funds-{player}")


def assert_each_purchase_settled_once(ledger: LiveLedger, plan: Sequence[PlannedPurchase],
                                      submissions: Sequence[Submission]) -> None:
    """After the drain: every planned purchase is committed or rejected exactly once, none
    applied twice, every balance equals its ledger sum and its grants minus its spending."""
    assert all(s.transaction_id is not None for s in submissions), "a send never recorded"
    with transaction(ledger.sessions) as db:
        grants = dict.fromkeys({p.player_id for p in plan}, FUNDS)  # what `_fund` granted
        summary = summarize(db, plan, submissions, grants)
        violations = audit(db)
        outcomes = _outcomes(db, [p.key for p in plan])
        balances = {row.player_id: row.balance
                    for row in db.execute(select(Wallet.player_id, Wallet.balance))}
    assert violations == [], "\n".join(map(str, violations[:20]))
    assert (summary.lost, summary.applied_twice, summary.balance_drift) == (0, 0, 0), summary
    assert summary.committed + summary.rejected == len(plan) == len(outcomes)
    for key, (status, entries, reason) in outcomes.items():
        assert (status, entries) in {("committed", 2), ("rejected", 0)}, key
        assert status == "committed" or reason.startswith("insufficient funds"), key
    spent: dict[str, int] = {}
    for p in plan:
        if outcomes[p.key][0] == "committed":
            spent[p.player_id] = spent.get(p.player_id, 0) + p.price
    for player, paid in spent.items():
        assert balances[player] == FUNDS - paid, player


def _outcomes(db: Session, keys: list[str]) -> dict[str, tuple[str, int, str]]:
    t, e = LedgerTransaction, LedgerEntry
    rows = db.execute(select(t.idempotency_key, t.status, func.count(e.id),
                             func.coalesce(t.reject_reason, ""))
                      .outerjoin(e, e.transaction_id == t.id)
                      .where(t.idempotency_key.in_(keys))
                      .group_by(t.idempotency_key, t.status, t.reject_reason)).all()
    return {key: (status, entries, reason) for key, status, entries, reason in rows}
