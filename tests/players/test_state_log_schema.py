"""Migration 0004 names the hot store of each state-log row: a database holding rows of
revision 0003 keeps them, as rows of no store that every store's recovery replays, and the
migration goes both ways (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, inspect, text

from app.db import make_engine, make_sessionmaker, transaction
from app.db.migrate import alembic_config, upgrade
from app.players import sessions, statelog, wire
from app.players.hotstore import MemoryHotStore
from app.players.models import UNNAMED_STORE
from tests.services import private_postgres_database

OLD = [wire.pack_batch([wire.entry("old", n, {"hp": n})]) for n in (1, 2)]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty database of its own on each backend (the "postgresql" param is live)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'old.db'}"
        return
    with private_postgres_database(request.getfixturevalue("postgres_server")) as made:
        yield made


@pytest.fixture
def engine(url: str) -> Iterator[Engine]:
    """The database at revision 0003, its state log holding the rows `OLD`."""
    upgrade(url, "0003")
    made = make_engine(url)
    with made.begin() as conn:
        conn.execute(text("INSERT INTO state_log (batch, written_at) "
                          "VALUES (:batch, CURRENT_TIMESTAMP)"), [{"batch": b} for b in OLD])
    yield made
    made.dispose()


def test_rows_written_before_the_upgrade_are_kept_as_no_stores_and_replayed(
        url: str, engine: Engine) -> None:
    factory = make_sessionmaker(engine)
    kept = list(statelog.rows(factory))
    upgrade(url)
    assert list(statelog.rows(factory, [UNNAMED_STORE])) == kept
    assert [batch for _, batch in kept] == OLD
    indexes = {i["name"]: i["column_names"] for i in inspect(engine).get_indexes("state_log")}
    assert indexes["ix_state_log_store_id"] == ["store", "id"]
    with transaction(factory) as db:
        sessions.open_session(db, "old", instance_id="i0", session_type="casual", players=1,
                              region=None)
    lost = MemoryHotStore()  # any store's recovery
    assert statelog.recover(lost, factory, "redis://127.0.0.1:6379/0") == 1
    assert sessions.read_states(lost, ["old"]) == {"old": sessions.HotState(2, {"hp": 2})}


def test_a_row_written_after_the_upgrade_is_its_stores_with_a_higher_id(
        url: str, engine: Engine) -> None:
    """The column is added in place, so the table keeps SQLite's AUTOINCREMENT: a row
    written once the old ones are gone gets a higher id (a round deletes up to an id)."""
    factory = make_sessionmaker(engine)
    upgrade(url)
    newest = statelog.last_row(factory)
    with transaction(factory) as db:
        db.execute(text("DELETE FROM state_log"))
    log = statelog.StateLog()
    log.open()
    log.add(OLD[0])
    assert log.flush(factory, "redis://10.0.0.5:6379/0") == 1
    with engine.connect() as conn:
        (row,) = conn.execute(text("SELECT id, store FROM state_log")).all()
    assert row.id > newest and row.store == "redis://10.0.0.5:6379/0"


def test_the_store_migration_downgrades_and_upgrades_again(url: str, engine: Engine) -> None:
    upgrade(url)
    command.downgrade(alembic_config(url), "0003")
    assert "store" not in {c["name"] for c in inspect(engine).get_columns("state_log")}
    upgrade(url)
    columns = {c["name"]: c for c in inspect(engine).get_columns("state_log")}
    assert not columns["store"]["nullable"]
    assert len(list(statelog.rows(make_sessionmaker(engine), [UNNAMED_STORE]))) == len(OLD)
