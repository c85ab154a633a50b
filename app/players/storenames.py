"""The name of each server instance's hot store, kept in SQL beside the state log
(`InstanceStoreRow`): what the registry records of it is lost with the registry's Redis."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from app.db import transaction
from app.db.base import utcnow
from app.players.models import InstanceStoreRow


def record_store(factory: sessionmaker[Session], instance: str, store: str) -> None:
    """`instance` joined with the hot store named `store` on the state log."""
    with transaction(factory) as db:
        db.merge(InstanceStoreRow(instance=instance, store=store, joined_at=utcnow()))


def recorded_store(factory: sessionmaker[Session], instance: str) -> str | None:
    """The name of the hot store `instance` last joined with, or None when it never
    joined (or joined before stores were recorded)."""
    with factory() as db:
        return db.scalar(select(InstanceStoreRow.store).where(
            InstanceStoreRow.instance == instance))
