"""``gamesched audit --json``: the ledger's checks as one JSON document, for scripts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from typing import Any

from sqlalchemy import update

from app.db import make_engine, make_sessionmaker, transaction, utcnow
from app.ledger.audit import CHECKS
from app.ledger.models import LedgerTransaction
from tests.ledger.helpers import buy, fund, settle
from tests.subprocesses import ROOT


def audit_json(url: str) -> tuple[int, dict[str, Any]]:
    env = {**os.environ, "GAMESCHED_DATABASE_URL": url}
    done = subprocess.run([sys.executable, "-m", "app.cli", "audit", "--json"], env=env,
                          cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, json.loads(done.stdout)


def test_a_clean_ledger_is_one_document_with_every_check_and_exit_0(sqlite_url: str) -> None:
    code, document = audit_json(sqlite_url)
    assert code == 0 and document["ok"] is True
    assert [c["name"] for c in document["checks"]] == [c.name for c in CHECKS]
    assert all(c["violations"] == 0 and c["rows"] == [] for c in document["checks"])
    assert document["database"].startswith("sqlite:///")


def test_a_purchase_pending_too_long_is_named_in_its_check_and_exits_1(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    sessions = make_sessionmaker(engine)
    fund(sessions, "p1", 100)
    settle(sessions, buy(sessions, "p1", 30, "bought").transaction_id)
    buy(sessions, "p1", 10, "waiting")
    with transaction(sessions) as db:  # recorded a minute ago, never applied
        db.execute(update(LedgerTransaction)
                   .where(LedgerTransaction.idempotency_key == "waiting")
                   .values(created_at=utcnow() - timedelta(minutes=1)))
    engine.dispose()
    code, document = audit_json(sqlite_url)
    assert code == 1 and document["ok"] is False
    failing = {c["name"]: c for c in document["checks"] if c["violations"]}
    assert list(failing) == ["nothing-stale"]
    assert failing["nothing-stale"]["rows"][0]["idempotency_key"] == "waiting"
    assert document["counts"]["transactions.committed"] == 2  # the grant and the purchase
