"""What SQL keeps of the hot stores beside the state log: the name of each server
instance's store (`InstanceStoreRow`; what the registry records of it is lost with the
registry's Redis), and the sessions whose copy in a store is out of date
(`VoidedStateRow`)."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, select
from sqlalchemy.orm import Session, sessionmaker

from app.db import dialect_insert, reads, transaction
from app.db.base import utcnow
from app.players.models import InstanceStoreRow, VoidedStateRow


def record_store(factory: sessionmaker[Session], instance: str, store: str) -> None:
    """`instance` joined with the hot store named `store` on the state log."""
    with transaction(factory) as db:
        db.merge(InstanceStoreRow(instance=instance, store=store, joined_at=utcnow()))


def recorded_store(factory: sessionmaker[Session], instance: str) -> str | None:
    """The name of the hot store `instance` last joined with, or None when it never
    joined (or joined before stores were recorded)."""
    with reads.reading(factory) as db:
        return db.scalar(select(InstanceStoreRow.store).where(
            InstanceStoreRow.instance == instance))


def void_states(factory: sessionmaker[Session], store: str, sessions: Collection[str]) -> None:
    """The copies of `sessions` in the hot store `store` are out of date (they started
    elsewhere from SQL while that store did not answer)."""
    if not sessions:
        return
    now = utcnow()
    with transaction(factory) as db:  # two workers may void one session at once
        db.execute(dialect_insert(db.get_bind().dialect.name, VoidedStateRow.__table__)
                   .values([{"store": store, "session_id": s, "voided_at": now}
                            for s in sorted(sessions)])
                   .on_conflict_do_nothing())


def voided(factory: sessionmaker[Session], store: str) -> list[str]:
    """The sessions whose copy in `store` is out of date."""
    with reads.reading(factory) as db:
        return sorted(db.scalars(select(VoidedStateRow.session_id).where(
            VoidedStateRow.store == store)))


def has_voided(factory: sessionmaker[Session], store: str) -> bool:
    """Whether `store` holds a copy out of date: its state log rows are kept until it is
    frozen and what the store logged of it sent on (`app.players.durable.write_behind`)."""
    with reads.reading(factory) as db:
        return db.scalar(select(VoidedStateRow.session_id).where(
            VoidedStateRow.store == store).limit(1)) is not None


def voided_stores(factory: sessionmaker[Session]) -> set[str]:
    """The stores that hold a copy out of date (`has_voided` of each)."""
    with reads.reading(factory) as db:
        return set(db.scalars(select(VoidedStateRow.store).distinct()))


def unvoid(factory: sessionmaker[Session], store: str, sessions: Collection[str]) -> None:
    """`store` holds no out-of-date copy of `sessions` any more (dropped, or their state
    carried there again)."""
    if not sessions:
        return
    with transaction(factory) as db:
        db.execute(delete(VoidedStateRow).where(VoidedStateRow.store == store,
                                                VoidedStateRow.session_id.in_(sorted(sessions))))
