"""SQL models.  Alembic owns the schema: every change here comes with a migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import DateTime, Integer, LargeBinary, String
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every gamesched table."""


class GameSession(Base):
    """A game session as durable state: where it runs and its last acknowledged snapshot."""

    __tablename__ = "game_sessions"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    instance_id: Mapped[str] = mapped_column(String(64), index=True)
    session_type: Mapped[str] = mapped_column(String(16))
    players: Mapped[int] = mapped_column(Integer)
    region: Mapped[str | None] = mapped_column(String(64), nullable=True)
    status: Mapped[str] = mapped_column(String(8), default="open")
    opened_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    snapshot_seq: Mapped[int] = mapped_column(Integer, default=0)
    snapshot: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
