"""Every ``gamesched`` command facing a database or Redis it cannot use prints one line
naming the URL (password hidden) and the fix, and exits 2: no traceback.

The real command runs in a subprocess against closed local ports and never-migrated SQLite
files, so no service needs to run."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import text

from app.db import make_engine

PASSWORD = "s3cret-pw"
REDIS_FIX = "and that Redis runs"
DATABASE_FIX = "check GAMESCHED_DATABASE_URL and that the server runs"
MIGRATE_FIX = "run: gamesched db upgrade"


def gamesched(cwd: Path, *args: str, **variables: str) -> tuple[int, str]:
    """Run ``gamesched ARGS`` with only the GAMESCHED_ `variables` given; (exit code, stderr
    and stdout together)."""
    env = {**os.environ, **{f"GAMESCHED_{k.upper()}": v for k, v in variables.items()}}
    done = subprocess.run([sys.executable, "-m", "app.cli", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120, check=False)
    return done.returncode, done.stderr + done.stdout


def assert_one_line(result: tuple[int, str], *expected: str) -> str:
    """Exit code 2, no traceback, one ``gamesched:`` line holding every `expected` part."""
    code, output = result
    assert "Traceback" not in output, output
    lines = output.strip().splitlines()
    assert code == 2 and len(lines) == 1, output
    assert lines[0].startswith("gamesched: "), output
    for part in expected:
        assert part in lines[0], (part, lines[0])
    assert PASSWORD not in output
    return lines[0]


def test_audit_of_a_sqlite_file_never_created_says_to_migrate_and_creates_nothing(
        tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'never.db'}"
    assert_one_line(gamesched(tmp_path, "audit", database_url=url),
                    f"the database at {url} has no gamesched tables (never migrated)",
                    MIGRATE_FIX)
    assert list(tmp_path.iterdir()) == []


def test_audit_of_an_empty_sqlite_file_says_to_migrate(tmp_path: Path) -> None:
    path = tmp_path / "empty.db"
    sqlite3.connect(path).close()
    url = f"sqlite:///{path}"
    assert_one_line(gamesched(tmp_path, "audit", database_url=url),
                    f"the database at {url} has no gamesched tables (never migrated)",
                    MIGRATE_FIX)


def test_audit_of_a_database_missing_a_ledger_table_names_the_table(
        tmp_path: Path, sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    with engine.begin() as conn:
        conn.execute(text("DROP TABLE ledger_entries"))
    engine.dispose()
    assert_one_line(gamesched(tmp_path, "audit", database_url=sqlite_url),
                    f"the database at {sqlite_url} has no table ledger_entries", MIGRATE_FIX)


def test_audit_of_a_migrated_database_still_runs(tmp_path: Path, sqlite_url: str) -> None:
    code, output = gamesched(tmp_path, "audit", database_url=sqlite_url)
    assert code == 0 and "ledger holds" in output, output


def test_a_sqlite_file_in_a_missing_folder_cannot_be_reached(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'gamesched.db'}"
    assert_one_line(gamesched(tmp_path, "audit", database_url=url),
                    f"cannot reach the database at {url} (unable to open database file)",
                    "check GAMESCHED_DATABASE_URL and that its folder exists and is writable")


@pytest.mark.parametrize("command", [["audit"], ["db", "upgrade"]])
def test_a_postgresql_server_not_listening_is_named_without_its_password(
        tmp_path: Path, closed_port: int, command: list[str]) -> None:
    url = f"postgresql+psycopg://postgres:{PASSWORD}@127.0.0.1:{closed_port}/gamesched"
    assert_one_line(gamesched(tmp_path, *command, database_url=url),
                    f"cannot reach the database at postgresql+psycopg://postgres:***@127.0.0.1:"
                    f"{closed_port}/gamesched (connection refused)", DATABASE_FIX)


@pytest.mark.parametrize("command", [["status"], ["worker", "--role", "player"], ["controller"],
                                     ["demo"], ["simulate", "--scenario", "steady"]])
def test_a_redis_broker_not_listening_is_named_without_its_password(
        tmp_path: Path, closed_port: int, command: list[str]) -> None:
    url = f"redis://gamer:{PASSWORD}@127.0.0.1:{closed_port}/0"
    assert_one_line(gamesched(tmp_path, *command, broker_url=url),
                    f"cannot reach the broker at redis://gamer:***@127.0.0.1:{closed_port}/0 "
                    f"(connection refused)", f"check GAMESCHED_BROKER_URL {REDIS_FIX}")


def test_a_hot_state_redis_not_listening_is_named(tmp_path: Path, closed_port: int) -> None:
    url = f"redis://:{PASSWORD}@127.0.0.1:{closed_port}/1"
    assert_one_line(gamesched(tmp_path, "demo", hot_url=url),
                    f"cannot reach the hot-state Redis at redis://:***@127.0.0.1:{closed_port}/1",
                    f"check GAMESCHED_HOT_URL {REDIS_FIX}")


@pytest.mark.parametrize("command", [["demo"], ["simulate", "--scenario", "steady"]])
def test_demo_and_simulate_name_a_database_not_listening(
        tmp_path: Path, closed_port: int, command: list[str]) -> None:
    url = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{closed_port}/gamesched"
    assert_one_line(gamesched(tmp_path, *command, database_url=url),
                    f"cannot reach the database at postgresql://postgres:***@127.0.0.1:"
                    f"{closed_port}/gamesched (connection refused)", DATABASE_FIX)
