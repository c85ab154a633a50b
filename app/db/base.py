"""The declarative base of every gamesched table, and the clock its rows are stamped with.
Alembic owns the schema: every model change comes with a migration."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy.orm import DeclarativeBase


def utcnow() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of every gamesched table."""
