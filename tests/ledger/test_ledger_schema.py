"""Models and migrations agree, on SQLite and PostgreSQL, and the migration goes both ways."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

import app.ledger.models  # noqa: F401 - the models under test
from app.db import Base, make_engine
from app.db.migrate import alembic_config, upgrade

LEDGER_TABLES = ("ledger_players", "ledger_wallets", "ledger_transactions", "ledger_entries")


def test_autogenerate_finds_no_drift_between_models_and_migrations(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_every_named_check_constraint_of_the_models_is_in_the_database(db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        inspector = inspect(engine)
        for table in LEDGER_TABLES:
            model = {c.name for c in Base.metadata.tables[table].constraints
                     if c.__class__.__name__ == "CheckConstraint"}
            database = {c["name"] for c in inspector.get_check_constraints(table)}
            assert model == database, table
    finally:
        engine.dispose()


def test_the_ledger_migration_downgrades_and_upgrades_again(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/updown.db"
    upgrade(url)
    command.downgrade(alembic_config(url), "0001")
    engine = make_engine(url)
    assert not set(LEDGER_TABLES) & set(inspect(engine).get_table_names())
    engine.dispose()
    upgrade(url)
    engine = make_engine(url)
    assert set(LEDGER_TABLES) <= set(inspect(engine).get_table_names())
    engine.dispose()


def test_alembic_check_in_a_fresh_process_sees_the_ledger_models(tmp_path: Path) -> None:
    """`alembic check` runs autogenerate through migrations/env.py: it only passes when
    env.py itself imports the ledger models (this process has imported them already)."""
    url = f"sqlite:///{tmp_path}/check.db"
    upgrade(url)
    code = ("from alembic import command; from app.db.migrate import alembic_config; "
            f"command.check(alembic_config({url!r}))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
