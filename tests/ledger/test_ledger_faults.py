"""SQL fault injection: the share, the limit, per-process draws, and the command wrapper."""

from __future__ import annotations

import os
import runpy
import sys

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.exc import OperationalError

from app.cli.sqlfaults import main
from app.db import make_engine
from app.simulate.sqlfaults import FAULT_MESSAGE, SqlFaults, sql_faults


def draws(faults: SqlFaults, n: int) -> list[bool]:
    return [faults.fire() for _ in range(n)]


@pytest.mark.parametrize("rate", [-0.1, 1.5])
def test_a_rate_outside_zero_to_one_is_refused(rate: float) -> None:
    with pytest.raises(ValueError, match=r"rate must lie in 0\.\.1"):
        SqlFaults(rate)


def test_the_share_of_failures_follows_the_rate() -> None:
    assert not any(draws(SqlFaults(0.0), 1000))
    assert all(draws(SqlFaults(1.0), 1000))
    failures = sum(draws(SqlFaults(0.01, seed=3), 20_000))
    assert 100 <= failures <= 300  # 1 % of 20,000, give or take


def test_limit_and_after_bound_the_failures() -> None:
    faults = SqlFaults(1.0, limit=2, after=3)
    assert draws(faults, 8) == [False, False, False, True, True, False, False, False]
    assert (faults.seen, faults.injected) == (8, 2)


def test_a_seed_repeats_the_draws_in_one_process() -> None:
    assert draws(SqlFaults(0.5, seed=11), 64) == draws(SqlFaults(0.5, seed=11), 64)


def test_a_forked_child_draws_its_own_sequence() -> None:
    faults = SqlFaults(0.5, seed=11)
    faults.fire()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next draws and leave at once
        os.write(write, bytes(draws(faults, 64)))
        os._exit(0)
    os.close(write)
    child = list(os.read(read, 64))
    os.close(read)
    os.waitpid(pid, 0)
    assert len(child) == 64 and child != [int(d) for d in draws(faults, 64)]


def test_an_injected_fault_is_the_drivers_operational_error(sqlite_url: str) -> None:
    engine = make_engine(sqlite_url)
    try:
        with sql_faults(engine, rate=1.0) as faults, \
                pytest.raises(OperationalError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert FAULT_MESSAGE in str(caught.value) and faults.injected >= 1
        assert isinstance(caught.value.orig, engine.dialect.loaded_dbapi.OperationalError)
        with engine.connect() as conn:  # removed again
            assert conn.execute(text("SELECT 1")).scalar_one() == 1
    finally:
        engine.dispose()


def test_installed_on_the_engine_class_it_reaches_every_engine(sqlite_url: str) -> None:
    with sql_faults(Engine, rate=1.0) as faults:
        engine = make_engine(sqlite_url)
        with pytest.raises(OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    engine.dispose()
    assert faults.injected >= 1


@pytest.mark.parametrize("separator", [["--"], []])
def test_the_wrapper_runs_a_gamesched_command_with_faults(
        sqlite_url: str, monkeypatch: pytest.MonkeyPatch, separator: list[str]) -> None:
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", sqlite_url)
    monkeypatch.setattr(sys, "argv", ["faults"])
    with pytest.raises(SystemExit) as clean:
        main(["--sql-error-rate", "0", *separator, "audit"])
    assert clean.value.code == 0
    assert sys.argv == ["gamesched", "audit"]
    with pytest.raises(OperationalError, match=FAULT_MESSAGE):
        main(["--sql-error-rate", "1", "--seed", "5", *separator, "audit"])


@pytest.mark.filterwarnings("ignore:.*found in sys.modules:RuntimeWarning")
def test_the_module_runs_as_a_program(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GAMESCHED_DATABASE_URL", sqlite_url)
    monkeypatch.setattr(sys, "argv", ["app.cli.sqlfaults", "--sql-error-rate", "0", "audit"])
    with pytest.raises(SystemExit) as done:
        runpy.run_module("app.cli.sqlfaults", run_name="__main__")
    assert done.value.code == 0
