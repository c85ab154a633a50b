"""What the client API returns for a transaction: a handle whose status is read from SQL."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.errors import GameschedError
from app.ledger.view import TransactionView, by_id


class TransactionTimeout(GameschedError):
    """A transaction was still pending when a wait for it ended."""

    def __init__(self, view: TransactionView, timeout: float) -> None:
        self.view = view
        super().__init__(f"transaction {view.id} ({view.idempotency_key!r}) still pending "
                         f"after {timeout:.1f}s")


@dataclass(frozen=True)
class TransactionHandle:
    """A recorded transaction: `created` is False when the key already existed."""

    transaction_id: int
    idempotency_key: str
    created: bool
    sessions: sessionmaker[Session] = field(repr=False, compare=False)

    def fetch(self) -> TransactionView:
        """The transaction as SQL holds it now."""
        with transaction(self.sessions) as db:
            view = by_id(db, self.transaction_id)
        assert view is not None, "a recorded transaction is never deleted"
        return view

    def status(self) -> str:
        """``pending``, ``committed`` or ``rejected``."""
        return self.fetch().status

    def wait(self, timeout: float = 10.0, interval: float = 0.02) -> TransactionView:
        """Poll SQL until the transaction is committed or rejected, or raise
        TransactionTimeout after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        view = self.fetch()
        while not view.final:
            if time.monotonic() >= deadline:
                raise TransactionTimeout(view, timeout)
            time.sleep(interval)
            view = self.fetch()
        return view
