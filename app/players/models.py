"""The session table and the state log.  Alembic owns the schema: every change here comes
with a migration."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import BigInteger, DateTime, Index, Integer, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from app.db.base import Base, utcnow
from app.protocol.vocab import SessionStatus

# The state log's store of rows written before the log named the hot store of each batch
# (migration 0004): every store's recovery replays them (`app.players.statelog`).
UNNAMED_STORE = ""


class GameSession(Base):
    """A game session as durable state: where it runs and its last acknowledged snapshot."""

    __tablename__ = "game_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    session_type: Mapped[str] = mapped_column(String(16))
    players: Mapped[int] = mapped_column(Integer)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(8), default=SessionStatus.OPEN.value)
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    snapshot_seq: Mapped[int] = mapped_column(Integer, default=0)
    snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class StateLogRow(Base):
    """One batch of state updates in its wire form, as a player worker applied it to the
    hot store `store` names (`UNNAMED_STORE` for rows written before stores were named):
    the state log that makes an applied update durable between two snapshot rounds
    (`app.players.statelog`)."""

    __tablename__ = "state_log"
    __table_args__ = (
        Index("ix_state_log_store_id", "store", "id"),  # a store's rows, oldest first
        # ids never used again on SQLite either (app.players.durable deletes up to an id)
        {"sqlite_autoincrement": True},
    )

    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer(), "sqlite"),
                                    primary_key=True, autoincrement=True)
    store: Mapped[str] = mapped_column(String(255), server_default=UNNAMED_STORE)
    batch: Mapped[bytes] = mapped_column(LargeBinary)
    written_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class InstanceStoreRow(Base):
    """The name on the state log of the hot store each server instance last joined with
    (`GAMESCHED_HOT_STORE`, or its URL's).  The registry records it too, in Redis; this
    copy outlives the registry's loss, so that a session placed away from an instance that
    never came back still finds what that instance's store logged (`app.tasking.arrivals`).
    No URL: it may hold a password."""

    __tablename__ = "instance_stores"

    instance: Mapped[str] = mapped_column(String(64), primary_key=True)
    store: Mapped[str] = mapped_column(String(255))
    joined_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class VoidedStateRow(Base):
    """A session whose state in the hot store `store` is out of date: it moved off that
    store's instance while the store did not answer, and started on its new instance from
    SQL.  The store's instance freezes the copy as it joins again, or as it takes the
    notice the restoring instance sends (`app.tasking.arrivals.freeze_voided`), and the row
    goes; a store coming back with its data then neither serves nor takes updates on it."""

    __tablename__ = "voided_states"

    store: Mapped[str] = mapped_column(String(255), primary_key=True)
    session_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    voided_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
